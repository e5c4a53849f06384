"""squawk, a PostgreSQL migration linter, over the SQL of every migration after the first release.

django-migration-linter (hzm/deploy/lint.py) judges Django's operations; squawk parses the
real statements with PostgreSQL's grammar, so it also sees a validating foreign key added
by the toolkit's operations, a unique index on a schema-qualified table, and every
statement of a migration, not just the first index. Both run in CI
(tests/deploy/test_migration_safety.py).

- The first release (0.1.0) is the design guide's schema: FIRST_RELEASE and the
  migrations it depends on, the state the parity test compares with the guide's SQL.
  They created empty tables; every later migration may meet populated ones.
- Each migration's SQL is what `sqlmigrate` prints (BEGIN/COMMIT for an atomic one), one
  file per migration, given to one run of the `squawk` binary of squawk-cli.
- RULES_OFF are rules that do not apply to this project at all, each with the reason;
  ACCEPTED are findings reviewed one by one: migration -> rule -> why it is safe there.
  A finding in neither fails the build, and so does an acceptance squawk no longer needs.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

FIRST_RELEASE = ("generic_data", "0001_add_generic_data")
PG_VERSION = "15"

RULES_OFF = {
    "require-lock-timeout": (
        "migrate sets lock_timeout for the whole session (HZM_MIGRATION_LOCK_TIMEOUT, 5 s) "
        "and retries what timed out (hzm/deploy/connection.py); the SQL itself need not"
    ),
    "require-statement-timeout": (
        "no statement timeout is wanted for migrations: a backfill or VALIDATE CONSTRAINT "
        "runs as long as the table needs, without blocking writes; lock waits are bounded"
    ),
    "prefer-bigint-over-int": (
        "the column types are the design guide's (integer ids), held to it by the parity "
        "test; a change of type is a migration of its own"
    ),
    "prefer-bigint-over-smallint": "the design guide's types, as for prefer-bigint-over-int",
    "prefer-text-field": (
        "varchar(n) columns are the design guide's, held to it by the parity test"
    ),
}

# Reviewed findings: "app.migration": {"rule": "why it is safe there"}.
ACCEPTED: dict[str, dict[str, str]] = {
    "core.0002_tenant_isolation": {
        rule: "0.1.0, with core.0001: the tenant keys and unique constraints are added to "
        "tables no deployment had filled (the linter's acceptance of the same migration)"
        for rule in (
            "adding-foreign-key-constraint",
            "constraint-missing-not-valid",
            "disallowed-unique-constraint",
            "ban-drop-constraint",
            "require-concurrent-index-creation",
        )
    },
    "generic_data.0002_tenant_isolation": {
        rule: "0.1.0, with generic_data.0001: app.generic_data is still empty when its "
        "tenant key is added; keys added to populated tables since use "
        "AddTenantForeignKey(validate_separately=True) (NOT VALID, then VALIDATE)"
        for rule in ("adding-foreign-key-constraint", "constraint-missing-not-valid")
    },
    "core.0005_add_file_storage": {
        rule: "0.1.0: core.files (core.0001) is still empty everywhere when its UNIQUE "
        "(tenant_id, id) is added"
        for rule in ("constraint-missing-not-valid", "disallowed-unique-constraint")
    },
    "core.0007_index_user_references": {
        "prefer-robust-stmts": "Django's AddIndexConcurrently writes CREATE INDEX CONCURRENTLY "
        "without IF NOT EXISTS: a build that fails leaves an INVALID index behind, which the "
        "operator drops (DROP INDEX CONCURRENTLY IF EXISTS <name>) before running migrate "
        "again; the build itself blocks no writes"
    },
    "ops.0005_audit_logs_tenant_id_index": {
        "prefer-robust-stmts": "as core.0007: Django's AddIndexConcurrently writes no IF NOT "
        "EXISTS; a failed build leaves an INVALID index, dropped by the operator (DROP INDEX "
        "CONCURRENTLY IF EXISTS ops.idx_audit_tenant_id) before migrate runs again"
    },
    "generic_data.0008_cheaper_writes": {
        "ban-drop-constraint": "the three single-column keys of app.generic_data (tenant_id, "
        "project_id, table_id) are implied by fk_generic_data_tenant_project_table, which "
        "stays: no row they refused is accepted now, and deleting a tenant or project still "
        "reaches the rows through their table's keys"
    },
    "cfg.0005_unique_global_translations": {
        rule: "0.1.0: cfg.translations holds only reference data (a few hundred rows) when "
        "its unique key is rebuilt; the lock lasts milliseconds"
        for rule in (
            "ban-drop-constraint",
            "constraint-missing-not-valid",
            "disallowed-unique-constraint",
        )
    },
}


class SquawkError(RuntimeError):
    """squawk could not be run, or answered something that is not its report."""


@dataclass(frozen=True)
class Finding:
    migration: str  # app.name
    rule: str
    message: str
    help: str
    line: int

    def __str__(self) -> str:
        return (
            f"{self.migration} (sqlmigrate line {self.line}): {self.message} [{self.rule}]"
            f"\n    fix: {self.help}"
        )


def squawk_binary() -> str:
    """The `squawk` of squawk-cli: beside this Python (the virtualenv), else on PATH."""
    beside = Path(sys.executable).with_name("squawk")
    found = str(beside) if beside.is_file() else shutil.which("squawk")
    if not found:
        raise SquawkError(
            "squawk is not installed: pip install -r requirements.txt (the squawk-cli package)"
        )
    return found


def project_apps() -> list[str]:
    """The apps whose migrations live in this repository (not Django's, not third parties')."""
    from django.apps import apps

    base = Path(settings.BASE_DIR).resolve()
    return [
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(base)
        and "site-packages" not in Path(config.path).parts  # a virtualenv in the checkout
        and (Path(config.path) / "migrations").is_dir()
    ]


def migrations_after_first_release(loader: MigrationLoader) -> list[tuple[str, str]]:
    """Every migration of the project's apps that is not part of the first release."""
    released = set(loader.graph.forwards_plan(FIRST_RELEASE))
    ours = set(project_apps())
    return sorted(key for key in loader.disk_migrations if key[0] in ours and key not in released)


def migration_sql(loader: MigrationLoader, app: str, name: str) -> str:
    """What `sqlmigrate app name` prints: its statements, in BEGIN/COMMIT when atomic."""
    migration = loader.disk_migrations[app, name]
    statements = loader.collect_sql([(loader.graph.nodes[app, name], False)])
    if migration.atomic:
        statements = ["BEGIN;", *statements, "COMMIT;"]
    return "\n".join(statements) + "\n"


def run_squawk(files: dict[str, str]) -> list[Finding]:
    """squawk over `files` ({label: SQL}), the rules of RULES_OFF excluded."""
    if not files:
        return []
    with tempfile.TemporaryDirectory(prefix="hzm-squawk-") as folder:
        paths = {}
        for label, text in files.items():
            path = Path(folder) / f"{label}.sql"
            path.write_text(text)
            paths[str(path)] = label
        result = subprocess.run(
            [
                squawk_binary(),
                "--reporter=json",
                f"--pg-version={PG_VERSION}",
                f"--exclude={','.join(sorted(RULES_OFF))}",
                *paths,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    if result.returncode not in (0, 1):
        raise SquawkError(f"squawk failed (exit {result.returncode}): {result.stderr.strip()}")
    try:
        report = json.loads(result.stdout or "[]")
    except json.JSONDecodeError as error:
        raise SquawkError(f"squawk printed no JSON report: {result.stdout[:200]!r}") from error
    return [
        Finding(
            paths.get(item["file"], item["file"]),
            item["rule_name"],
            item["message"],
            item.get("help") or "",
            item["line"] + 1,
        )
        for item in report
    ]


# The toolkit's re-runnable NOT VALID step drops and adds the same constraint in one
# statement (sql.readd_not_valid): no guarantee is removed, so ban-drop-constraint does not
# apply to it.
READD = re.compile(r'DROP CONSTRAINT IF EXISTS ("[^"]+"), ADD CONSTRAINT \1 .* NOT VALID;?$')


def _readds_the_same_constraint(finding: Finding, text: str) -> bool:
    if finding.rule != "ban-drop-constraint":
        return False
    lines = text.splitlines()
    return 0 < finding.line <= len(lines) and bool(READD.search(lines[finding.line - 1]))


def lint_migrations() -> list[Finding]:
    """squawk's findings on every migration after the first release."""
    # collect_sql() renders through a schema editor; nothing is run. A connection of its
    # own, outside any transaction the caller is in (a test's): an operation that refuses
    # to run in one (AddIndexConcurrently) then renders as sqlmigrate renders it.
    connection = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        files = {
            f"{app}.{name}": migration_sql(loader, app, name)
            for app, name in migrations_after_first_release(loader)
        }
    finally:
        connection.close()
    return check_sql(files)


def check_sql(files: dict[str, str]) -> list[Finding]:
    """squawk's findings on `files` ({label: SQL}), less the toolkit's known-safe steps."""
    return [
        finding
        for finding in run_squawk(files)
        if not _readds_the_same_constraint(finding, files.get(finding.migration, ""))
    ]


def unaccepted(findings: list[Finding]) -> list[Finding]:
    """The findings no one has reviewed (not in ACCEPTED)."""
    return [f for f in findings if f.rule not in ACCEPTED.get(f.migration, {})]


def stale_acceptances(findings: list[Finding]) -> list[str]:
    """Acceptances squawk no longer needs: "app.migration: rule"."""
    found = {(f.migration, f.rule) for f in findings}
    return [
        f"{migration}: {rule}"
        for migration, rules in sorted(ACCEPTED.items())
        for rule in sorted(rules)
        if (migration, rule) not in found
    ]
