"""Sign-in throttling and the audit of sign-ins, through the README's logins.

The admin's process logs in as hzm_admin (the admin role: its grants on axes' tables,
ops/migrations/0004, are all it has there); the web process as hzm_web, whose requests
run as the runtime role, which holds nothing of axes. Failures are aged, and the audit
trail read, as the owner.
"""

import datetime
import uuid
from collections.abc import Iterator

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client, override_settings

from core.models import SignInFailure, User
from ops.models import AuditLog
from tests.factories import UserFactory
from tests.production.deployment import Deployment

PASSWORD = "an admin's long passphrase"
LIMIT = 3
COOL_OFF = datetime.timedelta(minutes=10)
ADMIN = override_settings(
    HZM_SERVE="admin", DEBUG=False, AXES_FAILURE_LIMIT=LIMIT, AXES_COOLOFF_TIME=COOL_OFF
)
WEB = override_settings(HZM_SERVE="api", DEBUG=False, AXES_FAILURE_LIMIT=LIMIT + 1)
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admin_email(deployment: Deployment) -> Iterator[str]:
    """A platform admin of its own (made as the owner); its failure counts go afterwards."""
    email = f"lock-{uuid.uuid4().hex[:8]}@hzm.local"
    with deployment.connected_as("hzm_owner"):
        User.objects.create_superuser(email, PASSWORD)
    yield email
    with deployment.connected_as("hzm_owner"):
        AccessAttempt.objects.filter(username=email).delete()


def sign_in(email: str, password: str, address: str, **headers: str) -> Client:
    client = Client()
    client.last = client.post(
        LOGIN,
        {"username": email, "password": password},
        headers={"X-Forwarded-For": address, **headers},
    )
    return client


def signed_in(client: Client) -> bool:
    return client.last.status_code == 302 and "_auth_user_id" in client.session


def sign_in_rows(user_id: int) -> list[AuditLog]:
    return list(
        AuditLog.objects.filter(
            entity_type="core.users", entity_id=str(user_id), action="UPDATE"
        ).order_by("id")
    )


@ADMIN
def test_the_admin_login_locks_out_and_lets_in_after_the_cool_off(deployment, admin_email):
    address = "198.51.100.21"
    with deployment.connected_as("hzm_admin"):
        for _ in range(LIMIT - 1):
            assert sign_in(admin_email, "wrong", address).last.status_code == 200
        locked = sign_in(admin_email, "wrong", address).last
        assert locked.status_code == 429, locked.content.decode()[:2000]
        assert "Try again after" in locked.content.decode()
        assert sign_in(admin_email, PASSWORD, address).last.status_code == 429
        # Another address, the same admin: not locked (and its own count is cleared).
        assert signed_in(sign_in(admin_email, PASSWORD, "203.0.113.21"))

    with deployment.connected_as("hzm_owner"):
        attempts = AccessAttempt.objects.filter(username=admin_email)
        assert list(attempts.values_list("ip_address", "failures_since_start")) == [
            (address, LIMIT)
        ]
        attempts.update(attempt_time=F("attempt_time") - COOL_OFF)

    with deployment.connected_as("hzm_admin"):
        # The expired count is deleted (with its expiration rows) and the admin signs in.
        after = sign_in(admin_email, PASSWORD, address)
        assert signed_in(after), after.last.content.decode()[:2000]
        assert after.get("/admin/").status_code == 200
    with deployment.connected_as("hzm_owner"):
        assert not AccessAttempt.objects.filter(username=admin_email).exists()


@ADMIN
def test_the_owner_unlocks_with_axes_commands_through_migration_database_url(
    deployment, admin_email
):
    address = "198.51.100.22"
    with deployment.connected_as("hzm_admin"):
        for _ in range(LIMIT):
            sign_in(admin_email, "wrong", address)
        assert sign_in(admin_email, PASSWORD, address).last.status_code == 429

    listed = deployment.manage("axes_list_attempts").stdout
    assert f"{address}\t{admin_email}\t{LIMIT}" in listed
    # The README's environment: DATABASE_URL is hzm_web's, MIGRATION_DATABASE_URL the owner's.
    reset = deployment.manage("axes_reset_username", admin_email.upper())
    assert "1 attempts removed." in reset.stdout

    with deployment.connected_as("hzm_admin"):
        assert signed_in(sign_in(admin_email, PASSWORD, address))


@ADMIN
def test_an_admin_sign_in_through_the_admin_login_is_audited_with_the_admin(
    deployment, admin_email
):
    with deployment.connected_as("hzm_owner"):
        admin_id = User.objects.get(email=admin_email).pk
    with deployment.connected_as("hzm_admin"):
        client = sign_in(
            admin_email,
            PASSWORD,
            "198.51.100.23",
            **{"User-Agent": "ops-browser/3.1", "X-Request-ID": f"admin-{admin_id}"},
        )
        assert signed_in(client)
    with deployment.connected_as("hzm_owner"):
        rows = sign_in_rows(admin_id)
        assert [(r.user_id, r.ip_address, r.user_agent, r.request_id) for r in rows] == [
            (admin_id, "198.51.100.23", "ops-browser/3.1", f"admin-{admin_id}")
        ]
        assert rows[0].new_values["last_login_at"]


@WEB
def test_the_tenant_sign_in_through_the_web_login_is_audited_and_left_to_its_own_throttle(
    deployment,
):
    """Audited with the user and the request; axes counts nothing of it (the tenants' throttle,
    tests/production/test_tenant_sign_in_throttle.py, has a table of its own)."""
    with deployment.connected_as("hzm_owner"):
        user = UserFactory(password=PASSWORD)
    credentials = {"email": str(user.email), "password": PASSWORD}
    with deployment.connected_as("hzm_web"):
        client = Client()
        for _ in range(LIMIT):
            wrong = client.post(
                "/api/v1/auth/login",
                {**credentials, "password": "wrong"},
                content_type="application/json",
            )
            assert wrong.status_code == 401, wrong.content
        right = client.post(
            "/api/v1/auth/login",
            credentials,
            content_type="application/json",
            headers={
                "X-Forwarded-For": "198.51.100.24",
                "User-Agent": "tenant-app/2.0",
                "X-Request-ID": f"tenant-{user.pk}",
            },
        )
        assert right.status_code == 200, right.content
        assert client.post("/api/v1/auth/logout").status_code == 204
    with deployment.connected_as("hzm_owner"):
        rows = sign_in_rows(user.pk)
        assert [
            (r.tenant_id, r.user_id, r.ip_address, r.user_agent, r.request_id) for r in rows
        ] == [(user.tenant_id, user.pk, "198.51.100.24", "tenant-app/2.0", f"tenant-{user.pk}")]
        assert not AccessAttempt.objects.filter(username=str(user.email)).exists()
        throttled = SignInFailure.objects.filter(email=str(user.email).lower())
        assert list(throttled.values_list("failures", flat=True)) == [LIMIT]
        throttled.delete()
