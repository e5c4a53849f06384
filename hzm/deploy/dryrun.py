"""`migrate --dry-run`: run the pending migrations in one transaction, report, roll back.

Every migration of the plan runs for real inside one outer transaction (each in its own
savepoint, as migrate would run it), with every statement it executes captured, timed
and classified by hzm.deploy.locks; then the transaction is rolled back, django_migrations
included. What cannot run inside a transaction (atomic = False, CONCURRENTLY, ...) is not
run: it is listed with its SQL, and so is everything in the plan that depends on it.
"""

import copy
import re
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.operations import NotInTransactionMixin
from django.db import transaction
from django.db.migrations import RunSQL
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations.base import Operation

from hzm.deploy import locks
from hzm.deploy.connection import is_lock_timeout

NOT_IN_TRANSACTION_SQL = re.compile(
    r"\bCONCURRENTLY\b|\bVACUUM\b|\b(CREATE|DROP) DATABASE\b|\bALTER SYSTEM\b", re.IGNORECASE
)
BOOKKEEPING_TABLES = ('"django_migrations"',)


@dataclass
class Statement:
    sql: str
    seconds: float | None  # None: not run
    lock: locks.StatementLock | None
    rows: dict[str, str] = field(default_factory=dict)  # table -> estimated rows, as text


@dataclass
class OperationReport:
    description: str
    statements: list[Statement] = field(default_factory=list)


@dataclass
class MigrationReport:
    key: tuple[str, str]
    backwards: bool
    operations: list[OperationReport] = field(default_factory=list)
    seconds: float = 0.0
    not_run: str = ""  # why it was not run, if it was not

    @property
    def label(self) -> str:
        return f"{self.key[0]}.{self.key[1]}"


class DryRunFailed(Exception):
    """A migration failed inside the dry run (everything was rolled back)."""

    def __init__(self, migration: str, error: BaseException) -> None:
        super().__init__(f"migration {migration} failed: {error}")
        self.migration = migration
        self.error = error


def not_in_transaction_reason(migration: Any) -> str:
    """Why `migration` cannot run inside a transaction ('' when it can)."""
    if not migration.atomic:
        return "atomic = False: its statements commit one by one"
    for operation in migration.operations:
        if isinstance(operation, NotInTransactionMixin):
            return f"{operation.describe()}: cannot run inside a transaction"
        if isinstance(operation, RunSQL):
            items = operation.sql if isinstance(operation.sql, list | tuple) else [operation.sql]
            text = " ".join(
                str(item[0] if isinstance(item, list | tuple) else item) for item in items
            )
            if NOT_IN_TRANSACTION_SQL.search(text):
                return "RunSQL with a statement that cannot run inside a transaction"
    return ""


class _TracedOperation(Operation):
    """An operation that tells the dry run when it starts and ends (the dry run only)."""

    def __init__(self, inner: Operation, dry_run: "DryRun", report: OperationReport) -> None:
        self.inner = inner
        self.dry_run = dry_run
        self.report = report

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.inner.reversible

    @property
    def reduces_to_sql(self) -> bool:  # type: ignore[override]
        return self.inner.reduces_to_sql

    @property
    def atomic(self) -> bool:  # type: ignore[override]
        return self.inner.atomic

    def describe(self) -> str:
        return self.inner.describe()

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.inner.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        with self.dry_run.capturing(self.report):
            self.inner.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        with self.dry_run.capturing(self.report):
            self.inner.database_backwards(app_label, schema_editor, from_state, to_state)


class DryRun:
    """Run a migration plan inside one transaction that is always rolled back."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.bucket: list[Statement] | None = None
        self.deferred: OperationReport | None = None
        self.created: set[str] = set()
        self.reports: dict[tuple[str, str], MigrationReport] = {}
        self.current: MigrationReport | None = None
        self._started = 0.0

    # Capturing ----------------------------------------------------------------------

    class _Capture:
        def __init__(self, dry_run: "DryRun", report: OperationReport) -> None:
            self.dry_run, self.report = dry_run, report

        def __enter__(self) -> None:
            self.dry_run.bucket = self.report.statements

        def __exit__(self, *exc: object) -> None:
            # What runs after the operations (deferred constraints and indexes) goes here.
            self.dry_run.bucket = (
                self.dry_run.deferred.statements if self.dry_run.deferred else None
            )

    def capturing(self, report: OperationReport) -> "DryRun._Capture":
        return DryRun._Capture(self, report)

    def _trace(self, execute: Any, sql: str, params: Any, many: bool, context: dict) -> Any:
        bucket = self.bucket
        if bucket is None:
            return execute(sql, params, many, context)
        lock = locks.classify(str(sql))
        if lock is None or (lock.tables and set(lock.tables) <= set(BOOKKEEPING_TABLES)):
            return execute(sql, params, many, context)
        rows = self._estimates(lock)
        if lock.created:
            self.created.add(lock.created)
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shown = str(sql)
            if params and not many:
                shown = self.connection.ops.compose_sql(shown, params)
            bucket.append(Statement(shown, time.perf_counter() - start, lock, rows))

    def _estimates(self, lock: locks.StatementLock) -> dict[str, str]:
        """pg_class.reltuples of each table the statement locks (an index's table for one)."""
        estimates = {}
        for table in lock.tables:
            if table in self.created:
                estimates[table] = "new table"
                continue
            # The raw psycopg connection: this query is not part of what is reported.
            row = self.connection.connection.execute(
                "SELECT t.reltuples FROM pg_class c "
                "LEFT JOIN pg_index i ON i.indexrelid = c.oid "
                "JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid) "
                "WHERE c.oid = to_regclass(%s)",
                [table],
            ).fetchone()
            estimates[table] = rows_text(row[0] if row else None)
        return estimates

    def _progress(self, action: str, migration: Any = None, fake: bool = False) -> None:
        if action in ("apply_start", "unapply_start"):
            self.current = self.reports[migration.app_label, migration.name]
            self.deferred = OperationReport("(at the end of the migration: deferred SQL)")
            self.bucket = self.deferred.statements
            self._started = time.perf_counter()
        elif action in ("apply_success", "unapply_success") and self.current is not None:
            self.current.seconds = time.perf_counter() - self._started
            if self.deferred and self.deferred.statements:
                self.current.operations.append(self.deferred)
            self.bucket = self.deferred = self.current = None

    def _traced(self, migration: Any, report: MigrationReport) -> Any:
        traced = copy.copy(migration)
        traced.operations = []
        for operation in migration.operations:
            operation_report = OperationReport(operation.describe())
            report.operations.append(operation_report)
            traced.operations.append(_TracedOperation(operation, self, operation_report))
        return traced

    # Running ------------------------------------------------------------------------

    def run(
        self, executor: MigrationExecutor, plan: list[tuple[Any, bool]]
    ) -> list[MigrationReport]:
        """Run `plan` (all forwards or all backwards) and roll back; reports in plan order."""
        reasons = self._not_run(executor, plan)
        for migration, backwards in plan:
            key = (migration.app_label, migration.name)
            self.reports[key] = MigrationReport(key, backwards, not_run=reasons.get(key, ""))
        runnable = [(m, b) for m, b in plan if not reasons.get((m.app_label, m.name))]
        executor.progress_callback = self._progress
        alias = self.connection.alias
        try:
            with self.connection.execute_wrapper(self._trace), transaction.atomic(using=alias):
                executor.recorder.ensure_schema()
                self._run(executor, runnable)
                transaction.set_rollback(True, using=alias)
        except Exception as exc:
            if self.current is None or is_lock_timeout(exc):
                raise  # a lock timeout is for the caller to retry
            raise DryRunFailed(self.current.label, exc) from exc
        for migration, backwards in plan:
            report = self.reports[migration.app_label, migration.name]
            if report.not_run:
                self._describe_not_run(executor, migration, backwards, report)
        return [self.reports[m.app_label, m.name] for m, _ in plan]

    def _run(self, executor: MigrationExecutor, plan: list[tuple[Any, bool]]) -> None:
        if not plan:
            return
        traced = [(self._traced(m, self.reports[m.app_label, m.name]), b) for m, b in plan]
        if plan[0][1]:
            # Backwards: the executor computes each migration's state from the full plan;
            # it unapplies the plan's (traced) objects, which compare equal to the originals.
            executor.migrate(None, plan=traced)
            return
        # Forwards: the executor would apply its own (untraced) objects, so apply one by one.
        state = executor._create_project_state(with_applied_migrations=True)
        for migration, _ in traced:
            state = executor.apply_migration(state, migration)

    def _not_run(self, executor: MigrationExecutor, plan: list[tuple[Any, bool]]) -> dict:
        """Migrations that cannot run in a transaction, and those that depend on them."""
        reasons: dict[tuple[str, str], str] = {}
        graph = executor.loader.graph
        for migration, backwards in plan:
            key = (migration.app_label, migration.name)
            reason = not_in_transaction_reason(migration)
            if not reason:
                related = graph.backwards_plan(key) if backwards else graph.forwards_plan(key)
                blocker = next((k for k in related if k != key and k in reasons), None)
                if blocker:
                    verb = "is unapplied after" if backwards else "depends on"
                    reason = f"{verb} {blocker[0]}.{blocker[1]}, which is not run"
            if reason:
                reasons[key] = reason
        return reasons

    def _describe_not_run(
        self, executor: MigrationExecutor, migration: Any, backwards: bool, report: MigrationReport
    ) -> None:
        """The SQL it would run (as sqlmigrate shows it), classified, but not executed."""
        try:
            collected = executor.loader.collect_sql([(migration, backwards)])
        except Exception as exc:  # reported; the dry run goes on
            report.operations.append(OperationReport(f"(its SQL cannot be shown: {exc})"))
            return
        current = OperationReport("(SQL)")
        for item in collected:
            if item.startswith("-- ") and item.strip() != "--":
                current = OperationReport(item[3:].strip())
                report.operations.append(current)
            elif not item.startswith("--"):
                lock = locks.classify(item)
                rows = self._estimates(lock) if lock else {}
                current.statements.append(Statement(item, None, lock, rows))
        if current.description == "(SQL)" and current.statements:
            report.operations.insert(0, current)


def rows_text(reltuples: float | None) -> str:
    """pg_class.reltuples as a reader wants it."""
    if reltuples is None:
        return "not found"
    if reltuples < 0:
        return "row count unknown (never analyzed)"
    return f"~{round(reltuples):,} rows"


def format_report(reports: list[MigrationReport]) -> list[str]:
    """The dry run's report, one line per list item."""
    lines = []
    run = [r for r in reports if not r.not_run]
    not_run = [r for r in reports if r.not_run]
    for number, report in enumerate(run, start=1):
        verb = "unapply" if report.backwards else "apply"
        lines.append(f"[{number}/{len(run)}] {verb} {report.label}  ({report.seconds:.3f} s)")
        lines += _operation_lines(report.operations)
    if not_run:
        lines.append("")
        lines.append(f"Not run ({len(not_run)}): cannot run inside a transaction")
        for report in not_run:
            lines.append(f"  {report.label}: {report.not_run}")
            lines += _operation_lines(report.operations, indent="    ")
    return lines


def _operation_lines(operations: list[OperationReport], indent: str = "  ") -> list[str]:
    lines = []
    for operation in operations:
        lines.append(f"{indent}{operation.description}")
        for statement in operation.statements:
            took = "" if statement.seconds is None else f"  -- {statement.seconds:.3f} s"
            sql = statement.sql.strip().rstrip(";")
            first, *rest = sql.splitlines() or [""]
            lines.append(f"{indent}    {first}{';' if not rest else ''}{took if not rest else ''}")
            if rest:
                lines += [f"{indent}    {line}" for line in rest[:-1]]
                lines.append(f"{indent}    {rest[-1]};{took}")
            lines += _lock_lines(statement, indent + "      ")
    return lines


def _lock_lines(statement: Statement, indent: str) -> list[str]:
    lock = statement.lock
    if lock is None or (lock.lock is None and lock.transactional and lock.kind != "DO"):
        return []  # schemas, functions, grants, new tables: nothing the application waits on
    if not lock.tables:
        return [f"{indent}lock: {lock.describe()}"]
    return [
        f"{indent}lock: {table} ({statement.rows.get(table, 'rows not estimated')}): "
        f"{lock.describe()}"
        for table in lock.tables
    ]
