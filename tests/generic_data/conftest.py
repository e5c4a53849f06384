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
