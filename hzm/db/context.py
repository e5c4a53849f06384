"""The database context of a unit of work: which tenant, which user, which request.

Tenant-facing code runs inside `tenant_context()`: one transaction in which the
connection has switched (SET LOCAL ROLE) to the runtime role, which row level
security cannot be bypassed by, and app.set_context() has named the tenant and the
user. The policies `tenant_id = app.current_tenant()` then filter every read and
check every write, and the audit trigger records the actor and the request.

Everything is transaction-local (set_config(..., true)): the role and the context
end with the transaction, so nothing leaks to the next request that gets the same
pooled connection.
"""

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse

from hzm.db.operations import runtime_role


class TenantContextError(RuntimeError):
    """A tenant context was misused: no tenant given, or another tenant's is active."""


# The transaction-local settings a tenant context changes: the role first, so that the
# rest is restored with the outer role's rights.
_SETTINGS = (
    "role",
    "app.tenant_id",
    "app.user_id",
    "app.request_id",
    "app.ip_address",
    "app.user_agent",
)


def _active_tenant(connection: Any) -> int | None:
    return getattr(connection, "hzm_tenant_id", None)


@contextmanager
def tenant_context(
    tenant_id: int,
    user_id: int | None = None,
    *,
    request_id: str | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> Iterator[None]:
    """Run the block as the runtime role, for one tenant, in one transaction.

    Re-entering for the same tenant nests (a savepoint); entering for another tenant
    while one is active raises TenantContextError. Used inside an outer transaction,
    the previous role and an empty context are put back when the block ends, so the
    outer transaction does not carry on as the tenant.
    """
    if tenant_id is None:
        # Fail closed: a context without a tenant would show no rows anyway, and a
        # caller that meant one has a bug worth hearing about.
        raise TenantContextError("tenant_context() needs a tenant id, got None")
    connection = connections[using]
    active = _active_tenant(connection)
    if active is not None:
        if active != tenant_id:
            raise TenantContextError(
                f"tenant context for tenant {active} is active on database {using!r}; "
                f"refusing to enter tenant {tenant_id} inside it"
            )
        with transaction.atomic(using=using):
            yield
        return

    outer_transaction = connection.in_atomic_block
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            # What the outer transaction had (e.g. an admin's audit actor), to put back.
            cursor.execute(
                "SELECT " + ", ".join(f"current_setting('{name}', true)" for name in _SETTINGS)
            )
            previous = cursor.fetchone()
            cursor.execute(
                "SELECT set_config('role', %s, true), "
                "app.set_context(%s, %s), app.set_request_context(%s, %s, %s)",
                [runtime_role(), tenant_id, user_id, request_id, ip_address, user_agent],
            )
        connection.hzm_tenant_id = tenant_id
        try:
            yield
        finally:
            connection.hzm_tenant_id = None
        if outer_transaction:
            # On error the savepoint's rollback undoes the SET LOCALs by itself; on
            # success they would outlive the block, so put the outer values back.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in _SETTINGS),
                    [item for pair in zip(_SETTINGS, previous, strict=True) for item in pair],
                )


def current_tenant(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The tenant whose context is active on this connection, if any."""
    return _active_tenant(connections[using])


def set_audit_actor(
    user_id: int | None,
    tenant_id: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
    *,
    request: HttpRequest | None = None,
) -> None:
    """Record `user_id` (and optionally the tenant and request) as the actor of the transaction.

    For platform staff working outside any tenant context (the admin). With `request`,
    its id, client IP and user agent go to the audit trail too. Must run inside
    transaction.atomic(): outside one the setting would end with the statement's own
    implicit transaction and audit nothing.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "set_audit_actor() must be called inside transaction.atomic()"
        )
    metadata = request_metadata(request) if request is not None else (None, None, None)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT app.set_context(%s, %s), app.set_request_context(%s, %s, %s)",
            [tenant_id, user_id, *metadata],
        )


def request_metadata(request: HttpRequest) -> tuple[str, str | None, str | None]:
    """(request id, client IP, user agent) of a request, as the audit trail records them."""
    request_id = getattr(request, "request_id", None) or request_id_for(request)
    return (
        request_id,
        request.META.get("REMOTE_ADDR") or None,
        request.headers.get("User-Agent") or None,
    )


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")


def request_id_for(request: HttpRequest) -> str:
    """The caller's X-Request-ID if well-formed (fits audit_logs.request_id), else a new one."""
    supplied = request.headers.get("X-Request-ID", "")
    return supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex


def is_platform_staff(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False))


class TenantContextMiddleware:
    """Runs each tenant-facing request inside tenant_context() for the signed-in user.

    Tenant users' requests run as the runtime role for their tenant, with the request
    id, client IP and user agent in the transaction for the audit trail. Anonymous
    requests, platform staff (the admin) and the paths of
    settings.HZM_TENANT_CONTEXT_EXEMPT_PATHS (/healthz, which reads the migration
    table) are left as they are. The request id is
    returned in the X-Request-ID response header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_for(request)
        user = getattr(request, "user", None)
        if (
            user is None
            or not user.is_authenticated
            or is_platform_staff(user)
            or request.path in settings.HZM_TENANT_CONTEXT_EXEMPT_PATHS
        ):
            response = self.get_response(request)
        else:
            request_id, ip_address, user_agent = request_metadata(request)
            with tenant_context(
                user.tenant_id,
                user.pk,
                request_id=request_id,
                ip_address=ip_address,
                user_agent=user_agent,
            ):
                response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
