"""What the tests of the guide's later tables share: SQL, acting as a role, refusals, isolation.

The tests connect as a superuser, whom row level security never applies to; isolation is
tried as the runtime role (hzm.db.context.tenant_context) or as a service role (as_role).
"""

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection, models, transaction
from django.urls import clear_url_caches, reverse
from django.utils.html import escape

from hzm.db.context import sign_context, tenant_context
from tests.support import refused


def query(sql: str, params: list[Any] | tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def as_role(role: str, tenant_id: int | None = None) -> Iterator[None]:
    """Run the block as `role` in `tenant_id`'s context (None: no context), then come back."""
    with transaction.atomic():
        query("SELECT set_config('role', %s, true)", [role])
        if tenant_id is not None:
            with connection.cursor() as cursor:
                sign_context(cursor, tenant_id)
        assert query("SELECT current_user::text, app.current_tenant()") == [(role, tenant_id)]
        try:
            yield
        finally:
            query("SELECT set_config('role', 'none', true), set_config('app.context', '', true)")


def visible(model: type[models.Model], *rows: models.Model) -> set[Any]:
    """Which of `rows` the connection's current role and context can see."""
    return set(model._base_manager.filter(pk__in=[r.pk for r in rows]).values_list("pk", flat=True))


def assert_tenant_isolated(
    model: type[models.Model], mine: models.Model, theirs: models.Model, *, writable: bool
) -> None:
    """As the runtime role in `mine`'s tenant: `theirs` is out of sight and out of reach.

    A writable table lets the runtime role update its own rows but neither another
    tenant's (nothing matches) nor move one of its own to another tenant (the policy's
    WITH CHECK); a read-only one refuses any UPDATE for want of the privilege.
    """
    assert mine.tenant_id != theirs.tenant_id
    rows = model._base_manager
    with tenant_context(mine.tenant_id):
        assert visible(model, mine, theirs) == {mine.pk}
        if writable:
            assert rows.filter(pk=theirs.pk).update(tenant_id=mine.tenant_id) == 0
            assert rows.filter(pk=mine.pk).update(tenant_id=mine.tenant_id) == 1
            error = refused(lambda: rows.filter(pk=mine.pk).update(tenant_id=theirs.tenant_id))
            assert error.sqlstate == "42501", error
            assert "row-level security" in error.diag.message_primary
        else:
            error = refused(lambda: rows.filter(pk=mine.pk).update(tenant_id=mine.tenant_id))
            assert error.diag.message_primary.startswith("permission denied for table"), error
    assert rows.get(pk=theirs.pk).tenant_id == theirs.tenant_id
    assert rows.get(pk=mine.pk).tenant_id == mine.tenant_id


def assert_reference_refused(action: Callable[[], Any], constraint: str) -> None:
    """`action` fails on the foreign key `constraint` (even as the superuser)."""
    error = refused(action)
    assert isinstance(error, psycopg.errors.ForeignKeyViolation), error
    assert error.diag.constraint_name == constraint


# --- The admin ------------------------------------------------------------------------------

# This admin modules that core/, cfg/ and ops/admin.py are to import (see each
# module's docstring); comms and billing register through their own admin.py.
ADMIN_MODULES = ("core.admin_platform", "cfg.admin_flags", "ops.admin_monitoring")


def register_admin_modules() -> None:
    """Import ADMIN_MODULES and rebuild the URLs, so their pages exist whatever was loaded first."""
    import hzm.urls

    for name in ADMIN_MODULES:
        importlib.import_module(name)
    importlib.reload(hzm.urls)
    clear_url_caches()


def sign_in_platform_admin(client: Any) -> Any:
    """`client` signed in as a platform admin, with this issue's admin pages in place."""
    from tests.factories import UserFactory

    register_admin_modules()
    client.force_login(UserFactory(role="platform_admin"))
    return client


def assert_admin_pages_open(client: Any, obj: models.Model, *, can_add: bool = True) -> None:
    """The changelist, the add page (or its refusal) and the object's page all open."""
    meta = obj._meta
    prefix = f"admin:{meta.app_label}_{meta.model_name}"
    assert client.get(reverse(f"{prefix}_changelist")).status_code == 200
    assert client.get(reverse(f"{prefix}_add")).status_code == (200 if can_add else 403)
    change = client.get(reverse(f"{prefix}_change", args=[obj.pk]))
    assert change.status_code == 200
    assert escape(str(obj)) in change.content.decode()
