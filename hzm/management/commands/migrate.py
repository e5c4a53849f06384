"""`manage.py migrate`, made safe for deployments (overrides Django's; the `hzm` app's
commands come before django.core's).

Added to Django's command:
- one migrate at a time per database: an advisory lock held for the whole run, so a
  second deploy started at once waits, then finds nothing to do;
- DDL waits at most HZM_MIGRATION_LOCK_TIMEOUT seconds for a lock; a migration that timed
  out is retried whole, with backoff (a statement outside any transaction, alone);
- `--dry-run`: the plan runs inside one transaction, each migration is shown with its SQL,
  time and locks, and everything is rolled back;
- run from the shell, it connects with MIGRATION_DATABASE_URL when that is set.
"""

import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import AmbiguityError

from hzm import progress
from hzm.deploy.connection import (
    MigrationConnectionCommand,
    RetryOutsideTransactions,
    advisory_lock,
    backoff_delays,
    is_lock_timeout,
    lock_timeout,
)
from hzm.deploy.dryrun import DryRun, DryRunFailed, format_report


class Command(MigrationConnectionCommand, migrate.Command):
    help = (
        migrate.Command.help
        + " Takes an advisory lock (one migrate at a time per database), waits at most "
        "HZM_MIGRATION_LOCK_TIMEOUT for each lock and retries with backoff; --dry-run "
        "applies the plan in one transaction, reports SQL, time and locks, and rolls back."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Apply the plan inside one transaction, print each migration's SQL, time and "
            "locks (with estimated row counts), then roll back: nothing changes.",
        )
        parser.add_argument(
            "--lock-retries",
            type=int,
            default=5,
            help="How often a migration that timed out waiting for a lock is retried (5).",
        )
        parser.add_argument(
            "--lock-backoff",
            type=float,
            default=1.0,
            help="Seconds before the first retry; doubled for each next one (1.0).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["plan"] or options["check_unapplied"]:
            return super().handle(*args, **options)  # read-only: no lock needed
        connection = connections[options["database"]]
        self.verbosity = options["verbosity"]
        self._migration: str | None = None
        delays = backoff_delays(options["lock_retries"], options["lock_backoff"])
        try:
            with (
                # Progress of long operations (AddNotNullColumnSafely's backfill): none at -v 0.
                progress.reporting(progress.for_verbosity(self.stdout.write, self.verbosity)),
                advisory_lock(connection, self._notice),
                lock_timeout(connection, settings.HZM_MIGRATION_LOCK_TIMEOUT),
                connection.execute_wrapper(RetryOutsideTransactions(delays, self._notice)),
            ):
                self._with_retries(connection, delays, args, options)
        except DatabaseError as exc:
            raise CommandError(f"{self._migration or 'migrate'} failed: {exc}".strip()) from exc

    def _with_retries(self, connection: Any, delays: list[float], args: Any, options: Any) -> None:
        """Run (or dry-run) the plan; a migration that timed out waiting for a lock is retried.

        Each migration is its own transaction, so what timed out was rolled back whole and
        the migrations before it stay applied: the next attempt plans again from there.
        """
        seconds = settings.HZM_MIGRATION_LOCK_TIMEOUT
        for attempt, delay in enumerate([*delays, None], start=1):
            self._migration = None
            try:
                if options["dry_run"]:
                    return self._dry_run(connection, options)
                return super().handle(*args, **options)
            except DatabaseError as exc:
                if delay is None or not is_lock_timeout(exc):
                    raise
                where = self._migration or "migrate"
                self._notice(
                    f"{where} timed out waiting {seconds:g} s for a lock ({str(exc).strip()}); "
                    f"it was rolled back; retrying in {delay:g} s "
                    f"(attempt {attempt + 1} of {len(delays) + 1})"
                )
                time.sleep(delay)

    def _notice(self, message: str) -> None:
        self.stderr.write(self.style.WARNING(f"\nmigrate: {message}"))

    def migration_progress_callback(self, action: str, migration: Any = None, fake=False) -> None:
        if action in ("apply_start", "unapply_start"):
            self._migration = f"migration {migration.app_label}.{migration.name}"
        elif action in ("apply_success", "unapply_success"):
            self._migration = None
        super().migration_progress_callback(action, migration, fake)

    # --dry-run ----------------------------------------------------------------------

    def _dry_run(self, connection: Any, options: dict[str, Any]) -> None:
        executor = MigrationExecutor(connection)
        executor.loader.check_consistent_history(connection)
        conflicts = executor.loader.detect_conflicts()
        if conflicts:
            raise CommandError(
                "Conflicting migrations detected: "
                + "; ".join(f"{', '.join(n)} in {app}" for app, n in conflicts.items())
            )
        plan = executor.migration_plan(self._targets(executor, options))
        if not plan:
            self.stdout.write("Dry run: no migrations to apply.")
            return
        if len({backwards for _, backwards in plan}) > 1:
            raise CommandError("the plan both applies and unapplies migrations: run them apart")
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Dry run: {len(plan)} migration(s) inside one transaction, then rolled back"
            )
        )
        dry_run = DryRun(connection)
        try:
            reports = dry_run.run(executor, plan)
        except DryRunFailed as exc:
            raise CommandError(
                f"dry run: {exc}\nRolled back: the database is unchanged."
            ) from exc.error
        except DatabaseError:  # a lock timeout: retried whole, as a real run is
            if dry_run.current is not None:
                self._migration = f"migration {dry_run.current.label}"
            raise
        for line in format_report(reports):
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS("Rolled back: the database is unchanged (django_migrations too).")
        )

    def _targets(self, executor: MigrationExecutor, options: dict[str, Any]) -> list:
        """The targets `migrate [app_label] [migration_name]` means, as Django reads them."""
        app_label, name = options["app_label"], options["migration_name"]
        leaves = executor.loader.graph.leaf_nodes()
        if not app_label:
            return leaves
        if app_label not in executor.loader.migrated_apps:
            raise CommandError(f"App '{app_label}' does not have migrations.")
        if not name:
            return [key for key in leaves if key[0] == app_label]
        if name == "zero":
            return [(app_label, None)]
        try:
            return [(app_label, executor.loader.get_migration_by_prefix(app_label, name).name)]
        except AmbiguityError as exc:
            raise CommandError(
                f"More than one migration matches '{name}' in '{app_label}'."
            ) from exc
        except KeyError as exc:
            raise CommandError(
                f"Cannot find a migration matching '{name}' in '{app_label}'."
            ) from exc
