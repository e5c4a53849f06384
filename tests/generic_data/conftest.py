"""Shared by the generic data tests: a tenant's project, and running as its runtime role.

The tests connect as a superuser, which row level security never applies to, so the
service and the API are exercised inside tenant_context() (the runtime role), and
`as_tenant` checks `current_user` on entry so a test cannot pass as the superuser.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from core.models import Project, Tenant
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
