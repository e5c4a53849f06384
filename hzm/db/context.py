"""The database context of a unit of work: which role, which tenant, which user, which request.

Tenant-facing code runs inside `tenant_context()`: one transaction in which the
connection has switched (SET LOCAL ROLE) to the runtime role, which row level
security cannot be bypassed by, and a token signed with HZM_CONTEXT_KEY for this very
transaction names the tenant and the user (hzm.db.context_tokens). The database
verifies it whenever app.current_tenant() or app.current_user_id() is asked: the
policies `tenant_id = (SELECT app.current_tenant())` then filter every read and check
every write, and the audit trigger records the actor and the request. SQL that runs
inside the transaction (an injection) cannot name another tenant: it has no key, and a
token of another transaction or backend names nobody.

Everything is transaction-local (set_config(..., true)): the role, the timeouts and
the context end with the transaction, so nothing leaks to the next request that gets
the same pooled connection (PgBouncer in transaction mode included).

The role switch is a statement of its own, before anything that needs the runtime
role's rights: PostgreSQL checks a statement's privileges (EXECUTE on app.set_context,
say) as the role the statement starts as, and the web process logs in as an
authenticator that holds none. It goes with BEGIN in one message, and the token with the
block's first statement (hzm.db.round_trips): a one-read unit of work makes the three
round trips of a bare BEGIN, SELECT, COMMIT.
"""

import functools
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from psycopg import sql

from hzm.db import context_tokens, round_trips
from hzm.db.context_tokens import Backend
from hzm.db.operations import runtime_role, service_role
from hzm.durations import duration, duration_seconds
from hzm.proxies import client_ip
from hzm.secrets import context_keys


class TenantContextError(RuntimeError):
    """A tenant context was misused: no tenant given, or another tenant's is active."""


# The transaction-local settings of a tenant context: the signed token
# (hzm.db.context_tokens) and what app.set_request_context() writes.
CONTEXT_SETTINGS = (
    context_tokens.SETTING,
    "app.request_id",
    "app.ip_address",
    "app.user_agent",
)
EMPTY_CONTEXT = ("",) * len(CONTEXT_SETTINGS)

# Entering a context: the token, and the request metadata as app.set_request_context()
# writes it, in plain set_config()s (no PL/pgSQL call of its own: issue 15), host() of the
# inet cast checking and normalising the address as that function's inet parameter does.
ENTER_CONTEXT = "SELECT set_config(%s, %s, true)"
ENTER_CONTEXT_WITH_REQUEST = (
    "SELECT set_config(%s, %s, true), "
    "set_config('app.request_id', coalesce(%s, ''), true), "
    "set_config('app.ip_address', coalesce(host(%s::inet), ''), true), "
    "set_config('app.user_agent', coalesce(%s, ''), true)"
)


def entering(
    token: str,
    metadata: tuple[str | None, str | None, str | None],
    previous: tuple[str, ...],
) -> tuple[str, list[Any]]:
    """The statement that enters a context: (SQL, parameters).

    The request metadata (request id, client IP, user agent) is written unless there is
    none and the transaction holds none either (a context of its own transaction without
    a request: a job, a script): only then is leaving it out the same as writing ''.
    """
    if all(value is None for value in metadata) and not any(previous[1:]):
        return ENTER_CONTEXT, [context_tokens.SETTING, token]
    return ENTER_CONTEXT_WITH_REQUEST, [context_tokens.SETTING, token, *metadata]


# --- Timeouts --------------------------------------------------------------------------

# The PostgreSQL settings that bound a unit of work, by the settings.py name of their
# default. 0 switches one off.
TIMEOUTS = {
    "statement_timeout": "HZM_STATEMENT_TIMEOUT",
    "lock_timeout": "HZM_LOCK_TIMEOUT",
    "idle_in_transaction_session_timeout": "HZM_IDLE_IN_TRANSACTION_TIMEOUT",
}


def timeouts(**overrides: Any) -> dict[str, str]:
    """The timeouts a context applies: settings' defaults, with the caller's overrides."""
    values = {}
    for setting, default_name in TIMEOUTS.items():
        value = overrides.get(setting)
        if value is None:
            value = getattr(settings, default_name)
        values[setting] = duration(value, setting if setting in overrides else default_name)
    return values


# --- The role ------------------------------------------------------------------------------


def _known_context(connection: Any) -> tuple[str, ...] | None:
    """The app.* values this transaction is known to hold (None: unknown, read them)."""
    return getattr(connection, "hzm_known_context", None)


def _active_role(connection: Any) -> str | None:
    return getattr(connection, "hzm_role", None)


def backend_of(cursor: Any) -> Backend:
    """The server backend and transaction a DB-API cursor's statements run in, asked."""
    cursor.execute(f"SELECT {context_tokens.BACKEND_COLUMNS}")
    return Backend(*cursor.fetchone())


def backend(using: str = DEFAULT_DB_ALIAS) -> Backend:
    """The server backend and transaction the connection is in (known inside a role block)."""
    connection = connections[using]
    known = getattr(connection, "hzm_backend", None)
    if known is not None and _active_role(connection) is not None:
        return known
    with connection.cursor() as cursor:
        return backend_of(cursor)


@contextmanager
def as_runtime_role(
    using: str = DEFAULT_DB_ALIAS,
    *,
    statement_timeout: Any = None,
    lock_timeout: Any = None,
    idle_in_transaction_session_timeout: Any = None,
) -> Iterator[None]:
    """Run the block as the runtime role, with the context timeouts, in a transaction.

    Without a tenant context the runtime role sees no tenant row: what it may do then is
    call the lookups made for that moment (sessions, sign-in, API keys). Nested inside
    another block of its own it costs nothing (timeouts given here then apply until the
    block ends). Inside someone else's transaction the previous role and timeouts are
    put back when the block ends.
    """
    with _as_role(
        runtime_role(),
        using,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
    ):
        yield


@contextmanager
def _as_role(
    role: str,
    using: str,
    *,
    statement_timeout: Any = None,
    lock_timeout: Any = None,
    idle_in_transaction_session_timeout: Any = None,
) -> Iterator[None]:
    connection = connections[using]
    wanted = timeouts(
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
    )
    outer_transaction = connection.in_atomic_block
    with transaction.atomic(using=using):
        active = _active_role(connection)
        if active is not None:
            if active != role:
                raise TenantContextError(
                    f"role {active} is active on database {using!r}; refusing to switch to "
                    f"{role} inside its block"
                )
            overridden = {
                name: wanted[name]
                for name, value in (
                    ("statement_timeout", statement_timeout),
                    ("lock_timeout", lock_timeout),
                    ("idle_in_transaction_session_timeout", idle_in_transaction_session_timeout),
                )
                if value is not None
            }
            previous = _set(connection, overridden) if overridden else {}
            yield
            if previous and not connection.needs_rollback:
                _set(connection, previous, read_back=False)
            return

        previous, connection.hzm_backend = _switch(
            connection, {"role": role, **wanted}, read_back=outer_transaction
        )
        saved_context = _known_context(connection)
        connection.hzm_role = role
        if not outer_transaction:
            # A transaction of our own: no app.* setting has been made in it yet.
            connection.hzm_known_context = EMPTY_CONTEXT
        try:
            yield
        finally:
            connection.hzm_role = None
            connection.hzm_known_context = saved_context
        if outer_transaction and not connection.needs_rollback:
            # On error the savepoint's rollback undoes the SET LOCALs by itself (also when
            # a failed query inside was answered, not raised: needs_rollback); on success
            # they would outlive the block, so put the outer values back.
            _set(connection, previous, read_back=False)


@functools.lru_cache(maxsize=64)
def switch_query(values: tuple[tuple[str, str], ...]) -> str:
    """SELECT that SETs LOCAL each (name, value) and reports the backend: values as literals.

    As literals because it travels by the simple protocol, with BEGIN in one message
    (hzm.db.round_trips.begin_with). A process has a handful of (role, timeouts) in use,
    so each is rendered once.
    """
    settings_made = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in values
    )
    statement = sql.SQL("SELECT {}, {}").format(
        settings_made, sql.SQL(context_tokens.BACKEND_COLUMNS)
    )
    return statement.as_string(None)


def _switch(
    connection: Any, values: dict[str, str], *, read_back: bool
) -> tuple[dict[str, str], Backend]:
    """SET LOCAL the role and settings, learning the backend in the same round trip.

    The backend (its pid and the transaction's start) is what a context token is bound to;
    behind PgBouncer only the server can tell it, so it comes back with the switch itself.
    In a transaction of the block's own the switch goes with BEGIN, in one round trip;
    with read_back (someone else's transaction), the previous values are read first (to
    put back), in one statement.
    """
    names = list(values)
    previous: dict[str, str] = {}
    if not read_back:
        query = switch_query(tuple(values.items()))
        row = round_trips.begin_with(connection, query)
        if row is None:  # the transaction has begun, or begins with an isolation level
            with connection.cursor() as cursor:
                cursor.execute(query)
                row = cursor.fetchone()
        *_, pid, start = row
        return previous, Backend(int(pid), int(start))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT "
            + ", ".join("current_setting(%s)" for _ in names)
            + f", {context_tokens.BACKEND_COLUMNS}",
            names,
        )
        *values_before, pid, start = cursor.fetchone()
    previous = dict(zip(names, values_before, strict=True))
    _set(connection, values, read_back=False)
    return previous, Backend(pid, start)


def _set(connection: Any, values: dict[str, str], *, read_back: bool = True) -> dict[str, str]:
    """SET LOCAL each setting in one statement; with read_back, return what they were."""
    names = list(values)
    with connection.cursor() as cursor:
        previous: dict[str, str] = {}
        if read_back:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
            previous = dict(zip(names, cursor.fetchone(), strict=True))
        cursor.execute(
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names),
            [item for name in names for item in (name, values[name])],
        )
    return previous


# --- The tenant context --------------------------------------------------------------------


def _active_tenant(connection: Any) -> int | None:
    return getattr(connection, "hzm_tenant_id", None)


def context_lifetime(lifetime: Any = None) -> int:
    """Seconds a context's token is valid: `lifetime`, or settings.HZM_CONTEXT_LIFETIME."""
    if lifetime is None:
        return duration_seconds(settings.HZM_CONTEXT_LIFETIME, "HZM_CONTEXT_LIFETIME")
    return duration_seconds(lifetime, "lifetime")


def context_token(
    tenant_id: int | None, user_id: int | None, at: Backend, lifetime: Any = None
) -> str:
    """The signed token of a context for `at`'s transaction (hzm.db.context_tokens)."""
    claims = context_tokens.claims_for(tenant_id, user_id, at, context_lifetime(lifetime))
    return context_tokens.sign(claims, context_keys()[0])


@contextmanager
def tenant_context(
    tenant_id: int,
    user_id: int | None = None,
    *,
    request_id: str | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
    statement_timeout: Any = None,
    lock_timeout: Any = None,
    idle_in_transaction_session_timeout: Any = None,
    lifetime: Any = None,
) -> Iterator[None]:
    """Run the block as the runtime role, for one tenant, in one transaction.

    The database believes the context because it comes with a token signed by
    HZM_CONTEXT_KEY for this very transaction (hzm.db.context_tokens); it lasts
    settings.HZM_CONTEXT_LIFETIME (or `lifetime`) at most. Re-entering for the same tenant
    nests (a savepoint); entering for another tenant while one is active raises
    TenantContextError. Used inside an outer transaction, the previous role and context are
    put back when the block ends, so the outer transaction does not carry on as the tenant.
    The timeouts (statement, lock, idle in transaction) come from settings
    (HZM_STATEMENT_TIMEOUT, ...) unless given here, e.g. statement_timeout="10min" for a
    long job.
    """
    with _context(
        runtime_role(),
        tenant_id,
        user_id,
        request_id=request_id,
        ip_address=ip_address,
        user_agent=user_agent,
        using=using,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
        lifetime=lifetime,
    ):
        yield


@contextmanager
def service_context(
    service: str,
    tenant_id: int,
    user_id: int | None = None,
    *,
    using: str = DEFAULT_DB_ALIAS,
    statement_timeout: Any = None,
    lock_timeout: Any = None,
    idle_in_transaction_session_timeout: Any = None,
    lifetime: Any = None,
) -> Iterator[None]:
    """tenant_context() for a service's worker: the same token, as the service's role.

    `service` is the service's name ("comms", "billing"): the block runs as its role
    (<HZM_APP_ROLE>_<service>, made by migrate with exactly the service's grants) for one
    tenant, in one transaction.
    """
    with _context(
        service_role(service),
        tenant_id,
        user_id,
        using=using,
        statement_timeout=statement_timeout,
        lock_timeout=lock_timeout,
        idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
        lifetime=lifetime,
    ):
        yield


@contextmanager
def _context(
    role: str,
    tenant_id: int,
    user_id: int | None,
    *,
    request_id: str | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    using: str,
    statement_timeout: Any,
    lock_timeout: Any,
    idle_in_transaction_session_timeout: Any,
    lifetime: Any,
) -> Iterator[None]:
    if tenant_id is None:
        # Fail closed: a context without a tenant would show no rows anyway, and a
        # caller that meant one has a bug worth hearing about.
        raise TenantContextError("tenant_context() needs a tenant id, got None")
    connection = connections[using]
    role_timeouts = {
        "statement_timeout": statement_timeout,
        "lock_timeout": lock_timeout,
        "idle_in_transaction_session_timeout": idle_in_transaction_session_timeout,
    }
    active = _active_tenant(connection)
    if active is not None:
        if active != tenant_id:
            raise TenantContextError(
                f"tenant context for tenant {active} is active on database {using!r}; "
                f"refusing to enter tenant {tenant_id} inside it"
            )
        with _as_role(role, using, **role_timeouts):
            yield
        return

    outer_transaction = connection.in_atomic_block
    with _as_role(role, using, **role_timeouts):
        token = context_token(tenant_id, user_id, connection.hzm_backend, lifetime)
        previous = _known_context(connection)
        if previous is None:
            # What the outer transaction had (e.g. an admin's audit actor), to put back.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join("current_setting(%s, true)" for _ in CONTEXT_SETTINGS),
                    list(CONTEXT_SETTINGS),
                )
                previous = tuple(value or "" for value in cursor.fetchone())
        # Sent with the block's first statement, in one round trip (hzm.db.round_trips):
        # nothing runs in the block before it, so nothing runs without it.
        entered = round_trips.defer(
            connection, *entering(token, (request_id, ip_address, user_agent), previous)
        )
        connection.hzm_tenant_id = tenant_id
        connection.hzm_known_context = None
        try:
            yield
        except BaseException:
            # The savepoint's (or the transaction's) rollback ends the context; an entry
            # nothing was sent with need not be sent now.
            round_trips.discard(connection, entered)
            raise
        finally:
            connection.hzm_tenant_id = None
            connection.hzm_known_context = previous
        if round_trips.discard(connection, entered):
            return  # nothing was sent in the block: there is nothing to put back
        if not outer_transaction or connection.needs_rollback:
            return  # the transaction (or the savepoint, rolled back) ends the context
        # On error the savepoint's rollback restores the outer context by itself. On
        # success the outer values are owed to the outer transaction's next statement
        # (none, if it just commits); the role is put back at once, by _as_role.
        round_trips.defer(
            connection,
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in CONTEXT_SETTINGS),
            [item for pair in zip(CONTEXT_SETTINGS, previous, strict=True) for item in pair],
        )


def sign_context(
    cursor: Any, tenant_id: int | None, user_id: int | None = None, *, lifetime: Any = None
) -> str:
    """Enter a signed context in a plain DB-API cursor's current transaction; the token.

    For code that holds a connection of its own rather than Django's (a script, a worker
    on psycopg, the tests' attacker connections): it asks the server for its backend,
    signs for it and sets app.context, two round trips. The role is the caller's to switch
    first. tenant_context() does the same for Django's connection in one round trip less.
    """
    token = context_token(tenant_id, user_id, backend_of(cursor), lifetime)
    cursor.execute("SELECT set_config(%s, %s, true)", [context_tokens.SETTING, token])
    return token


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

    For platform staff working outside any tenant context (the admin): a signed token
    for this transaction, like a tenant context's, names the actor. With `request`,
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
    # Signed like any context: the audit trigger believes only a verified actor.
    token = context_token(tenant_id, user_id, backend(using))
    with connection.cursor() as cursor:
        cursor.execute(ENTER_CONTEXT_WITH_REQUEST, [context_tokens.SETTING, token, *metadata])
    connection.hzm_known_context = None


def request_metadata(request: HttpRequest) -> tuple[str, str | None, str | None]:
    """(request id, client IP, user agent) of a request, as the audit trail records them."""
    request_id = getattr(request, "request_id", None) or request_id_for(request)
    # The client behind the trusted proxies (FORWARDED_ALLOW_IPS), not the proxy.
    return (request_id, client_ip(request), header_text(request.headers.get("User-Agent")))


MAX_USER_AGENT = 1000


def header_text(value: str | None) -> str | None:
    """A header as the database can store it: no NUL, no lone surrogate, bounded."""
    if not value:
        return None
    cleaned = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return cleaned[:MAX_USER_AGENT] or None


def request_context(request: HttpRequest, user: Any) -> Any:
    """tenant_context() of a tenant user's request: its tenant, the user, the request's metadata."""
    request_id, ip_address, user_agent = request_metadata(request)
    return tenant_context(
        user.tenant_id,
        user.pk,
        request_id=request_id,
        ip_address=ip_address,
        user_agent=user_agent,
    )


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")


def request_id_for(request: HttpRequest) -> str:
    """The caller's X-Request-ID if well-formed (fits audit_logs.request_id), else a new one."""
    supplied = request.headers.get("X-Request-ID", "")
    return supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex


def is_platform_staff(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False))


# --- Requests -------------------------------------------------------------------------------

SERVE_MODES = ("all", "api", "admin")


def site_part(path: str) -> str:
    """Which part of the site a path is: 'admin', 'health', or 'app' (the API, sign-in)."""
    if path == "/healthz":
        return "health"
    if path.startswith(settings.HZM_ADMIN_URL_PREFIX):
        return "admin"
    return "app"


def not_served(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "not_found", "message": f"{request.path} is not served here"}},
            status=404,
        )
    return HttpResponseNotFound("Not found")


class RuntimeRoleMiddleware:
    """Runs each request of the application (not the admin) as the runtime role, in one transaction.

    Goes before SessionMiddleware, so that loading and saving the session, the user
    lookup and API-key authentication already run as the runtime role: the web login
    itself may do nothing. A response of 500 or more rolls the transaction back.
    settings.HZM_SERVE says which parts this process serves: "api" (the web process:
    no admin), "admin" (the platform admin's process: only the admin and /healthz), or
    "all" (development). The admin's requests run as the login itself, whose role
    holds the admin's grants; /healthz makes its own checks.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        part = site_part(request.path)
        serve = settings.HZM_SERVE
        if (serve == "api" and part == "admin") or (serve == "admin" and part == "app"):
            return not_served(request)
        if part != "app":
            return self.get_response(request)
        with as_runtime_role():
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
        return response


class TenantContextMiddleware:
    """Runs each tenant-facing request inside tenant_context() for the signed-in user.

    Tenant users' requests run as the runtime role for their tenant, with the request
    id, client IP and user agent in the transaction for the audit trail. Anonymous
    requests, platform staff (the admin) and the paths of
    settings.HZM_TENANT_CONTEXT_EXEMPT_PATHS (/healthz) are left as they are; the path
    is checked first, so an exempt request never loads a session. The request id is
    returned in the X-Request-ID response header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_for(request)
        if request.path in settings.HZM_TENANT_CONTEXT_EXEMPT_PATHS or (
            site_part(request.path) == "admin"
        ):
            response = self.get_response(request)
        else:
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated or is_platform_staff(user):
                response = self.get_response(request)
            else:
                with request_context(request, user):
                    response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
