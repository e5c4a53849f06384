"""The migrations: in step with the models, reversible app by app, and showing their real SQL.

The round trip runs `manage.py migrate` in a subprocess against a scratch database
(and a scratch runtime role, whose name the service roles derive theirs from, since
roles belong to the whole cluster), so it never touches the test database or anyone
else's.
"""

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from psycopg import sql

from hzm.db.sql import service_role_name
from tests.parity.catalog import diff, snapshot

REPO_ROOT = Path(settings.BASE_DIR)
PLATFORM_SCHEMAS = ("app", "billing", "cfg", "comms", "core", "ops")
EXTENSIONS = ("citext", "pg_trgm", "pgcrypto", "uuid-ossp")
SEED_FUNCTIONS = (
    "app.set_context",
    "app.current_tenant",
    "app.current_user_id",
    "app.touch_row",
    "app.soft_delete",
    "app.jsonb_to_text",
    "ops.log_audit",
)
# Unapplied in this order: each app before the ones it depends on.
APPS = ("billing", "comms", "generic_data", "core", "ops", "cfg", "hzm")
# The roles named after the runtime role, <runtime role>_<service>: the microservices'
# (hzm 0003) and the platform admin's (hzm 0004).
SERVICES = ("admin", "billing", "comms")


# --- makemigrations ---------------------------------------------------------------------


@pytest.mark.django_db
def test_models_need_no_new_migration():
    out = StringIO()
    try:
        call_command("makemigrations", check=True, dry_run=True, verbosity=2, stdout=out)
    except SystemExit as exit_:
        pytest.fail(f"makemigrations --check found changes (exit {exit_.code}):\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


# --- sqlmigrate ---------------------------------------------------------------------------


def sqlmigrate(app: str, migration: str, *, backwards: bool = False) -> list[str]:
    """The statements `sqlmigrate` prints, one per line, without comments."""
    output = call_command("sqlmigrate", app, migration, backwards=backwards, stdout=StringIO())
    return [line for line in output.splitlines() if line and not line.startswith("--")]


USERS_DDL = [
    'CREATE TRIGGER "trg_users_touch" BEFORE UPDATE ON "core"."users" FOR EACH ROW '
    'EXECUTE FUNCTION "app"."touch_row"();',
    'CREATE TRIGGER "trg_users_softdel" BEFORE DELETE ON "core"."users" FOR EACH ROW '
    'EXECUTE FUNCTION "app"."soft_delete"();',
    'CREATE TRIGGER "trg_users_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."users" '
    'FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();',
    'ALTER TABLE "core"."users" ENABLE ROW LEVEL SECURITY;',
    'ALTER TABLE "core"."users" FORCE ROW LEVEL SECURITY;',
    'CREATE POLICY "rls_users_tenant" ON "core"."users" '
    'USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());',
]

CREATE_USERS_TABLE = 'CREATE TABLE "core"."users" ('

USERS_DROP_DDL = [
    'DROP POLICY "rls_users_tenant" ON "core"."users";',
    'ALTER TABLE "core"."users" NO FORCE ROW LEVEL SECURITY;',
    'ALTER TABLE "core"."users" DISABLE ROW LEVEL SECURITY;',
    'DROP TRIGGER "trg_users_audit" ON "core"."users";',
    'DROP TRIGGER "trg_users_softdel" ON "core"."users";',
    'DROP TRIGGER "trg_users_touch" ON "core"."users";',
]

# The seed's 001 names these triggers and policies on core's tables.
CORE_TRIGGERS = {
    *(f"trg_{stem}_touch" for stem in (
        "tenants", "users", "sessions", "2fa", "projects", "table_metadata", "api_keys", "files"
    )),
    *(f"trg_{stem}_softdel" for stem in ("tenants", "users", "projects", "table_metadata")),
    *(f"trg_{stem}_audit" for stem in (
        "tenants", "users", "projects", "table_metadata", "api_keys"
    )),
}  # fmt: skip
CORE_POLICIES = {
    f"rls_{stem}_tenant"
    for stem in ("users", "sessions", "2fa", "projects", "table_metadata", "api_keys", "files")
}


@pytest.mark.django_db
def test_sqlmigrate_shows_the_seed_triggers_and_row_level_security():
    statements = sqlmigrate("core", "0001_initial_schema")

    for statement in USERS_DDL:
        assert statement in statements
    assert set(re.findall(r'CREATE TRIGGER "(\w+)"', "\n".join(statements))) == CORE_TRIGGERS
    assert set(re.findall(r'CREATE POLICY "(\w+)"', "\n".join(statements))) == CORE_POLICIES
    # A trigger is created after its table, not before.
    [create_users] = [i for i, s in enumerate(statements) if s.startswith(CREATE_USERS_TABLE)]
    assert statements.index(USERS_DDL[0]) > create_users


@pytest.mark.django_db
def test_sqlmigrate_backwards_drops_them_before_the_table():
    statements = sqlmigrate("core", "0001_initial_schema", backwards=True)

    for statement in USERS_DROP_DDL:
        assert statement in statements
    drop_table = statements.index('DROP TABLE "core"."users" CASCADE;')
    assert all(statements.index(statement) < drop_table for statement in USERS_DROP_DDL)
    assert len([s for s in statements if s.startswith("DROP TRIGGER")]) == len(CORE_TRIGGERS)
    assert len([s for s in statements if s.startswith("DROP POLICY")]) == len(CORE_POLICIES)


# --- migrate to zero and back ---------------------------------------------------------------


def server_params(dbname: str) -> dict[str, Any]:
    """psycopg connection parameters for `dbname` on the test database's server."""
    params = connection.get_connection_params()
    for django_only in ("context", "cursor_factory"):  # Django's adapters and cursor class
        params.pop(django_only, None)
    return params | {"dbname": dbname}


def database_url(dbname: str) -> str:
    """A DATABASE_URL for `dbname` on the same server, as the same user."""
    params = server_params(dbname)
    user = quote(params.get("user") or "", safe="")
    if params.get("password"):
        user += ":" + quote(params["password"], safe="")
    host, port = params.get("host") or "", params.get("port")
    query = {}
    if host.startswith("/"):  # a socket directory goes in the query, not the netloc
        query["host"], host = host, ""
    netloc = f"{user}@{host}" + (f":{port}" if port else "")
    return f"postgresql://{netloc}/{quote(dbname)}" + (f"?{urlencode(query)}" if query else "")


def scratch_roles(role: str) -> list[str]:
    """The scratch runtime role and the service roles named after it, sorted."""
    return sorted([role, *(service_role_name(role, service) for service in SERVICES)])


@pytest.fixture
def scratch_database() -> Iterator[tuple[str, str]]:
    """(database, runtime role), both unique to this test; dropped afterwards.

    The service roles the migrations derive from the runtime role are dropped too.
    """
    suffix = uuid.uuid4().hex[:12]
    name, role = f"hzm_roundtrip_{suffix}", f"hzm_app_roundtrip_{suffix}"
    with psycopg.connect(**server_params("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, role
    finally:
        with psycopg.connect(**server_params("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for scratch_role in scratch_roles(role):
                admin.execute(
                    sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(scratch_role))
                )


def manage(database: str, role: str, *args: str) -> str:
    """Run manage.py against the scratch database; fail with its output unless it exits 0."""
    env = os.environ | {"DATABASE_URL": database_url(database), "HZM_APP_ROLE": role}
    result = subprocess.run(
        [sys.executable, "manage.py", *args, "--no-input"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def platform_objects(database: str, role: str) -> dict[str, Any]:
    """What the platform migrations put in the catalog: schemas, functions, extensions, roles."""
    with psycopg.connect(**server_params(database)) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(PLATFORM_SCHEMAS)]
        ).fetchall()
        functions = conn.execute(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('app', 'ops')"
        ).fetchall()
        extensions = conn.execute(
            "SELECT extname FROM pg_extension WHERE extname = ANY(%s)", [list(EXTENSIONS)]
        ).fetchall()
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = %s OR starts_with(rolname, %s)",
            [role, f"{role}_"],
        ).fetchall()
    return {
        "schemas": sorted(name for (name,) in schemas),
        "functions": sorted(name for (name,) in functions),
        "extensions": sorted(name for (name,) in extensions),
        "roles": sorted(name for (name,) in roles),  # the runtime role and service roles
    }


def catalog(database: str) -> dict[str, Any]:
    with psycopg.connect(**server_params(database)) as conn, conn.cursor() as cursor:
        return snapshot(cursor)


def test_every_app_migrates_to_zero_and_back(scratch_database):
    database, role = scratch_database
    # The real history, not the schema snapshot an empty database is built from otherwise.
    manage(database, role, "migrate", "--no-snapshot")
    migrated = platform_objects(database, role)
    migrated_catalog = catalog(database)

    for app in APPS:
        manage(database, role, "migrate", app, "zero")
    emptied = platform_objects(database, role)
    manage(database, role, "migrate")

    assert emptied == {"schemas": [], "functions": [], "extensions": [], "roles": []}
    assert migrated["schemas"] == list(PLATFORM_SCHEMAS)
    assert migrated["extensions"] == sorted(EXTENSIONS)
    assert migrated["roles"] == scratch_roles(role)
    assert set(SEED_FUNCTIONS) <= set(migrated["functions"])
    assert platform_objects(database, role) == migrated
    assert diff(migrated_catalog, catalog(database)) == []
    assert "No migrations to apply." in manage(database, role, "migrate")
