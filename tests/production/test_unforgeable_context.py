"""SQL injection inside tenant A's real request cannot name tenant B (issue 12).

Everything runs as production runs it: Django's connection logs in as the README's
authenticator (`hzm_web`, NOINHERIT, owns nothing) to the README's deployment, and
tenant_context() enters tenant A as the application does (the runtime role, a token
signed with HZM_CONTEXT_KEY for this transaction). Then the attacker's SQL runs in that
same transaction, once as the runtime role and once after `RESET ROLE` as the
authenticator itself (which may SET ROLE back to the runtime role, as the attacker
would): every way to claim B that the issue lists and a few more. After each, the probe
asks for B's rows in every way tenant code can reach them (tables, the search and
containment functions, permissions, writes, the system log), and finally the owner
checks that the audit trail recorded nothing as B or as B's users. The same probe, run
for A, finds A's rows: it is able to see what it looks for.
"""

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.utils import DatabaseError

from core.rbac import Permission, Role, RolePermission, UserRole
from hzm.db import context_tokens
from hzm.db.context import backend_of, context_token, sign_context, tenant_context
from hzm.db.context_tokens import Backend
from hzm.db.operations import runtime_role
from hzm.secrets import parse_context_keys
from tests import support
from tests.factories import (
    ApiKeyFactory,
    GenericDataFactory,
    ProjectFactory,
    TableMetadataFactory,
    UserFactory,
)
from tests.production.deployment import Deployment

pytestmark = pytest.mark.usefixtures("deployment")

NEEDLE = "zebracorn"  # a word only the probe's rows hold, for full-text search
PERMISSION = "context.probe"


@dataclass
class World:
    tenant: int
    user: int
    project: int
    table: int
    rows: list[int]


def make_world(deployment: Deployment) -> World:
    """As the owner (BYPASSRLS): a tenant with a user holding a permission, and rows."""
    with deployment.connected_as("hzm_owner"):
        project = ProjectFactory()
        user = project.user
        UserFactory(tenant=project.tenant)
        table = TableMetadataFactory(project=project, tenant=project.tenant)
        rows = [
            GenericDataFactory(table=table, data={"title": f"{NEEDLE} {n}", "code": f"c-{n}"})
            for n in range(3)
        ]
        ApiKeyFactory(tenant=project.tenant, user=user, project=project)
        permission, _ = Permission.objects.get_or_create(code=PERMISSION)
        role = Role.objects.create(tenant=project.tenant, code=f"r{uuid.uuid4().hex[:6]}", name="r")
        RolePermission.objects.create(tenant=project.tenant, role=role, permission=permission)
        UserRole.objects.create(tenant=project.tenant, user=user, role=role)
        return World(project.tenant_id, user.pk, project.pk, table.pk, [r.pk for r in rows])


@pytest.fixture(scope="module")
def worlds(deployment: Deployment) -> tuple[World, World]:
    return make_world(deployment), make_world(deployment)


@pytest.fixture(scope="module")
def audit_mark(deployment: Deployment, worlds: tuple[World, World]) -> int:
    """The last audit row before the attacks: what comes after is theirs."""
    with deployment.connected_as("hzm_owner"), connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM ops.audit_logs")
        return cursor.fetchone()[0]


# --- What a statement sees -------------------------------------------------------------------


def attempt(cursor: Any, statement: str, params: Any = None) -> Any:
    """Run one statement in a savepoint; its rows, or the error PostgreSQL refused it with."""
    try:
        with transaction.atomic():
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    except DatabaseError as error:
        return error


def sees(cursor: Any, world: World) -> dict[str, Any]:
    """What the connection, as it is now, reaches of `world` (falsy values: nothing)."""
    found: dict[str, Any] = {}
    for what, statement in {
        "tenant row": "SELECT id FROM core.tenants WHERE id = %(tenant)s",
        "users": "SELECT id, email FROM core.users WHERE tenant_id = %(tenant)s",
        "projects": "SELECT id FROM core.projects WHERE tenant_id = %(tenant)s",
        "tables": "SELECT id FROM core.table_metadata WHERE tenant_id = %(tenant)s",
        "rows": "SELECT id FROM app.generic_data WHERE tenant_id = %(tenant)s",
        "api keys": (
            "SELECT key_hash, key_encrypted FROM core.api_keys WHERE tenant_id = %(tenant)s"
        ),
        "audit trail": "SELECT id FROM ops.audit_logs WHERE tenant_id = %(tenant)s",
        "search": "SELECT * FROM app.search_rows(%(table)s, %(needle)s)",
        "containment": (
            "SELECT * FROM app.rows_containing(%(project)s, %(table)s, %(doc)s::jsonb)"
        ),
        "permission": ("SELECT 1 WHERE app.has_permission(%(user)s, %(permission)s)"),
        "claimed tenant": "SELECT 1 WHERE app.current_tenant() = %(tenant)s",
        "claimed user": "SELECT 1 WHERE app.current_user_id() = %(user)s",
    }.items():
        result = attempt(
            cursor,
            statement,
            {
                "tenant": world.tenant,
                "user": world.user,
                "project": world.project,
                "table": world.table,
                "needle": NEEDLE,
                "doc": '{"code": "c-1"}',
                "permission": PERMISSION,
            },
        )
        found[what] = [] if isinstance(result, DatabaseError) else result
    found["update"] = attempt(
        cursor,
        "UPDATE core.projects SET description = 'defaced' WHERE tenant_id = %s RETURNING id",
        [world.tenant],
    )
    if isinstance(found["update"], DatabaseError):
        found["update"] = []
    inserted = attempt(
        cursor,
        "INSERT INTO core.projects (tenant_id, user_id, name, api_key) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        [world.tenant, world.user, f"planted-{uuid.uuid4().hex[:6]}", secrets.token_hex(16)],
    )
    found["insert"] = [] if isinstance(inserted, DatabaseError) else inserted
    logged = attempt(
        cursor,
        "SELECT ops.write_system_log('warning', 'attack', 'probe', '{}'::jsonb, NULL)",
    )
    found["system log"] = [] if isinstance(logged, DatabaseError) else logged
    return found


def reached(found: dict[str, Any]) -> dict[str, Any]:
    """The parts of a probe that found something of the world (the system log aside)."""
    return {what: rows for what, rows in found.items() if rows and what != "system log"}


# --- The attacks -----------------------------------------------------------------------------


def token_for(
    tenant: int, user: int | None, at: Backend, *, key: bytes | None = None, **kw: Any
) -> str:
    """A token as the application would sign it (with `key`: as someone with another key)."""
    if key is None:
        return context_token(tenant, user, at, **kw)
    claims = context_tokens.claims_for(tenant, user, at, 3600)
    return context_tokens.sign(claims, key)


@contextmanager
def other_transaction(deployment: Deployment, tenant: int, user: int) -> Iterator[str]:
    """B's real context on another connection of the authenticator, open meanwhile; its token."""
    with psycopg.connect(**deployment_params(deployment)) as other, other.cursor() as cursor:
        cursor.execute("SELECT set_config('role', %s, true)", [runtime_role()])
        token = sign_context(cursor, tenant, user)
        cursor.execute("SELECT app.current_tenant()")
        assert cursor.fetchone() == (tenant,)  # a real, valid context over there
        yield token


def deployment_params(deployment: Deployment) -> dict[str, Any]:
    """psycopg's parameters for the authenticator's login to the deployment."""
    return {
        **support.server_params(deployment.dbname),
        "user": deployment.login("hzm_web"),
        "password": deployment.settings("hzm_web")["PASSWORD"],
    }


def set_settings(cursor: Any, values: dict[str, str], *, local: bool = True) -> None:
    for name, value in values.items():
        attempt(cursor, "SELECT set_config(%s, %s, %s)", [name, value, local])


def replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


ATTACKS: dict[str, Callable[..., None]] = {}


def attack(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(function: Callable[..., None]) -> Callable[..., None]:
        ATTACKS[name] = function
        return function

    return register


@attack("set_config app.tenant_id, transaction")
def _(cursor, a, b, deployment):
    set_settings(cursor, {"app.tenant_id": str(b.tenant), "app.user_id": str(b.user)})


@attack("set_config app.tenant_id, session")
def _(cursor, a, b, deployment):
    set_settings(cursor, {"app.tenant_id": str(b.tenant), "app.user_id": str(b.user)}, local=False)


@attack("SET LOCAL app.tenant_id")
def _(cursor, a, b, deployment):
    attempt(cursor, f"SET LOCAL app.tenant_id = '{b.tenant}'")
    attempt(cursor, f"SET LOCAL app.user_id = '{b.user}'")


@attack("app.set_context(B)")
def _(cursor, a, b, deployment):
    attempt(cursor, "SELECT app.set_context(%s, %s)", [b.tenant, b.user])


@attack("A's token with B's tenant and user")
def _(cursor, a, b, deployment):
    cursor.execute("SELECT current_setting('app.context')")
    (token,) = cursor.fetchone()
    forged = replace_part(replace_part(token, 1, str(b.tenant)), 2, str(b.user))
    set_settings(cursor, {"app.context": forged})


@attack("a token signed with another key")
def _(cursor, a, b, deployment):
    wrong = secrets.token_bytes(32)
    set_settings(
        cursor, {"app.context": token_for(b.tenant, b.user, backend_of(cursor), key=wrong)}
    )


@attack("a token signed with a retired key")
def _(cursor, a, b, deployment):
    retired = parse_context_keys(secrets.token_urlsafe(32))[0]
    set_settings(
        cursor, {"app.context": token_for(b.tenant, b.user, backend_of(cursor), key=retired)}
    )


@attack("an expired token")
def _(cursor, a, b, deployment):
    at = backend_of(cursor)
    claims = context_tokens.Claims(b.tenant, b.user, at.transaction_start_seconds - 1, at)
    expired = context_tokens.sign(claims, parse_context_keys(settings.HZM_CONTEXT_KEY)[0])
    set_settings(cursor, {"app.context": expired})


@attack("B's token from another connection")
def _(cursor, a, b, deployment):
    with other_transaction(deployment, b.tenant, b.user) as token:
        set_settings(cursor, {"app.context": token})
        # Probed while B's transaction is still open over there.
        ATTACK_STATE["while open"] = reached(sees(cursor, b))


@attack("B's token from an earlier transaction of this backend")
def _(cursor, a, b, deployment):
    at = backend_of(cursor)
    earlier = Backend(at.pid, at.transaction_start - 1_000_000)
    set_settings(cursor, {"app.context": token_for(b.tenant, b.user, earlier)})


@attack("B's token for this backend's pid in another transaction, a second later")
def _(cursor, a, b, deployment):
    at = backend_of(cursor)
    set_settings(
        cursor,
        {"app.context": token_for(b.tenant, b.user, Backend(at.pid, at.transaction_start + 1))},
    )


@attack("a token with this transaction but another backend's pid")
def _(cursor, a, b, deployment):
    at = backend_of(cursor)
    set_settings(
        cursor,
        {"app.context": token_for(b.tenant, b.user, Backend(at.pid + 1, at.transaction_start))},
    )


@attack("garbage in app.context")
def _(cursor, a, b, deployment):
    for garbage in (
        "",
        "v1",
        "v1.2.3",
        f"v1.{b.tenant}.{b.user}.9999999999999.1.1." + "0" * 64,
        "v1.99999999999999999999.1.1.1.1." + "a" * 64,
        "\u00e9" * 200,
        "." * 6,
    ):
        set_settings(cursor, {"app.context": garbage})
        ATTACK_STATE.setdefault("garbage", []).append(reached(sees(cursor, b)))


@attack("every app.* setting rewritten from A to B")
def _(cursor, a, b, deployment):
    with other_transaction(deployment, b.tenant, b.user) as token:
        values = {
            "app.context": token,
            "app.tenant_id": str(b.tenant),
            "app.user_id": str(b.user),
            "app.request_id": "req-of-b",
            "app.ip_address": "203.0.113.9",
            "app.user_agent": "b's browser",
            "app.purge": "on",
        }
        set_settings(cursor, values)
        set_settings(cursor, values, local=False)
        ATTACK_STATE["while open"] = reached(sees(cursor, b))


ATTACK_STATE: dict[str, Any] = {}


@contextmanager
def as_attacker(identity: str) -> Iterator[None]:
    """The attacker's identity inside A's transaction: the runtime role, or the login itself."""
    if identity == "authenticator":
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute("SELECT current_user = session_user")
            assert cursor.fetchone() == (True,)
    yield


# --- The tests -------------------------------------------------------------------------------


def test_the_probe_finds_the_context_tenants_own_rows(deployment, worlds):
    a, _ = worlds
    with deployment.connected_as("hzm_web"), transaction.atomic():
        with tenant_context(a.tenant, a.user), connection.cursor() as cursor:
            found = sees(cursor, a)
            transaction.set_rollback(True)
    assert set(reached(found)) == {
        "tenant row",
        "users",
        "projects",
        "tables",
        "rows",
        "api keys",
        "audit trail",
        "search",
        "containment",
        "permission",
        "claimed tenant",
        "claimed user",
        "update",
        "insert",
    }, found
    assert sorted(row for (row,) in found["search"]) == sorted(a.rows)


@pytest.mark.parametrize("identity", ["runtime role", "authenticator"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_sql_inside_a_tenants_transaction_cannot_name_another_tenant(
    deployment, worlds, audit_mark, name, identity
):
    a, b = worlds
    ATTACK_STATE.clear()
    with deployment.connected_as("hzm_web"), transaction.atomic():
        with tenant_context(a.tenant, a.user), connection.cursor() as cursor:
            with as_attacker(identity):
                ATTACKS[name](cursor, a, b, deployment)
                after = reached(sees(cursor, b))
                # Whatever the attacker's identity now, it may also switch back to the
                # runtime role (the authenticator is a member) and look again.
                attempt(cursor, "SELECT set_config('role', %s, true)", [runtime_role()])
                again = reached(sees(cursor, b))
        transaction.set_rollback(True)
    assert after == {}, after
    assert again == {}, again
    assert ATTACK_STATE.get("while open", {}) == {}
    assert all(found == {} for found in ATTACK_STATE.get("garbage", [])), ATTACK_STATE["garbage"]


def test_nothing_was_recorded_as_the_other_tenant_or_its_users(deployment, worlds, audit_mark):
    """Runs after the attacks (file order): the owner reads what was committed meanwhile."""
    a, b = worlds
    # The attacks above rolled back; here each is committed, so that a write the policies
    # let through would stay. A legitimate write of A's is committed too.
    with deployment.connected_as("hzm_web"):
        with transaction.atomic(), tenant_context(a.tenant, a.user):
            with connection.cursor() as cursor:
                assert reached(sees(cursor, a))["update"]
        for name in ATTACKS:
            with transaction.atomic(), tenant_context(a.tenant, a.user):
                with connection.cursor() as cursor:
                    ATTACKS[name](cursor, a, b, deployment)
                    sees(cursor, b)
    with deployment.connected_as("hzm_owner"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM ops.audit_logs WHERE id > %s AND (tenant_id = %s "
            "OR user_id IN (SELECT id FROM core.users WHERE tenant_id = %s))",
            [audit_mark, b.tenant, b.tenant],
        )
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT count(*) FROM ops.system_logs WHERE source = 'attack' AND "
            "((context->>'tenant_id')::int = %s OR (context->>'user_id')::int IN "
            "(SELECT id FROM core.users WHERE tenant_id = %s))",
            [b.tenant, b.tenant],
        )
        assert cursor.fetchone() == (0,)
        cursor.execute(
            "SELECT count(*) FROM core.projects WHERE tenant_id = %s "
            "AND (name LIKE 'planted-%%' OR description = 'defaced')",
            [b.tenant],
        )
        assert cursor.fetchone() == (0,)
        # The legitimate write was recorded, as A's user: the checks above can fail.
        cursor.execute(
            "SELECT count(*) FROM ops.audit_logs WHERE id > %s AND tenant_id = %s AND user_id = %s",
            [audit_mark, a.tenant, a.user],
        )
        assert cursor.fetchone()[0] > 0
