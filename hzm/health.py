"""GET /healthz: the database answers and has every migration of this code; cheap, no login.

200 {"status": "ok", ...} or 503 {"status": "error", "problems": [...]}: one query per
call (django_migrations); the migrations on disk are read once per process.
"""

import functools
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from hzm import __version__

SHOWN_MIGRATIONS = 10


@functools.cache
def migrations_on_disk() -> frozenset[tuple[str, str]]:
    """(app, name) of every migration this code has (they cannot change while it runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def check(using: str = DEFAULT_DB_ALIAS) -> tuple[bool, dict[str, Any]]:
    """(healthy, body): database reachable, no unapplied migration, the application version."""
    body: dict[str, Any] = {"version": __version__}
    try:
        # A savepoint inside a request's transaction (a tenant's), so a failure stays here.
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("SELECT app, name FROM django_migrations")
            applied = set(cursor.fetchall())
    except DatabaseError as exc:
        what = "database unreachable" if isinstance(exc, OperationalError) else "cannot read"
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return False, {"status": "error", **body, "problems": [f"{what}: {detail}"]}
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
