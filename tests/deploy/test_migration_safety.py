"""Unsafe migrations fail the build, naming the fix; every migration is reversible.

The linter (django-migration-linter, configured in settings) runs over every migration
of the project here, so `pytest` (and ./dev test) fails on a migration that would lock
or break a live table. The probe app shows it catching each kind of unsafe change, and
leaving the safe ways and the toolkit's operations alone.
"""

import json

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from hzm.db import sql
from hzm.deploy import squawk
from hzm.deploy.lint import FIXES, lint_migrations
from tests.deploy.conftest import migration

TOOLKIT = "from hzm.db import operations as hzm_ops\n"
CONCURRENTLY = "from django.contrib.postgres.operations import AddIndexConcurrently\n"
FUNCTION_WITH_NOT_NULL = '''
hzm_ops.InstallFunction(
    name="public.widget_count",
    arguments="",
    returns="int",
    body="""
DECLARE
  n int NOT NULL := 0;
BEGIN
  SELECT count(*) INTO n FROM deployprobe_widget;
  RETURN n;
END""",
),
'''
PROBE_MIGRATIONS = [
    # (name, operations, atomic, imports, the linter's code or None when it is safe)
    (
        "0002_add_widget_size",
        'migrations.AddField("widget", "size", models.IntegerField())',
        True,
        "",
        "NOT_NULL",
    ),
    (
        "0003_add_widget_name_index",
        'migrations.AddIndex("widget", models.Index(fields=["name"], name="idx_widget_name"))',
        True,
        "",
        "CREATE_INDEX",
    ),
    (
        "0004_remove_widget_name",
        'migrations.RemoveField("widget", "name")',
        True,
        "",
        "DROP_COLUMN",
    ),
    (
        "0005_rename_widget_size",
        'migrations.RenameField("widget", "size", "volume")',
        True,
        "",
        "RENAME_COLUMN",
    ),
    (
        "0006_raw_sql_without_reverse",
        'migrations.RunSQL("SELECT 1")',
        True,
        "",
        "RUNSQL_REVERSIBLE",
    ),
    (
        "0007_add_widget_score",
        'hzm_ops.AddNotNullColumnSafely("widget", "score", models.IntegerField(db_default=0))',
        False,
        TOOLKIT,
        None,
    ),
    (
        "0008_index_widget_score",
        'AddIndexConcurrently("widget", models.Index(fields=["score"], name="idx_widget_score"))',
        False,
        CONCURRENTLY,
        None,
    ),
    (
        "0009_add_widget_colour",
        'migrations.AddField("widget", "colour", models.TextField(db_default="red"))',
        True,
        "",
        None,
    ),
    (
        "0010_widget_rules",
        FUNCTION_WITH_NOT_NULL
        + 'hzm_ops.AttachTouchTrigger("widget"),\n'
        + 'hzm_ops.EnableTenantRLS("widget", column="id"),',
        True,
        TOOLKIT,
        None,
    ),
]


def test_every_migration_of_the_project_is_safe(db):
    errors, _warnings = lint_migrations()
    assert not errors, "unsafe migrations:\n" + "\n".join(map(str, errors))


def test_each_unsafe_change_is_caught_with_its_fix(run, probe, databases):
    previous = "0001_create_widgets"
    for name, operations, atomic, imports, _code in PROBE_MIGRATIONS:
        probe.add(name, migration(previous, operations, atomic=atomic, imports=imports))
        previous = name
    script = (
        "import json; from hzm.deploy.lint import lint_migrations; "
        "errors, _ = lint_migrations('deployprobe'); "
        "print(json.dumps([[e.migration, e.code, str(e)] for e in errors]))"
    )
    out = run("shell", "-c", script, dbname=databases.clone(), env=probe.env).stdout
    found = json.loads(out.strip().splitlines()[-1])

    expected = {f"deployprobe.{name}": code for name, _, _, _, code in PROBE_MIGRATIONS if code}
    assert {migration: code for migration, code, _ in found} == expected
    for _, code, text in found:
        assert f"fix: {FIXES[code]}" in text


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("NOT_NULL", ("AddNotNullColumnSafely", "db_default")),
        ("CREATE_INDEX", ("AddIndexConcurrently", "atomic = False")),
        ("DROP_COLUMN", ("deprecate", "later release")),
        ("RENAME_COLUMN", ("expand and contract",)),
    ],
)
def test_the_fixes_name_the_safe_way(code, names):
    assert all(name in FIXES[code] for name in names)


def test_squawk_finds_nothing_unreviewed_in_the_migrations_after_the_first_release(db):
    findings = squawk.lint_migrations()
    unreviewed = squawk.unaccepted(findings)
    assert not unreviewed, "squawk findings, fix or accept them (hzm/deploy/squawk.py):\n" + (
        "\n".join(map(str, unreviewed))
    )
    assert squawk.stale_acceptances(findings) == []


def test_squawk_lints_every_migration_after_the_first_release(db):
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    linted = squawk.migrations_after_first_release(loader)
    assert ("generic_data", "0002_tenant_isolation") in linted
    assert ("generic_data", "0001_add_generic_data") not in linted  # the guide's schema
    assert {app for app, _ in linted} <= set(squawk.project_apps())
    assert not {app for app, _ in linted} & {"auth", "contenttypes", "sessions", "admin", "axes"}


def test_squawk_catches_what_the_migration_linter_misses():
    """The issue's three: a validating foreign key on a populated table, a unique index on a
    schema-qualified table, and an index that is not the migration's first."""
    foreign_key = sql.add_foreign_key(
        "fk_rows_tenant_table",
        "app",
        "rows",
        ("tenant_id", "table_id"),
        "core",
        "tables",
        ("tenant_id", "id"),
    )
    indexes = (
        'CREATE INDEX "idx_rows_a" ON "app"."rows" ("a");\n'
        'CREATE UNIQUE INDEX "idx_rows_b" ON "app"."rows" ("b");'
    )
    findings = squawk.check_sql(
        {"probe.0002_key": f"BEGIN;\n{foreign_key};\nCOMMIT;\n", "probe.0003_indexes": indexes}
    )
    found = {(f.migration, f.rule, f.line) for f in findings}
    assert ("probe.0002_key", "adding-foreign-key-constraint", 2) in found
    assert {
        ("probe.0003_indexes", "require-concurrent-index-creation", 1),
        ("probe.0003_indexes", "require-concurrent-index-creation", 2),
    } <= found


def test_the_not_valid_path_of_add_tenant_foreign_key_satisfies_squawk():
    add = sql.add_foreign_key(
        "fk_rows_tenant_table",
        "app",
        "rows",
        ("tenant_id", "table_id"),
        "core",
        "tables",
        ("tenant_id", "id"),
    )
    steps = [
        sql.readd_not_valid(add, "fk_rows_tenant_table"),
        sql.validate_constraint("app", "rows", "fk_rows_tenant_table"),
    ]
    assert squawk.check_sql({"probe.0004_key": ";\n".join(steps) + ";\n"}) == []


def test_every_migration_is_reversible():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    irreversible = [
        f"{app}.{name}: {operation.describe()}"
        for (app, name), migration in loader.disk_migrations.items()
        for operation in migration.operations
        if not operation.reversible
    ]
    assert irreversible == []
