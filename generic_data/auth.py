"""Who calls the HTTP API: a project's API key, or a signed-in tenant user.

An API key is looked up before the request has a tenant: as the runtime role without
a context, through app.api_key_tenant(prefix) (SECURITY DEFINER, see
generic_data/migrations/0003), because neither the runtime role (row level security)
nor the production login role (no privileges) can read core.api_keys then. The key's
hash is compared here, in constant time; the key must be usable (active, unrevoked,
unexpired, of a live tenant, user and project).
"""

from dataclasses import dataclass

from django.db import connection

from core.models import api_key_prefix
from hzm.db.context import as_runtime_role
from hzm.secrets import api_key_matches


@dataclass(frozen=True)
class Caller:
    """The tenant and user a request acts for; `project_id` limits an API key to a project."""

    tenant_id: int
    user_id: int
    project_id: int | None = None
    api_key_id: int | None = None


def authenticate_api_key(presented: str) -> Caller | None:
    """The caller a presented API key stands for, or None if it is not a usable key."""
    prefix = api_key_prefix(presented)
    if prefix is None:
        return None
    # As the runtime role, with no tenant context (free inside a request, which already
    # runs as it): all it may do here is call app.api_key_tenant(), which returns this
    # one key's row or nothing.
    with as_runtime_role(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT key_id, tenant_id, project_id, user_id, key_hash, usable "
            "FROM app.api_key_tenant(%s)",
            [prefix],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    key_id, tenant_id, project_id, user_id, key_hash, usable = found
    if not api_key_matches(presented, key_hash) or not usable:
        return None
    return Caller(tenant_id, user_id, project_id, key_id)
