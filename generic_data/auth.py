"""Who calls the HTTP API, and what an API key lets it do: a key, or a signed-in tenant user.

An API key is looked up before the request has a tenant: as the runtime role without
a context, through app.api_key_lookup(key) (SECURITY DEFINER, see
generic_data/migrations/0006), because neither the runtime role (row level security)
nor the production login role (no privileges) can read core.api_keys then. The key's
hash is compared in the database, which returns no hash; the key must be usable
(active, unrevoked, unexpired, of a live tenant, user and project).

With the request, the key is then held to what it stores (core/api_keys.py), inside
its tenant's context: its allowed client addresses (the address the audit trail
records: behind the trusted proxies, X-Forwarded-For), its allowed origins (the Origin
header), its scopes (the verb the request needs, required_scope()), and its rate
limits, counted by app.count_api_key_request() in PostgreSQL (core/migrations/0006),
which every process shares. A refusal is an ApiKeyRefused: 401 for an expired or
revoked key, 403 naming the scope, address or origin, 429 with Retry-After.

ApiKeyMiddleware does all that before the request's own transaction begins, in a short
transaction of its own: the key's counter row is locked only while it is counted, not
for the length of every request of the key, and the count stands when the request
fails. authenticate_api_key() then answers from what it found; without the middleware
it checks and counts inside the request's transaction.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from core.api_keys import ip_allowed, origin_allowed, scope_allows
from core.models import api_key_prefix
from generic_data.schema import FieldError
from generic_data.services import ServiceError
from hzm.db.context import as_runtime_role, request_metadata, tenant_context

logger = logging.getLogger(__name__)

# Where a request keeps what checking its key found (KeyCheck).
CHECKED = "hzm_api_key_check"
# The generic data API: projects/<p>/tables/, then <table>/, then rows/, rows/query/,
# rows/<id>/ or search/ (generic_data/views.py); a missing final slash too.
_DATA_PATH = re.compile(r"/api/v1/projects/\d+/tables(?:/(?P<table>[^/]+)(?:/(?P<rest>.*?))?)?/?\Z")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    """The tenant and user a request acts for; `project_id` limits an API key to a project."""

    tenant_id: int
    user_id: int
    project_id: int | None = None
    api_key_id: int | None = None


class ApiKeyRefused(ServiceError):
    """A valid API key that may not do this request: its status, code and headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, [FieldError(message, field=field)] if field else ())
        self.status, self.code = status, code
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class KeyCheck:
    """What checking one presented key for one request found."""

    presented: str
    caller: Caller | None  # the key's caller, when the key is genuine and usable
    refusal: ApiKeyRefused | None = None


def required_scope(method: str, path: str) -> tuple[str, str | None]:
    """(verb, table) a request needs of a key's scopes; table None for the tables' list.

    read: GET (and HEAD) anything, a query sent as POST rows/query/; write: create, change
    and delete rows; define: create a table, alter or drop one. A path that is not the
    data API's needs read for a safe method, else write.
    """
    safe = method.upper() in _SAFE_METHODS
    found = _DATA_PATH.match(path)
    if found is None:
        return ("read" if safe else "write"), None
    table, rest = found["table"], (found["rest"] or "").strip("/")
    if table is None or not rest:  # the tables, or one table's definition
        return ("read" if safe else "define"), table
    if rest == "rows/query":
        return "read", table
    return ("read" if safe else "write"), table


def is_data_path(path: str) -> bool:
    return _DATA_PATH.match(path) is not None


def authenticate_api_key(presented: str, request: HttpRequest | None = None) -> Caller | None:
    """The caller a presented API key stands for, or None if it is not a usable key.

    With the request (the HTTP API), the key is also held to its addresses, origins,
    scopes and rate limits and the request is counted: ApiKeyRefused says why not.
    Without one, the key is only verified (for code outside a request).
    """
    if request is None:
        found = _lookup(presented)
        return found[0] if found is not None and found[1] else None
    check = getattr(request, CHECKED, None)
    if check is None or check.presented != presented:
        check = check_api_key(presented, request)
        setattr(request, CHECKED, check)
    if check.refusal is not None:
        raise check.refusal
    return check.caller


def _lookup(presented: str) -> tuple[Caller, bool] | None:
    """(the key's caller, whether it is usable) if `presented` is a genuine key, else None."""
    prefix = api_key_prefix(presented)
    if prefix is None:
        return None
    if "\x00" in presented or len(presented) > MAX_PRESENTED_KEY:
        return None
    # As the runtime role, with no tenant context (free inside a request, which already
    # runs as it): all it may do here is call app.api_key_lookup(key), which compares
    # the whole key's hash in the database and returns this one key's row or nothing
    # (generic_data/migrations/0006: no hash ever leaves the database).
    with as_runtime_role(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT key_id, tenant_id, project_id, user_id, usable FROM app.api_key_lookup(%s)",
            [presented],
        )
        found = cursor.fetchone()
    if found is None:
        return None
    key_id, tenant_id, project_id, user_id, usable = found
    return Caller(tenant_id, user_id, project_id, key_id), bool(usable)


# issue() makes keys of 60 characters; anything much longer is no key.
MAX_PRESENTED_KEY = 200


KEY_SETTINGS = (
    "SELECT scopes, allowed_ips, allowed_domains, rate_limit_per_minute, rate_limit_per_day, "
    "expires_at, revoked_at FROM core.api_keys WHERE id = %s"
)


def check_api_key(presented: str, request: HttpRequest) -> KeyCheck:
    """Verify the key, hold it to what it stores and count the request (one transaction)."""
    with as_runtime_role():
        found = _lookup(presented)
        if found is None:
            return KeyCheck(presented, None)
        caller, usable = found
        request_id, client, user_agent = request_metadata(request)
        with (
            tenant_context(
                caller.tenant_id,
                caller.user_id,
                request_id=request_id,
                ip_address=client,
                user_agent=user_agent,
            ),
            connection.cursor() as cursor,
        ):
            cursor.execute(KEY_SETTINGS, [caller.api_key_id])
            scopes, ips, domains, per_minute, per_day, expires_at, revoked_at = cursor.fetchone()
            if not usable:
                return KeyCheck(presented, None, _unusable(expires_at, revoked_at))
            verb, table = required_scope(request.method or "GET", request.path_info)
            refusal = _refusal(
                scopes, ips, domains, verb, table, client, request.headers.get("Origin")
            )
            cursor.execute(
                "SELECT allowed, limit_name, retry_after FROM app.count_api_key_request(%s, %s)",
                [caller.api_key_id, refusal is not None],
            )
            counted = cursor.fetchone()
    if counted is None:  # the function found no such key of this tenant: cannot happen
        raise RuntimeError(f"app.count_api_key_request() did not count key {caller.api_key_id}")
    allowed, limit_name, retry_after = counted
    if refusal is None and not allowed:
        limit = per_day if limit_name == "day" else per_minute
        refusal = ApiKeyRefused(
            429,
            "rate_limited",
            f"this API key's limit of {limit} requests per {limit_name} is reached; "
            f"retry in {retry_after} s",
            field=f"rate_limit_per_{limit_name}",
            headers={"Retry-After": str(retry_after)},
        )
    return KeyCheck(presented, caller, refusal)


def _unusable(expires_at: Any, revoked_at: Any) -> ApiKeyRefused:
    if revoked_at is not None:
        return ApiKeyRefused(401, "key_revoked", "this API key has been revoked")
    if expires_at is not None and expires_at <= timezone.now():
        when = expires_at.isoformat(timespec="seconds")
        return ApiKeyRefused(401, "key_expired", f"this API key expired at {when}", "expires_at")
    return ApiKeyRefused(401, "unauthorized", "the API key is not valid (or no longer usable)")


def _refusal(
    scopes: list[str] | None,
    ips: list[str] | None,
    domains: list[str] | None,
    verb: str,
    table: str | None,
    client: str | None,
    origin: str | None,
) -> ApiKeyRefused | None:
    """Why the key may not make this request (403), or None."""
    if not ip_allowed(ips, client):
        where = client or "an unknown address"
        return ApiKeyRefused(
            403, "ip_not_allowed", f"this API key may not be used from {where}", "allowed_ips"
        )
    if not origin_allowed(domains, origin):
        where = f"the origin {origin!r}" if origin else "a request without an Origin header"
        return ApiKeyRefused(
            403,
            "origin_not_allowed",
            f"this API key may not be used from {where}: it is for {', '.join(domains or [])}",
            "allowed_domains",
        )
    if not scope_allows(scopes, verb, table):
        needed = f"'{verb}'" + (f" or '{verb}:{table}'" if table else "")
        return ApiKeyRefused(
            403,
            "missing_scope",
            f"this API key lacks the scope {needed} this request needs "
            f"(it has: {', '.join(scopes or [])})",
            "scopes",
        )
    return None


def count_error(caller: Caller) -> None:
    """Count an answer of 400 or more to a request the key check let through."""
    try:
        with (
            tenant_context(caller.tenant_id, caller.user_id),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT app.count_api_key_error(%s)", [caller.api_key_id])
    except DatabaseError:
        # The answer is what matters; a lost count (the database just went away) is not.
        logger.warning("could not count an error of API key %s", caller.api_key_id, exc_info=True)


def bearer_key(request: HttpRequest) -> str | None:
    """The key of `Authorization: Bearer <key>`, if the request has such a header."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


class ApiKeyMiddleware:
    """Checks and counts a data API request's key before the request's transaction.

    Goes before RuntimeRoleMiddleware (settings.MIDDLEWARE). The check runs in its own
    short transaction (check_api_key), so the key's counter row is locked only for it;
    the view's authenticate_api_key() answers from its result. Afterwards it adds the
    refusal's headers (Retry-After) to the answer, and counts an answer of 400 or more
    the check let through as an error of the key (one more write, only then).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        presented = bearer_key(request)
        if (
            presented is None
            or settings.HZM_SERVE == "admin"
            or not is_data_path(request.path_info)
        ):
            return self.get_response(request)
        check = check_api_key(presented, request)
        setattr(request, CHECKED, check)
        response = self.get_response(request)
        if check.refusal is not None:
            if response.status_code == check.refusal.status:
                for name, value in check.refusal.headers.items():
                    if name not in response:
                        response[name] = value
        elif check.caller is not None and response.status_code >= 400:
            count_error(check.caller)
        return response
