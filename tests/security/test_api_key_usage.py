"""The API keys' usage counts: no tenant reaches another's, or changes its own but by using a key.

core.api_key_usage has no tenant_id and no privilege for the runtime role; the two
SECURITY DEFINER functions that write it (core/migrations/0006) take the tenant from
the context only. Tried as the runtime role an attacker would hold.
"""

import pytest

from core.api_keys import ApiKeyUsage
from core.models import ApiKey
from tests.security.conftest import TenantWorld, as_runtime_role_without_context, as_tenant
from tests.support import fetchall, fetchone, sql_refused

pytestmark = pytest.mark.django_db


def key_of(world: TenantWorld) -> ApiKey:
    api_key, _ = ApiKey.objects.issue(
        tenant=world.tenant, user=world.user, project=world.project, name="usage"
    )
    return api_key


def counted(api_key: ApiKey) -> list[tuple[int, int]]:
    return list(ApiKeyUsage.objects.filter(api_key=api_key).values_list("requests", "errors"))


def test_a_tenant_counts_only_its_own_keys(world_a, world_b):
    mine, theirs = key_of(world_a), key_of(world_b)
    with as_tenant(world_a.id, world_a.user.pk):
        assert fetchall("SELECT * FROM app.count_api_key_request(%s, false)", [theirs.pk]) == []
        fetchone("SELECT app.count_api_key_error(%s)", [theirs.pk])
        assert fetchone("SELECT * FROM app.count_api_key_request(%s, false)", [mine.pk]) == (
            True,
            None,
            None,
        )
        fetchone("SELECT app.count_api_key_error(%s)", [mine.pk])
    assert counted(theirs) == []
    assert counted(mine) == [(1, 1)]
    # With a row of theirs in place, an error still cannot be added to it.
    with as_tenant(world_b.id, world_b.user.pk):
        fetchall("SELECT * FROM app.count_api_key_request(%s, false)", [theirs.pk])
    with as_tenant(world_a.id, world_a.user.pk):
        fetchone("SELECT app.count_api_key_error(%s)", [theirs.pk])
    assert counted(theirs) == [(1, 0)]


def test_without_a_context_nothing_is_counted(world_a):
    mine = key_of(world_a)
    with as_runtime_role_without_context():
        assert fetchall("SELECT * FROM app.count_api_key_request(%s, false)", [mine.pk]) == []
        fetchone("SELECT app.count_api_key_error(%s)", [mine.pk])
    assert counted(mine) == []


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM core.api_key_usage",
        "UPDATE core.api_key_usage SET day_count = 0, minute_count = 0",
        "DELETE FROM core.api_key_usage",
        "INSERT INTO core.api_key_usage (api_key_id, day, minute_start) "
        "VALUES (1, current_date, now())",
    ],
)
def test_the_runtime_role_cannot_read_or_reset_the_counts(world_a, statement):
    with as_tenant(world_a.id, world_a.user.pk):
        error = sql_refused(statement)
    assert (error.sqlstate, error.diag.message_primary) == (
        "42501",
        "permission denied for table api_key_usage",
    )
