"""python manage.py schema_snapshot [--write | --check]: the snapshot migrate builds empty
databases from (hzm.deploy.snapshot)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from hzm.deploy import snapshot


class Command(BaseCommand):
    help = (
        f"Say whether the schema snapshot ({snapshot.snapshot_path().name}) is up to date with the "
        "migration history; --write makes it again (migrates a scratch database by the "
        "history on the same server and dumps it; needs CREATEDB and CREATEROLE), --check "
        "exits 1 when it is stale."
    )

    def add_arguments(self, parser: Any) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--write", action="store_true", help="make the snapshot again")
        action.add_argument("--check", action="store_true", help="exit 1 when it is stale")
        parser.add_argument("--database", default="default", help="the server to use (alias)")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        if options["write"]:
            try:
                snapshot.write(connection, say=self.stderr.write)
            except snapshot.SnapshotError as exc:
                raise CommandError(str(exc)) from exc
            return
        executor = MigrationExecutor(None)
        plan = snapshot.full_plan(executor)
        connection.ensure_connection()
        found = snapshot.read()
        refusal = snapshot.why_not(connection, executor, plan, found)
        if refusal:
            message = f"{refusal}: `{snapshot.WRITE_COMMAND}` makes it again"
            if options["check"]:
                raise CommandError(message, returncode=1)
            self.stdout.write(self.style.WARNING(message))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{found.path.name} is up to date: {len(plan)} migrations, PostgreSQL "
                f"{found.facts['postgresql']}"
            )
        )
