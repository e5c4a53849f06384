"""tenant_context() and TenantContextMiddleware: who the connection is, and for how long.

The role and the context are transaction-local: they must be gone when the block ends,
on the same connection, whether the block committed, ran inside an outer transaction
or raised. Tests that need real commits use transactional tests; they write no rows
(tenant_context() takes ids, which the policies compare, and checks no table).
"""

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path

from core.models import PLATFORM_ADMIN_ROLE, Project, User
from hzm.db.context import (
    TenantContextError,
    TenantContextMiddleware,
    current_tenant,
    tenant_context,
)
from tests.factories import ProjectFactory, TenantFactory, UserFactory
from tests.security.conftest import RUNTIME_ROLE, session_identity
from tests.support import fetchone

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def login_role() -> str:
    return fetchone("SELECT session_user::text")[0]


def request_settings() -> tuple[str, str, str]:
    """The request metadata app.set_request_context() put into the transaction."""
    return fetchone(
        "SELECT current_setting('app.request_id', true), current_setting('app.ip_address', true), "
        "current_setting('app.user_agent', true)"
    )


def backend_pid() -> int:
    return fetchone("SELECT pg_backend_pid()")[0]


def assert_no_context() -> None:
    """The connection is the login role again, with no tenant, user or request metadata."""
    assert session_identity() == (login_role(), None, None)
    assert fetchone("SELECT current_setting('role')") == ("none",)
    assert request_settings() in ((None, None, None), ("", "", ""))
    assert current_tenant() is None


# --- tenant_context() ----------------------------------------------------------------------


@pytest.mark.django_db
def test_tenant_context_switches_to_the_runtime_role_with_the_context():
    assert session_identity() == (login_role(), None, None)
    assert login_role() != RUNTIME_ROLE

    with tenant_context(41, 7, request_id="r-1", ip_address="192.0.2.1", user_agent="ua/1"):
        assert session_identity() == (RUNTIME_ROLE, 41, 7)
        assert request_settings() == ("r-1", "192.0.2.1", "ua/1")
        assert current_tenant() == 41


@pytest.mark.django_db(transaction=True)
def test_role_and_context_end_with_the_transaction_on_the_same_connection():
    assert not connection.in_atomic_block
    pid = backend_pid()

    with tenant_context(41, 7, request_id="r-1", ip_address="192.0.2.1", user_agent="ua/1"):
        assert connection.in_atomic_block
        assert session_identity() == (RUNTIME_ROLE, 41, 7)

    assert not connection.in_atomic_block  # committed
    assert backend_pid() == pid  # the very connection the next request would get
    assert_no_context()
    with transaction.atomic():
        assert_no_context()


@pytest.mark.django_db(transaction=True)
def test_role_and_context_end_with_a_rolled_back_transaction():
    pid = backend_pid()
    with pytest.raises(ZeroDivisionError), tenant_context(41, 7, request_id="r-1"):
        assert session_identity() == (RUNTIME_ROLE, 41, 7)
        _ = 1 / 0

    assert backend_pid() == pid
    assert_no_context()


@pytest.mark.django_db
def test_inside_an_outer_transaction_role_and_context_are_put_back():
    assert connection.in_atomic_block  # pytest-django's test transaction

    with tenant_context(41, 7, request_id="r-1", ip_address="192.0.2.1", user_agent="ua/1"):
        assert session_identity() == (RUNTIME_ROLE, 41, 7)

    assert connection.in_atomic_block
    assert_no_context()


@pytest.mark.django_db
def test_inside_an_outer_transaction_an_error_in_the_block_puts_them_back():
    with pytest.raises(ZeroDivisionError), tenant_context(41, 7, request_id="r-1"):
        assert session_identity() == (RUNTIME_ROLE, 41, 7)
        _ = 1 / 0

    assert_no_context()


@pytest.mark.django_db
def test_inside_an_outer_runtime_role_transaction_the_outer_role_is_put_back():
    with transaction.atomic():
        fetchone("SELECT set_config('role', %s, true)", [RUNTIME_ROLE])
        with tenant_context(41, 7):
            assert session_identity() == (RUNTIME_ROLE, 41, 7)
        assert session_identity() == (RUNTIME_ROLE, None, None)
        transaction.set_rollback(True)

    assert_no_context()


@pytest.mark.django_db
def test_entering_another_tenants_context_is_refused_naming_both():
    with tenant_context(41, 7):
        with pytest.raises(TenantContextError) as error, tenant_context(42, 8):
            pytest.fail("entered tenant 42 inside tenant 41")
        assert str(error.value) == (
            "tenant context for tenant 41 is active on database 'default'; "
            "refusing to enter tenant 42 inside it"
        )
        assert session_identity() == (RUNTIME_ROLE, 41, 7)  # still A, untouched

    assert_no_context()


@pytest.mark.django_db
def test_reentering_the_same_tenant_nests_in_a_savepoint():
    world = ProjectFactory()
    tenant_id, user_id = world.tenant_id, world.user_id

    with tenant_context(tenant_id, user_id):
        with pytest.raises(ZeroDivisionError), tenant_context(tenant_id, user_id):
            assert session_identity() == (RUNTIME_ROLE, tenant_id, user_id)
            ProjectFactory(tenant=world.tenant, user=world.user, name="Rolled back")
            _ = 1 / 0
        # The inner block's write went with its savepoint; the outer one carries on.
        assert session_identity() == (RUNTIME_ROLE, tenant_id, user_id)
        assert list(Project.objects.values_list("name", flat=True)) == [world.name]
        with tenant_context(tenant_id, user_id):
            ProjectFactory(tenant=world.tenant, user=world.user, name="Kept")
        assert session_identity() == (RUNTIME_ROLE, tenant_id, user_id)

    assert_no_context()
    assert set(Project.objects.values_list("name", flat=True)) == {world.name, "Kept"}


@pytest.mark.django_db
def test_tenant_context_without_a_tenant_is_refused():
    with pytest.raises(TenantContextError) as error, tenant_context(None, 7):
        pytest.fail("entered a context without a tenant")

    assert str(error.value) == "tenant_context() needs a tenant id, got None"
    assert_no_context()


# --- The middleware ----------------------------------------------------------------------------


def recording_view(seen: list[dict[str, Any]]) -> Callable[[HttpRequest], HttpResponse]:
    """A view that records who the database says it is running as."""

    def view(request: HttpRequest) -> HttpResponse:
        role, tenant, user = session_identity()
        request_id, ip_address, user_agent = request_settings()
        seen.append(
            {
                "role": role,
                "tenant": tenant,
                "user": user,
                "request_id": request_id or None,
                "ip_address": ip_address or None,
                "user_agent": user_agent or None,
                "request.request_id": request.request_id,
            }
        )
        return JsonResponse(seen[-1])

    return view


def through_middleware(user: Any, **headers: str) -> tuple[dict[str, Any], HttpResponse]:
    seen: list[dict[str, Any]] = []
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.4", headers=headers)
    request.user = user
    response = TenantContextMiddleware(recording_view(seen))(request)
    assert len(seen) == 1
    return seen[0], response


def tenant_user() -> User:
    """An unsaved tenant user: the middleware needs only its ids."""
    return User(pk=7, tenant_id=41, email="someone@example.com", role="user")


@pytest.mark.django_db
def test_middleware_runs_a_tenant_users_request_in_its_context():
    seen, response = through_middleware(
        tenant_user(), **{"X-Request-ID": "req-42.a:b_c", "User-Agent": "Browser/1.0"}
    )

    assert seen == {
        "role": RUNTIME_ROLE,
        "tenant": 41,
        "user": 7,
        "request_id": "req-42.a:b_c",
        "ip_address": "198.51.100.4",
        "user_agent": "Browser/1.0",
        "request.request_id": "req-42.a:b_c",
    }
    assert response["X-Request-ID"] == "req-42.a:b_c"
    assert_no_context()


@pytest.mark.django_db
def test_middleware_leaves_anonymous_requests_alone():
    seen, response = through_middleware(AnonymousUser())

    assert (seen["role"], seen["tenant"], seen["user"]) == (login_role(), None, None)
    assert GENERATED_ID.fullmatch(response["X-Request-ID"])
    assert seen["request.request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_middleware_leaves_platform_staff_alone():
    staff = User(pk=8, tenant_id=1, email="admin@example.com", role=PLATFORM_ADMIN_ROLE)
    staff.is_active, staff.is_deleted = True, False
    assert staff.is_staff

    seen, _ = through_middleware(staff)

    assert (seen["role"], seen["tenant"], seen["user"]) == (login_role(), None, None)


@pytest.mark.parametrize(
    "supplied",
    ["", "has space", "x" * 101, "semi;colon", "quote'", "ünïcode", "new\nline", "trailing\n"],
    ids=["missing", "space", "too long", "semicolon", "quote", "non-ascii", "newline", "end"],
)
@pytest.mark.django_db
def test_middleware_replaces_a_missing_or_malformed_request_id(supplied):
    headers = {"X-Request-ID": supplied} if supplied else {}
    seen, response = through_middleware(tenant_user(), **headers)

    generated = response["X-Request-ID"]
    assert GENERATED_ID.fullmatch(generated) and generated != supplied
    assert seen["request_id"] == generated  # the audit trail gets the generated one


@pytest.mark.django_db
def test_middleware_accepts_a_request_id_of_the_longest_size():
    seen, response = through_middleware(tenant_user(), **{"X-Request-ID": "a" * 100})
    assert seen["request_id"] == response["X-Request-ID"] == "a" * 100


@pytest.mark.django_db(transaction=True)
def test_no_context_leaks_from_one_request_to_the_next_on_one_connection():
    pid = backend_pid()
    first, _ = through_middleware(tenant_user(), **{"X-Request-ID": "first"})
    second, _ = through_middleware(AnonymousUser())

    assert backend_pid() == pid
    assert (first["role"], first["tenant"]) == (RUNTIME_ROLE, 41)
    assert (second["role"], second["tenant"], second["user"]) == (login_role(), None, None)
    assert (second["request_id"], second["ip_address"], second["user_agent"]) == (None,) * 3


@pytest.mark.django_db
def test_middleware_puts_the_connection_back_when_the_view_fails():
    def failing_view(request: HttpRequest) -> HttpResponse:
        assert session_identity() == (RUNTIME_ROLE, 41, 7)
        raise ZeroDivisionError

    request = RequestFactory().get("/")
    request.user = tenant_user()
    with pytest.raises(ZeroDivisionError):
        TenantContextMiddleware(failing_view)(request)

    assert_no_context()


# The whole stack, as settings.MIDDLEWARE orders it: sessions and authentication first.
seen_by_whoami: list[dict[str, Any]] = []
urlpatterns = [path("whoami/", recording_view(seen_by_whoami))]


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.django_db
def test_signed_in_tenant_user_runs_as_the_tenant_through_the_whole_stack():
    user = UserFactory(tenant=TenantFactory())
    client = Client()
    client.force_login(user)

    response = client.get("/whoami/", headers={"X-Request-ID": "stack-1"})

    assert response.status_code == 200
    assert json.loads(response.content) == {
        "role": RUNTIME_ROLE,
        "tenant": user.tenant_id,
        "user": user.pk,
        "request_id": "stack-1",
        "ip_address": "127.0.0.1",  # the test client's REMOTE_ADDR
        "user_agent": None,
        "request.request_id": "stack-1",
    }
    assert response["X-Request-ID"] == "stack-1"
