"""`manage.py rollback --to-backup FILE`: back to the migration state of a backup."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

from hzm.deploy.backup import BackupError, applied_migrations, latest_backup, read_manifest
from hzm.deploy.backup import restore_backup as restore
from hzm.deploy.connection import MigrationConnectionCommand
from hzm.deploy.rollback import RollbackError, rollback_plan


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Roll the schema back to the migration state recorded in a backup's sidecar: "
        "`migrate <app> <target>` for every app that moved ahead, newest dependents first "
        "(data in what is unapplied is lost). With --restore, restore the backup into an "
        "empty database instead. The plan is printed first; --dry-run prints only the plan."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--to-backup",
            required=True,
            help="The backup's .dump or .json file, or 'latest' (newest in BACKUP_DIR).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the plan only.")
        parser.add_argument(
            "--restore",
            action="store_true",
            help="Restore the backup (schema and data) into an empty database instead.",
        )
        parser.add_argument("--target-db", help="With --restore: the empty database to fill.")
        parser.add_argument("--create", action="store_true", help="With --restore: create it.")
        parser.add_argument("--no-owner", action="store_true", help="With --restore: see restore.")

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        if not options["restore"]:
            return {}
        target = options["target_db"] or connections[DEFAULT_DB_ALIAS].settings_dict["NAME"]
        return {"bypass_rls": True, "create_database": target if options["create"] else None}

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            path = self._backup_path(options["to_backup"], connection)
            dump, manifest = read_manifest(path)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Rollback to {dump.name}: taken {manifest['created_at']} from database "
                f"{manifest['database']}, migration state {manifest['migration_state']}"
            )
        )
        if options["restore"]:
            return self._restore(connection, dump, options)
        self._migrate_back(connection, manifest, options)

    def _backup_path(self, value: str, connection: Any) -> Path:
        if value == "latest":
            return latest_backup(Path(settings.BACKUP_DIR), connection.settings_dict["NAME"])
        return Path(value)

    def _restore(self, connection: Any, dump: Path, options: dict[str, Any]) -> None:
        target = options["target_db"] or connection.settings_dict["NAME"]
        create = " (created first)" if options["create"] else " (must be empty)"
        self.stdout.write(f"Plan:\n  1. restore {dump.name} into database {target}{create}")
        self.stdout.write(
            "  2. verify it (row counts, migration state, row level security, triggers)\n"
            f"Then point DATABASE_URL (and MIGRATION_DATABASE_URL) at {target}."
        )
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing done.")
            return
        try:
            problems, notes = restore(
                connection,
                dump,
                target,
                create=options["create"],
                no_owner=options["no_owner"],
                say=self.stdout.write,
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for line in notes:
            self.stdout.write(self.style.WARNING(line))
        if problems:
            raise CommandError(
                "restored, but it does not match the backup:\n" + "\n".join(problems)
            )
        self.stdout.write(self.style.SUCCESS(f"rollback: {target} restored and verified"))

    def _migrate_back(self, connection: Any, manifest: dict[str, Any], options: dict) -> None:
        with connection.cursor() as cursor:
            applied = applied_migrations(cursor)
        graph = MigrationLoader(None, ignore_no_migrations=True).graph
        recorded = manifest["applied_migrations"]
        try:
            steps, behind = rollback_plan(recorded, applied, graph)
        except RollbackError as exc:
            raise CommandError(str(exc)) from exc
        for name in behind:
            self.stdout.write(
                self.style.WARNING(f"  note: {name} is in the backup but not applied here")
            )
        if not steps:
            self.stdout.write("Nothing to roll back: no app is ahead of the backup.")
            return
        self.stdout.write("Plan (data in what is unapplied is lost; --restore brings it back):")
        for number, step in enumerate(steps, start=1):
            self.stdout.write(f"  {number}. {step.command}")
            self.stdout.write(f"       unapplies {', '.join(step.unapplies)}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing done.")
            return
        for step in steps:
            self.stdout.write(self.style.MIGRATE_HEADING(step.command))
            call_command(
                "migrate",
                step.app,
                step.target,
                interactive=False,
                verbosity=options["verbosity"],
                stdout=self.stdout._out,
                stderr=self.stderr._out,
            )
        with connection.cursor() as cursor:
            now = applied_migrations(cursor)
        left = sorted(
            f"{app}.{n}" for app in now for n in now[app] if n not in recorded.get(app, [])
        )
        if left:
            raise CommandError(f"rollback incomplete: still applied: {', '.join(left)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"rollback: at the backup's migration state {manifest['migration_state']}"
            )
        )
