"""django-migration-linter over the project's migrations, each problem with its fix.

The linter reads the SQL `sqlmigrate` prints, so the toolkit's operations (RunSQL-like,
built on schema_editor.execute) are judged by the statements they really run: none of
them is a RunSQL, and none trips a check it should not (tests/deploy). Its options come
from settings.MIGRATION_LINTER_OPTIONS (the keys its lintmigrations command reads);
settings.HZM_MIGRATION_LINT_ACCEPTED lists, by app and name, the migrations that were
reviewed and accepted although flagged.
"""

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django_migration_linter import MigrationLinter
from django_migration_linter.management.utils import extract_warnings_as_errors_option

# What to do instead, by the linter's check code.
FIXES = {
    "NOT_NULL": (
        "give the field a db_default (old code inserting without the column then still "
        "works), or add it with hzm.db.operations.AddNotNullColumnSafely in a migration "
        "with atomic = False (nullable, batched backfill, CHECK NOT VALID, VALIDATE, SET NOT NULL)"
    ),
    "CREATE_INDEX": (
        "build it with django.contrib.postgres.operations.AddIndexConcurrently in a "
        "migration with atomic = False (CREATE INDEX CONCURRENTLY does not block writes)"
    ),
    "CREATE_INDEX_EXCLUSIVE": (
        "move the index into its own migration with atomic = False and AddIndexConcurrently, "
        "so no lock taken earlier in the transaction is held while it builds"
    ),
    "DROP_INDEX": "use RemoveIndexConcurrently in a migration with atomic = False",
    "REINDEX": "REINDEX CONCURRENTLY, outside a transaction (atomic = False)",
    "DROP_COLUMN": (
        "deprecate first: release code that no longer reads or writes the column (remove the "
        "field from the state only: SeparateDatabaseAndState), drop it in a later release, "
        "then add that migration to HZM_MIGRATION_LINT_ACCEPTED with the release it follows"
    ),
    "DROP_TABLE": (
        "deprecate first: release code that no longer uses the table, drop it in a later "
        "release and accept that migration in HZM_MIGRATION_LINT_ACCEPTED"
    ),
    "RENAME_COLUMN": (
        "expand and contract: add the new column, write both, backfill, switch the reads, "
        "drop the old column in a later release (a rename breaks the running code at once)"
    ),
    "RENAME_TABLE": (
        "expand and contract: create the new table (or a view under the old name), move "
        "the code over, drop the old one in a later release"
    ),
    "ALTER_COLUMN": (
        "a type change rewrites the table under ACCESS EXCLUSIVE unless the types are "
        "binary-compatible: add a new column and backfill it instead, or accept it "
        "(HZM_MIGRATION_LINT_ACCEPTED) after checking that it does not rewrite"
    ),
    "ADD_UNIQUE": (
        "CREATE UNIQUE INDEX CONCURRENTLY (AddIndexConcurrently, atomic = False), then "
        "ADD CONSTRAINT ... UNIQUE USING INDEX"
    ),
    "RUNSQL_REVERSIBLE": "give the RunSQL a reverse_sql: every migration must be reversible",
    "RUNPYTHON_REVERSIBLE": "give the RunPython a reverse_code: every migration must be reversible",
}
CODE_DEFINITION = re.compile(r"\s*(CREATE (OR REPLACE )?(FUNCTION|PROCEDURE)|DO)\b", re.IGNORECASE)
LINTER_ARGUMENTS = {
    # MIGRATION_LINTER_OPTIONS key -> MigrationLinter argument
    "exclude_apps": "exclude_apps",
    "include_apps": "include_apps",
    "ignore_name": "ignore_name",
    "ignore_name_contains": "ignore_name_contains",
    "exclude_migration_tests": "exclude_migration_tests",
    "ignore_initial_migrations": "ignore_initial_migrations",
    "ignore_sqlmigrate_errors": "ignore_sqlmigrate_errors",
    "sql_analyser": "analyser_string",
}


@dataclass(frozen=True)
class Problem:
    migration: str
    code: str
    message: str
    table: str | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = f" (table {self.table}" + (f", column {self.column})" if self.column else ")")
        where = where if self.table else ""
        fix = FIXES.get(self.code, "see django-migration-linter's documentation")
        return f"{self.migration}: {self.message}{where} [{self.code}]\n    fix: {fix}"


class _Linter(MigrationLinter):
    """The linter, collecting its findings instead of printing them."""

    def __init__(self, accepted: set[str], **kwargs: Any) -> None:
        self.accepted = accepted
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self._current = ""
        super().__init__(**kwargs)
        # The SQL is rendered through a connection of its own, outside any transaction the
        # caller is in (a test's), so that an operation refusing to run in one
        # (AddIndexConcurrently) renders as sqlmigrate renders it.
        self.own_connection = connections.create_connection(self.database)
        self.migration_loader = MigrationLoader(self.own_connection, ignore_no_migrations=True)

    def should_ignore_migration(self, app_label: str, migration_name: str, *args, **kwargs) -> bool:
        return f"{app_label}.{migration_name}" in self.accepted or super().should_ignore_migration(
            app_label, migration_name, *args, **kwargs
        )

    def print_linting_msg(self, app_label: str, migration_name: str, msg: str, *args) -> None:
        self._current = f"{app_label}.{migration_name}"

    def get_sql(self, app_label: str, migration_name: str) -> list[str]:
        """What sqlmigrate prints, one whole statement per item instead of one line.

        The linter splits sqlmigrate's output into lines, so the columns of a multi-line
        CREATE TABLE look like ALTERs of an existing table, and a function body's lines
        like DDL. Code definitions (functions, DO blocks) are left out: they change no
        table, and their bodies are not DDL.
        """
        loader = self.migration_loader
        migration = loader.get_migration_by_prefix(app_label, migration_name)
        plan = [(loader.graph.nodes[app_label, migration.name], False)]
        statements = [
            " ".join(statement.split())
            for statement in loader.collect_sql(plan)
            if not statement.startswith("--") and not CODE_DEFINITION.match(statement)
        ]
        if migration.atomic:  # as sqlmigrate shows an atomic migration
            statements = ["BEGIN;", *statements, "COMMIT;"]
        return statements

    def _collect(self, into: list[Problem], issues: list[Any]) -> None:
        into += [
            Problem(self._current, issue.code, issue.message, issue.table, issue.column)
            for issue in issues
        ]

    def print_errors(self, errors: list[Any]) -> None:
        self._collect(self.errors, errors)

    def print_warnings(self, warnings: list[Any]) -> None:
        self._collect(self.warnings, warnings)

    def print_summary(self) -> None:
        pass


def lint_migrations(app_label: str | None = None) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of every migration (of `app_label`), as configured in settings."""
    options = dict(getattr(settings, "MIGRATION_LINTER_OPTIONS", {}))
    kwargs = {LINTER_ARGUMENTS[k]: v for k, v in options.items() if k in LINTER_ARGUMENTS}
    tests, all_tests = extract_warnings_as_errors_option(options.get("warnings_as_errors"))
    linter = _Linter(
        accepted=set(getattr(settings, "HZM_MIGRATION_LINT_ACCEPTED", {})),
        no_cache=True,
        warnings_as_errors_tests=tests,
        all_warnings_as_errors=all_tests,
        **kwargs,
    )
    try:
        linter.lint_all_migrations(app_label=app_label)
    finally:
        linter.own_connection.close()
    return linter.errors, linter.warnings
