"""`manage.py deploy`: the seed's deployment checklist as one command.

connection -> backup -> dry run -> migrate -> health check, stopping at the first
failure with the exact command that rolls back. The advisory lock of migrate is held
for the whole run, so two deploys never interleave.
"""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from hzm import __version__, health
from hzm.deploy.backup import Backup, create_backup
from hzm.deploy.connection import MigrationConnectionCommand, advisory_lock, use_database

STEPS = ("connection", "backup", "dry run", "migrate", "health check")


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Deploy the schema: test the connection, back up, dry-run the migrations, migrate, "
        "check health. Stops at the first failure and prints how to roll back."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--skip-backup",
            action="store_true",
            help="DEVELOPMENT ONLY: deploy without a backup (there is then nothing to roll "
            "back to).",
        )

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}  # the backup step names the tables row level security would hide from it

    def handle(self, *args: Any, **options: Any) -> None:
        self.connection = connections[DEFAULT_DB_ALIAS]
        self.options = options
        self.backup: Backup | None = None
        if options["skip_backup"]:
            self.stderr.write(
                self.style.ERROR(
                    "!" * 78 + "\nWARNING: --skip-backup: NO BACKUP will be taken, so a failed "
                    "migration cannot be undone\nfrom one. For development only; never in "
                    "production.\n" + "!" * 78
                )
            )
        self._step(1, self._check_connection)
        with advisory_lock(self.connection, lambda message: self.stdout.write(message)):
            self._step(2, self._take_backup)
            self._step(3, self._dry_run)
            self._step(4, self._migrate)
        # After the lock: the health check connects as the web login (the owner's session,
        # which holds the lock, is closed for it).
        self._step(5, self._check_health)
        done = f"deploy: done (version {__version__})."
        if self.backup:
            undo = f"python manage.py rollback --to-backup {self.backup.dump}"
            done += f" To undo the schema change: {undo}"
        self.stdout.write(self.style.SUCCESS(done))

    def _step(self, number: int, action: Any) -> None:
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"[{number}/{len(STEPS)}] {STEPS[number - 1]}")
        )
        try:
            action()
        except Exception as exc:
            if self.options.get("traceback"):
                raise
            raise CommandError(self._stopped(number, exc)) from exc

    def _stopped(self, number: int, exc: BaseException) -> str:
        lines = [f"deploy stopped at step {number}/{len(STEPS)} ({STEPS[number - 1]}): {exc}"]
        if number <= 3:
            lines.append("Nothing was changed: there is nothing to roll back.")
        elif self.backup is None:
            lines.append(
                "No backup was taken (--skip-backup): roll back by hand with "
                "`python manage.py migrate <app> <migration>` per app (showmigrations lists them)."
            )
        else:
            dump = self.backup.dump
            lines += [
                "To roll back the schema to the backup's migration state:",
                f"  python manage.py rollback --to-backup {dump}",
                "or, for schema and data as they were at the backup, in a new database:",
                f"  python manage.py rollback --to-backup {dump} --restore --create "
                "--target-db <new database>",
            ]
        return "\n".join(lines)

    def _check_connection(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_database(), current_user, current_setting('server_version')"
            )
            database, role, version = cursor.fetchone()
        self.stdout.write(f"  {database} as {role}, PostgreSQL {version}")

    def _take_backup(self) -> None:
        if self.options["skip_backup"]:
            self.stdout.write(self.style.WARNING("  skipped (--skip-backup)"))
            return
        self.backup = create_backup(self.connection, settings.BACKUP_DIR, self._indent)
        self.stdout.write(f"  {self.backup.dump}")

    def _dry_run(self) -> None:
        call_command("migrate", dry_run=True, **self._migrate_options())

    def _migrate(self) -> None:
        call_command("migrate", interactive=False, **self._migrate_options())

    def _check_health(self) -> None:
        # What GET /healthz of the web process answers: through the web's own login
        # (DATABASE_URL), whose tenant path is the one to prove, not the owner's.
        alias = self.connection.alias
        with use_database(alias, settings.DATABASES[alias]):
            healthy, body = health.check(alias)
        if not healthy:
            raise CommandError("; ".join(body["problems"]))
        width = max(len(key) for key in body) + 2
        for key, value in body.items():
            self.stdout.write(f"  {key + ':':<{width}}{value}")

    def _migrate_options(self) -> dict[str, Any]:
        return {
            "verbosity": self.options["verbosity"],
            "stdout": self.stdout._out,
            "stderr": self.stderr._out,
        }

    def _indent(self, message: str) -> None:
        self.stdout.write(f"  {message}")
