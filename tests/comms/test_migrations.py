"""The migrations of the guide's 002-011 (hzm 0003, core 0003-0005, cfg 0004, ops 0003, comms,
billing) reverse to the state before them, leaving nothing behind, and apply again.

Run with `manage.py migrate` in subprocesses against a scratch database and a scratch
runtime role (the service roles are named after it), so neither the test database
nor any other database's roles are touched.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.parity.catalog import diff, snapshot
from tests.support import REPO_ROOT, database_url, server_params

SCHEMAS = ("app", "billing", "cfg", "comms", "core", "ops")
# Each app back to where it was before this issue, dependants first.
BEFORE = [
    ("billing", "zero"),
    ("comms", "zero"),
    ("ops", "0002_audit_trail_rls"),
    ("cfg", "0003_audit_triggers"),
    ("core", "0002_tenant_isolation"),
    ("hzm", "0002_runtime_role_and_audit_trail"),
]
TABLES = [
    "core.organizations",
    "core.organization_members",
    "core.roles",
    "core.permissions",
    "core.role_permissions",
    "core.user_roles",
    "core.image_variants",
    "comms.notifications",
    "comms.email_queue",
    "comms.webhooks",
    "comms.webhook_deliveries",
    "billing.plans",
    "billing.subscriptions",
    "ops.system_logs",
    "cfg.feature_flags",
    "cfg.feature_flag_overrides",
]
FUNCTIONS = [
    "app.has_permission",
    "core.check_role_tenant",
    "billing.sync_tenant_subscription",
    "ops.write_system_log",
]


@pytest.fixture
def scratch(django_db_setup) -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch database name, and the environment that points manage.py at it."""
    suffix = uuid.uuid4().hex[:10]
    name, role = f"hzm_issue7_{suffix}", f"hzm_app_i7_{suffix}"
    with psycopg.connect(**server_params("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, role
    finally:
        with psycopg.connect(**server_params("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            # The runtime role and every service role migrate derived from it (the
            # admin's from hzm 0004 too), or they would outlive the test in the cluster.
            leftovers = admin.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = %s OR rolname LIKE %s",
                [role, role.replace("_", "\\_") + "\\_%"],
            ).fetchall()
            for (leftover,) in leftovers:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(leftover)))


def migrate(database: str, role: str, *args: str) -> None:
    """manage.py migrate ARGS on the scratch database, with the scratch runtime role."""
    env = os.environ | {"DATABASE_URL": database_url(database), "HZM_APP_ROLE": role}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", *args, "--no-input"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"migrate {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def issue_objects(database: str, role: str) -> dict[str, list]:
    with psycopg.connect(**server_params(database)) as conn:
        tables = conn.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", [TABLES]
        ).fetchall()
        functions = conn.execute(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname || '.' || p.proname = ANY(%s)",
            [FUNCTIONS],
        ).fetchall()
        roles = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1", [f"{role}\\_%"]
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conname = 'files_tenant_id_id_key'"
        ).fetchall()
        policies = conn.execute(
            "SELECT policyname FROM pg_policies WHERE policyname LIKE 'rls_audit_logs_owner%%'"
        ).fetchall()
        in_service_schemas = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('comms', 'billing')"
        ).fetchall()
    return {
        "tables": sorted(t for (t,) in tables),
        "functions": sorted(f for (f,) in functions),
        "service roles": [r for (r,) in roles],
        "constraints": [c for (c,) in constraints],
        "policies": sorted(p for (p,) in policies),
        "objects in comms and billing": [n for (n,) in in_service_schemas],
    }


def catalog(database: str) -> dict:
    with psycopg.connect(**server_params(database)) as conn, conn.cursor() as cursor:
        return snapshot(cursor, SCHEMAS)


def test_the_issues_migrations_reverse_cleanly_and_apply_again(scratch):
    database, role = scratch
    migrate(database, role)
    applied = issue_objects(database, role)
    applied_catalog = catalog(database)

    for app, target in BEFORE:
        migrate(database, role, app, target)
    reversed_ = issue_objects(database, role)
    migrate(database, role)

    assert applied == {
        "tables": sorted(TABLES),
        "functions": sorted(FUNCTIONS),
        # The admin role comes from hzm 0004, which depends on these and reverses with them.
        "service roles": [f"{role}_admin", f"{role}_billing", f"{role}_comms"],
        "constraints": ["files_tenant_id_id_key"],
        "policies": ["rls_audit_logs_owner_prune", "rls_audit_logs_owner_read"],
        "objects in comms and billing": [applied["objects in comms and billing"][0]],
    }
    assert applied["objects in comms and billing"][0] > 0
    assert reversed_ == {
        "tables": [],
        "functions": [],
        "service roles": [],
        "constraints": [],
        "policies": [],
        "objects in comms and billing": [0],
    }
    assert issue_objects(database, role) == applied
    assert diff(applied_catalog, catalog(database)) == []
