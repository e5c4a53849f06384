"""`manage.py migrate`, made safe for deployments (overrides Django's; the `hzm` app's
commands come before django.core's).

Added to Django's command:
- one migrate at a time per database: an advisory lock held for the whole run, so a
  second deploy started at once waits, then finds nothing to do;
- DDL waits at most HZM_MIGRATION_LOCK_TIMEOUT seconds for a lock; a migration that timed
  out is retried whole, with backoff (a statement outside any transaction, alone);
- `--dry-run`: the plan runs inside one transaction, each migration is shown with its SQL,
  time and locks, and everything is rolled back;
- run from the shell, it connects with MIGRATION_DATABASE_URL when that is set;
- an EMPTY database is built from the schema snapshot when it is up to date (the same
  database as the history builds, in a fraction of the time: hzm.deploy.snapshot);
  `--no-snapshot` applies the history instead.
"""

import time
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import AmbiguityError
from django.db.migrations.state import ModelState
from django.utils import translation
from django.utils.module_loading import module_has_submodule

from hzm import progress
from hzm.deploy import snapshot
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
        "applies the plan in one transaction, reports SQL, time and locks, and rolls back. "
        "An empty database is built from the schema snapshot when it is up to date."
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
        parser.add_argument(
            "--no-snapshot",
            action="store_true",
            help="Apply the migration history even to an empty database, instead of loading "
            f"the schema snapshot ({snapshot.snapshot_path().name}) that it builds.",
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
                if self._from_snapshot(connection, options):
                    return None
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

    # The schema snapshot --------------------------------------------------------------

    def _from_snapshot(self, connection: Any, options: dict[str, Any]) -> bool:
        """Build an empty database from the schema snapshot; False: apply the history instead.

        What follows is Django's migrate.handle() for an empty database and every app, with
        executor.migrate() replaced by snapshot.load(): the same signals, with the same plan
        and states, and the same output but for one line instead of one per migration.
        """
        if (
            options["no_snapshot"]
            or options["app_label"]
            or options["fake"]
            or options["fake_initial"]
            or options["prune"]
            or not snapshot.is_empty(connection)
        ):
            return False
        self.interactive = options["interactive"]
        with translation.override(None):  # as Django's handle (@no_translations)
            for app_config in apps.get_app_configs():
                if module_has_submodule(app_config.module, "management"):
                    import_module(".management", app_config.name)
            connection.prepare_database()
            executor = MigrationExecutor(connection, self.migration_progress_callback)
            if executor.loader.detect_conflicts():
                return False  # Django's handle says what they are
            targets = executor.loader.graph.leaf_nodes()
            plan = executor.migration_plan(targets)
            found = snapshot.read()
            refusal = snapshot.why_not(connection, executor, plan, found)
            if refusal:
                if self.verbosity >= 1:
                    self._notice(
                        f"{refusal}: applying the migration history instead; "
                        f"`{snapshot.WRITE_COMMAND}` brings the snapshot up to date"
                    )
                return False
            self._load_snapshot(connection, executor, targets, plan, found, options)
        return True

    def _load_snapshot(self, connection, executor, targets, plan, found, options) -> None:
        run_syncdb = options["run_syncdb"] and executor.loader.unmigrated_apps
        if self.verbosity >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING("Operations to perform:"))
            if run_syncdb:
                self.stdout.write(
                    self.style.MIGRATE_LABEL("  Synchronize unmigrated apps: ")
                    + ", ".join(sorted(executor.loader.unmigrated_apps))
                )
            self.stdout.write(
                self.style.MIGRATE_LABEL("  Apply all migrations: ")
                + (", ".join(sorted({app for app, _ in targets})) or "(none)")
            )
        pre_migrate_state = executor._create_project_state(with_applied_migrations=True)
        emit_pre_migrate_signal(
            self.verbosity,
            self.interactive,
            connection.alias,
            stdout=self.stdout,
            apps=pre_migrate_state.apps,
            plan=plan,
        )
        if run_syncdb:
            if self.verbosity >= 1:
                self.stdout.write(
                    self.style.MIGRATE_HEADING("Synchronizing apps without migrations:")
                )
            self.sync_apps(connection, executor.loader.unmigrated_apps)
        if self.verbosity >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING("Running migrations:"))
            self.stdout.write(
                f"  Loading the schema snapshot of {len(plan)} migrations "
                f"({found.path.name}, their SQL)...",
                ending="",
            )
            self.stdout.flush()
        start = time.monotonic()
        self._migration = f"the schema snapshot {found.path.name}"  # for an error's message
        snapshot.load(connection, executor, plan, found)
        self._migration = None
        if self.verbosity >= 1:
            elapsed = f" ({time.monotonic() - start:.3f}s)" if self.verbosity > 1 else ""
            self.stdout.write(self.style.SUCCESS(" OK" + elapsed))
        # The state after the whole plan, as executor.migrate() would return it.
        post_migrate_state = executor.loader.project_state()
        post_migrate_state.clear_delayed_apps_cache()
        post_migrate_apps = post_migrate_state.apps
        # As Django: re-render the real apps' models with their relations to the final state.
        with post_migrate_apps.bulk_update():
            model_keys = []
            for model_state in post_migrate_apps.real_models:
                model_key = model_state.app_label, model_state.name_lower
                model_keys.append(model_key)
                post_migrate_apps.unregister_model(*model_key)
        post_migrate_apps.render_multiple(
            [ModelState.from_model(apps.get_model(*model)) for model in model_keys]
        )
        emit_post_migrate_signal(
            self.verbosity,
            self.interactive,
            connection.alias,
            stdout=self.stdout,
            apps=post_migrate_apps,
            plan=plan,
        )

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
