"""GET /healthz: the database answers, the tenant path works, every migration is applied.

200 {"status": "ok", ...} or 503 {"status": "error", "problems": [...]}: one transaction
per call, as the web process runs a request (the runtime role, a tenant context, a read
through a policy, django_migrations); the migrations on disk are read once per process.
"""

import functools
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    OperationalError,
    ProgrammingError,
    connections,
    transaction,
)
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from hzm import __version__
from hzm.db.context import tenant_context
from hzm.db.operations import runtime_role

SHOWN_MIGRATIONS = 10


@functools.cache
def migrations_on_disk() -> frozenset[tuple[str, str]]:
    """(app, name) of every migration this code has (they cannot change while it runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


# No tenant has id 0: the probe's context names it, so the read through a tenant policy
# must come back empty, which proves the policy applies.
PROBE_TENANT = 0


def _tenant_path_problem(cursor: Any) -> str | None:
    """What is wrong with the tenant path just entered, or None."""
    cursor.execute("SELECT current_user, app.current_tenant(), (SELECT count(*) FROM core.tenants)")
    role, tenant, visible = cursor.fetchone()
    if role != runtime_role():
        return f"tenant path: queries run as {role}, not as the runtime role {runtime_role()}"
    if tenant is None:
        return (
            "tenant path: the database did not accept the context's signed token: its keys "
            "are not this process's HZM_CONTEXT_KEY (run migrate with this environment)"
        )
    if tenant != PROBE_TENANT:
        return f"tenant path: the context names tenant {tenant}, not the probe's"
    if visible:
        return "tenant path: row level security did not filter core.tenants"
    return None


def check(using: str = DEFAULT_DB_ALIAS) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): database reachable, the tenant path works, no unapplied migration.

    The tenant path is the web process's: enter the runtime role, set a tenant context,
    read through a policy, exactly as a request does (not in the admin's process, which
    has none: HZM_SERVE=admin).
    """
    body: dict[str, Any] = {"version": __version__}
    tenant_path = settings.HZM_SERVE != "admin"
    problem = None
    try:
        # One transaction (a savepoint inside a request's), so that a failure stays here;
        # tenant_context() is one of its own.
        with (
            tenant_context(PROBE_TENANT, using=using)
            if tenant_path
            else transaction.atomic(using=using),
            connections[using].cursor() as cursor,
        ):
            cursor.execute("SELECT app, name FROM django_migrations")
            applied = set(cursor.fetchall())
            if tenant_path:
                problem = _tenant_path_problem(cursor)
    except DatabaseError as exc:
        what = "database unreachable" if isinstance(exc, OperationalError) else "cannot read"
        if isinstance(exc, ProgrammingError) and tenant_path:
            what = "tenant path"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return False, {"status": "error", **body, "problems": [f"{what}: {detail}"]}
    if problem:
        return False, {"status": "error", **body, "problems": [problem]}
    unapplied = sorted(f"{app}.{name}" for app, name in migrations_on_disk() - applied)
    if unapplied:
        shown = ", ".join(unapplied[:SHOWN_MIGRATIONS])
        extra = len(unapplied) - SHOWN_MIGRATIONS
        more = f" and {extra} more" if extra > 0 else ""
        problem = f"{len(unapplied)} unapplied migration(s): {shown}{more}"
        return False, {"status": "error", **body, "problems": [problem]}
    return True, {"status": "ok", **body, "database": "ok", "migrations": "up to date"}


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, body = check()
    return JsonResponse(body, status=200 if healthy else 503)
