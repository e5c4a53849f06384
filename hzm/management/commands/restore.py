"""`manage.py restore FILE`: load a backup into an EMPTY database and verify it."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from hzm.deploy.backup import BackupError, restore_backup
from hzm.deploy.connection import MigrationConnectionCommand
from hzm.progress import for_verbosity


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Restore a backup (its .dump or .json) into an empty database on the same server, "
        "then verify it against the sidecar: row counts per table, migration state, row "
        "level security, policies and triggers, and dbdoctor. Refuses a non-empty database."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("backup", type=Path, help="The backup's .dump (or .json) file.")
        parser.add_argument(
            "--target-db",
            help="The empty database to restore into (default: the configured database).",
        )
        parser.add_argument(
            "--create", action="store_true", help="CREATE DATABASE the target first."
        )
        parser.add_argument(
            "--no-owner",
            action="store_true",
            help="Do not restore object owners (the restoring role owns everything); for a "
            "cluster without the original owner role.",
        )

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "bypass_rls": True,  # pg_restore COPYs into, and verify() counts, every tenant's rows
            "create_database": self._target(options) if options["create"] else None,
        }

    def _target(self, options: dict[str, Any]) -> str:
        return options["target_db"] or connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        target = self._target(options)
        # What it does and pg_restore's progress (bytes, elapsed, rate); -v 0: nothing.
        write = for_verbosity(self.stdout.write, options["verbosity"])
        try:
            problems, notes = restore_backup(
                connection,
                options["backup"],
                target,
                create=options["create"],
                no_owner=options["no_owner"],
                say=write,
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for note in notes:
            self.stdout.write(self.style.WARNING(note))
        if problems:
            for problem in problems:
                self.stderr.write(self.style.ERROR(problem))
            raise CommandError(
                f"restore: {target} was restored but does not match the backup "
                f"({len(problems)} problem(s) above)"
            )
        if write is None:
            return
        doctor = "dbdoctor: informational only (above)" if notes else "dbdoctor agrees"
        self.stdout.write(
            self.style.SUCCESS(
                f"restore: {target} verified: row counts, migration state, row level security, "
                f"policies and triggers equal the backup's; {doctor}"
            )
        )
