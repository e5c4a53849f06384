"""`manage.py backup`: pg_dump -Fc of the database, named by time and migration state."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from hzm.deploy.backup import BackupError, create_backup
from hzm.deploy.connection import MigrationConnectionCommand
from hzm.progress import for_verbosity


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Back up the database with pg_dump (custom format) to BACKUP_DIR as "
        "<database>-<UTC time>-<migration state>.dump, with a .json sidecar: applied "
        "migrations per app, row counts per table, row level security, policies and "
        "triggers, roles and server version. Needs a role that bypasses row level security. "
        "Files are readable by their owner only."
    )

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        # A backup role (BYPASSRLS, pg_read_all_data) will do; create_backup() itself names
        # the tables row level security would hide.
        return {"read_only": True}

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dir", type=Path, default=None, help="Directory to write to (BACKUP_DIR)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = options["dir"] or Path(settings.BACKUP_DIR)
        # What it does and pg_dump's progress (bytes, elapsed, rate); -v 0: nothing.
        write = for_verbosity(self.stdout.write, options["verbosity"])
        try:
            backup = create_backup(connections[DEFAULT_DB_ALIAS], directory, write)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        if write is None:
            return
        manifest = backup.manifest
        tables = manifest["row_counts"]
        self.stdout.write(
            self.style.SUCCESS(
                f"backup: {backup.dump} ({manifest['bytes']:,} bytes; {len(tables)} tables, "
                f"{sum(tables.values()):,} rows; migration state {manifest['migration_state']})"
            )
        )
        self.stdout.write(f"sidecar: {backup.sidecar}")
