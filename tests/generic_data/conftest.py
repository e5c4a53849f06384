"""Shared by the generic data tests: a tenant's project, and running as its runtime role.

The tests connect as a superuser, which row level security never applies to, so the
service and the API are exercised inside tenant_context() (the runtime role), and
`as_tenant` checks `current_user` on entry so a test cannot pass as the superuser.
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from core.models import Project, Tenant, User
from core.rbac import Permission, Role, RolePermission, UserRole
from hzm.db.context import tenant_context
from hzm.db.operations import runtime_role
from tests.factories import ProjectFactory
from tests.support import fetchone

RUNTIME_ROLE = runtime_role()


@contextmanager
def as_tenant(project: Project) -> Iterator[None]:
    """Inside the project's tenant context, as the project's user and the runtime role."""
    with tenant_context(project.tenant_id, project.user_id):
        assert fetchone("SELECT current_user")[0] == RUNTIME_ROLE
        yield


def make_project(**tenant_limits: Any) -> Project:
    project = ProjectFactory()
    if tenant_limits:
        Tenant.objects.filter(pk=project.tenant_id).update(**tenant_limits)
    return project


@pytest.fixture
def project(db: None) -> Project:
    return make_project()


@pytest.fixture
def other_project(db: None) -> Project:
    """A project of another tenant."""
    return make_project()


RBAC_FIXTURE = Path(__file__).resolve().parents[2] / "core" / "fixtures" / "004_default_rbac.json"


def default_role_permissions(role: str) -> list[str]:
    """The permission codes the fixture's global role `role` (owner, admin, member, viewer) has."""
    rows = json.loads(RBAC_FIXTURE.read_text())
    return [
        row["fields"]["permission"][0]
        for row in rows
        if row["model"] == "core.rolepermission" and row["fields"]["role"] == [role, None]
    ]


def grant(user: User, *codes: str) -> None:
    """Give `user` a role of its tenant holding exactly the permissions `codes`."""
    role = Role.objects.create(
        tenant_id=user.tenant_id, code=f"r_{uuid.uuid4().hex[:12]}", name="test role"
    )
    for code in codes:
        permission, _ = Permission.objects.get_or_create(code=code)
        RolePermission.objects.create(tenant_id=user.tenant_id, role=role, permission=permission)
    UserRole.objects.create(tenant_id=user.tenant_id, user=user, role=role)


@contextmanager
def bulk_tables(
    count: int, name: str, fields: list[dict[str, Any]], load: str, rows: int
) -> Iterator[tuple[list[Project], dict[int, int]]]:
    """`count` tenants' projects, each with a table `name` of `rows` rows made by `load`
    (INSERT ... SELECT with the parameters tenant, project, table, rows), committed and
    VACUUM ANALYZEd so that plans see realistic statistics; removed afterwards.

    Bulk setup only: the rows are inserted as the owner with the triggers off (no audit,
    unique values or counts for tens of thousands of rows); app.record_counts is then
    filled as the count triggers would have (generic_data 0005). For module fixtures,
    inside django_db_blocker.unblock().
    """
    from generic_data import services

    (last_audit,) = fetchone("SELECT coalesce(max(id), 0) FROM ops.audit_logs")
    had_defaults = fetchone(
        "SELECT EXISTS (SELECT FROM cfg.languages WHERE code = 'en'), "
        "EXISTS (SELECT FROM cfg.currencies WHERE code = 'USD')"
    )
    projects = [ProjectFactory() for _ in range(count)]
    tables = {}
    for project in projects:
        with as_tenant(project):
            tables[project.pk] = services.define_table(project.pk, name, fields).id
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            for project in projects:
                cursor.execute(load, [project.tenant_id, project.pk, tables[project.pk], rows])
            cursor.execute(
                "INSERT INTO app.record_counts (table_id, live_records) "
                "SELECT g.table_id, count(*) FROM app.generic_data AS g "
                "WHERE g.table_id = ANY(%s) AND NOT g.is_deleted GROUP BY 1 "
                "ON CONFLICT (table_id) DO UPDATE SET live_records = excluded.live_records",
                [list(tables.values())],
            )
        with connection.cursor() as cursor:
            # VACUUM also moves the GIN indexes' pending lists (fastupdate) into the
            # indexes, as autovacuum would after a bulk load.
            cursor.execute("VACUUM ANALYZE app.generic_data")
        yield projects, tables
    finally:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                "DELETE FROM app.record_counts WHERE table_id = ANY(%s)", [list(tables.values())]
            )
            for sql, key in [
                ("DELETE FROM app.generic_data WHERE project_id = %s", "pk"),
                ("DELETE FROM core.table_metadata WHERE project_id = %s", "pk"),
                ("DELETE FROM core.projects WHERE id = %s", "pk"),
                ("DELETE FROM core.users WHERE id = %s", "user_id"),
                ("DELETE FROM core.tenants WHERE id = %s", "tenant_id"),
            ]:
                for project in projects:
                    cursor.execute(sql, [getattr(project, key)])
            cursor.execute("DELETE FROM ops.audit_logs WHERE id > %s", [last_audit])
            if not had_defaults[0]:
                cursor.execute("DELETE FROM cfg.languages WHERE code = 'en'")
            if not had_defaults[1]:
                cursor.execute("DELETE FROM cfg.currencies WHERE code = 'USD'")
