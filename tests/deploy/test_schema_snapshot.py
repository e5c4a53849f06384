"""The schema snapshot builds the same database as the migration history, and only then.

One empty database is migrated by the snapshot, another by the history (through a
snapshot older than the history, which migrate must refuse), each with a runtime role of
its own; everything the two hold is compared with the role names set aside: the catalog
(tests/parity/catalog.py), the whole pg_dump, the database's privileges, the roles the
migrations made, django_migrations, content types and permissions, sequences, rows, and
dbdoctor's verdict. Then a later migration is applied to both and they are compared again.
"""

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.migrations.loader import MigrationLoader
from psycopg.conninfo import make_conninfo

from hzm.deploy import snapshot
from hzm.deploy.backup import client_program, row_counts
from tests import support
from tests.deploy.conftest import (
    Probe,
    connect,
    create_database,
    drop_database,
    drop_role,
    manage,
    migration,
)
from tests.parity.catalog import diff
from tests.parity.catalog import snapshot as catalog_snapshot

SCHEMAS = ("public", "app", "billing", "cfg", "comms", "core", "ops")
ROLE_SUFFIXES = ("", "_admin", "_billing", "_comms")


# --- The committed snapshot -------------------------------------------------------------------


def test_the_committed_snapshot_is_up_to_date(django_db_blocker):
    with django_db_blocker.unblock():
        try:
            call_command("schema_snapshot", check=True)
        except CommandError as exc:
            pytest.fail(
                f"hzm/schema_snapshot.sql is stale: {exc}. Empty databases are migrated by "
                "the history until it is made again.",
                pytrace=False,
            )


# --- Two databases, two ways ------------------------------------------------------------------


class Built:
    """A database migrated one way, with its own runtime role."""

    def __init__(self, kind: str) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.name, self.role = f"hzm_snap_{kind}_{suffix}", f"hzm_app_snap_{kind}_{suffix}"
        self.outputs: list[subprocess.CompletedProcess] = []

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        result = manage(*args, dbname=self.name, env={"HZM_APP_ROLE": self.role, **env})
        self.outputs.append(result)
        return result

    def normalize(self, value: str) -> str:
        """`value` with this database's runtime role (and the roles after it) as RUNTIME."""
        return re.sub(rf"\b{self.role}(?=\b|_)", "RUNTIME", value)

    def rows(self, statement: str) -> list[tuple]:
        with connect(self.name) as conn:
            return [
                tuple(self.normalize(v) if isinstance(v, str) else v for v in row)
                for row in conn.execute(statement).fetchall()
            ]

    def catalog(self) -> dict[str, Any]:
        with connect(self.name) as conn, conn.cursor() as cursor:
            return catalog_snapshot(cursor, SCHEMAS)

    def dump(self) -> str:
        """pg_dump --schema-only, without psql's per-dump \\restrict key, roles normalized."""
        params = support.server_params(self.name)
        with connect(self.name) as conn:
            major = conn.info.server_version // 10000
        pg_dump = client_program("pg_dump", major)
        env = {"PGPASSWORD": str(params.pop("password"))} if params.get("password") else {}
        result = subprocess.run(
            [pg_dump, "--schema-only", f"--dbname={make_conninfo(**params)}"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        )
        lines = [line for line in result.stdout.splitlines() if not line.startswith("\\")]
        return self.normalize("\n".join(lines))

    def roles(self) -> list[tuple]:
        return self.rows(
            "SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, "
            "r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit, "
            "r.rolconfig::text, ARRAY(SELECT g.rolname FROM pg_auth_members m "
            "JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)::text, "
            "ARRAY(SELECT u.rolname FROM pg_auth_members m "
            "JOIN pg_roles u ON u.oid = m.member WHERE m.roleid = r.oid ORDER BY 1)::text "
            f"FROM pg_roles r WHERE r.rolname = '{self.role}' "
            f"OR starts_with(r.rolname, '{self.role}_') ORDER BY 1"
        )

    def drop(self) -> None:
        drop_database(self.name)
        for suffix in ROLE_SUFFIXES:
            drop_role(self.role + suffix)


def older_snapshot(path: Path, into: Path) -> str:
    """A copy of the snapshot at `path` as if made before the last migration: its label."""
    lines = path.read_text().splitlines(keepends=True)
    header = lines[: lines.index("-- end of header\n")]
    last = max(i for i, line in enumerate(header) if line.startswith("-- migration "))
    into.write_text("".join(lines[:last] + lines[last + 1 :]))
    return lines[last].split()[2]


@pytest.fixture(scope="module")
def up_to_date_snapshot(tmp_path_factory, django_db_blocker) -> Path:
    """The committed snapshot if it is up to date, else one made now (the code is tested)."""
    committed = snapshot.snapshot_path()
    with django_db_blocker.unblock():
        try:
            call_command("schema_snapshot", check=True)
            return committed
        except CommandError:
            made = tmp_path_factory.mktemp("snapshot") / "schema_snapshot.sql"
            manage("schema_snapshot", "--write", dbname="postgres", env=path_env(made))
            return made


def path_env(path: Path) -> dict[str, str]:
    return {"HZM_SCHEMA_SNAPSHOT": str(path)}


@pytest.fixture(scope="module")
def both(up_to_date_snapshot: Path, tmp_path_factory) -> Iterator[tuple[Built, Built]]:
    """(by the snapshot, by the history), each from an empty database."""
    by_snapshot, by_history = Built("s"), Built("h")
    older = tmp_path_factory.mktemp("older") / "schema_snapshot.sql"
    by_history.missing = older_snapshot(up_to_date_snapshot, older)
    try:
        for built in (by_snapshot, by_history):
            create_database(built.name)
        by_snapshot.manage("migrate", "--no-input", **path_env(up_to_date_snapshot))
        by_history.manage("migrate", "--no-input", **path_env(older))
        yield by_snapshot, by_history
    finally:
        by_snapshot.drop()
        by_history.drop()


def test_an_empty_database_is_built_from_the_snapshot(both):
    by_snapshot, _ = both
    out = by_snapshot.outputs[0].stdout
    assert "Loading the schema snapshot of " in out
    assert "Applying " not in out


def test_a_snapshot_older_than_the_history_is_refused(both):
    _, by_history = both
    result = by_history.outputs[0]
    assert "Applying hzm.0001_foundation... OK" in result.stdout
    assert "Loading the schema snapshot" not in result.stdout
    assert f"not in the snapshot: {by_history.missing}" in result.stderr
    assert snapshot.WRITE_COMMAND in result.stderr


def test_the_catalogs_are_the_same(both):
    by_snapshot, by_history = both
    assert diff(by_history.catalog(), by_snapshot.catalog()) == []


def test_pg_dump_finds_the_same_schema(both):
    by_snapshot, by_history = both
    assert by_snapshot.dump() == by_history.dump()


def test_the_same_privileges_on_the_database_and_the_catalog(both):
    by_snapshot, by_history = both
    # Neither is in a schema dump: REVOKE TEMPORARY (hzm 0005) and the catalog functions.
    for statement in (
        "SELECT datacl::text FROM pg_database WHERE datname = current_database()",
        "SELECT p.oid::regprocedure::text, p.proacl::text FROM pg_proc p "
        "WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proacl IS NOT NULL ORDER BY 1",
        "SELECT has_database_privilege('RUNTIME_ROLE', current_database(), 'TEMPORARY')",
    ):
        found = [
            built.rows(statement.replace("RUNTIME_ROLE", built.role))
            for built in (by_snapshot, by_history)
        ]
        assert found[0] == found[1], statement
    assert by_snapshot.rows(
        f"SELECT has_database_privilege('{by_snapshot.role}', current_database(), 'TEMPORARY')"
    ) == [(False,)]


def test_the_same_roles_are_made(both):
    by_snapshot, by_history = both
    roles = by_snapshot.roles()
    assert [row[0] for row in roles] == ["RUNTIME", *(f"RUNTIME{s}" for s in ROLE_SUFFIXES[1:])]
    assert roles == by_history.roles()


def test_the_same_rows(both):
    by_snapshot, by_history = both
    for statement in (
        "SELECT id, app, name FROM django_migrations ORDER BY id",
        "SELECT id, app_label, model FROM django_content_type ORDER BY id",
        "SELECT id, content_type_id, codename, name FROM auth_permission ORDER BY id",
        "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
    ):
        assert by_snapshot.rows(statement) == by_history.rows(statement), statement
    assert len(by_snapshot.rows("SELECT 1 FROM django_migrations")) > 50
    with connect(by_snapshot.name) as s, connect(by_history.name) as h:
        assert row_counts(s.cursor()) == row_counts(h.cursor())


def test_dbdoctor_passes_on_both(both):
    for built in both:
        assert "dbdoctor: the database matches the code" in built.manage("dbdoctor").stdout


# --- A later migration on top of either --------------------------------------------------------

TENANT_WIDGETS = """
    migrations.CreateModel(
        "TenantWidget",
        fields=[
            ("id", models.BigAutoField(primary_key=True)),
            ("tenant", models.ForeignKey("core.tenant", on_delete=models.CASCADE)),
            ("name", models.TextField()),
        ],
        options={"db_table": "tenant_widgets"},
    ),
    migrations.AddIndex(
        "tenantwidget", models.Index(fields=["tenant", "name"], name="idx_tenant_widgets_name")
    ),
    EnableTenantRLS("tenantwidget"),
    GrantTablePrivileges("tenantwidget", ["SELECT", "INSERT"]),
"""


@pytest.fixture(scope="module")
def later(both, tmp_path_factory) -> tuple[Built, Built]:
    """Both databases after a probe app's migrations, which depend on core's last one."""
    probe = Probe(tmp_path_factory.mktemp("probe"))
    core = max(name for app, name in MigrationLoader(None).graph.leaf_nodes() if app == "core")
    source = migration(
        "0001_create_widgets",
        TENANT_WIDGETS,
        imports="from hzm.db.operations import EnableTenantRLS, GrantTablePrivileges\n",
    ).replace("dependencies = [", f"dependencies = [('core', '{core}'), ", 1)
    probe.add("0002_tenant_widgets", source)
    for built in both:
        out = built.manage("migrate", "--no-input", **probe.env).stdout
        # Not empty any more: the history applies what the database lacks, nothing else.
        assert "Applying deployprobe.0002_tenant_widgets... OK" in out
        assert "Applying hzm." not in out and "Loading the schema snapshot" not in out
    return both


def test_a_later_migration_applies_on_top_of_either(later):
    by_snapshot, by_history = later
    catalog = by_snapshot.catalog()
    assert "public.tenant_widgets" in catalog["tables"]
    assert catalog["tables"]["public.tenant_widgets"]["force row security"] is True
    assert diff(by_history.catalog(), catalog) == []
    assert by_snapshot.dump() == by_history.dump()
    statement = "SELECT id, app, name FROM django_migrations ORDER BY id"
    assert by_snapshot.rows(statement) == by_history.rows(statement)
