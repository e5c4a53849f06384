"""Signing in: the admin's throttle (django-axes), the client's address, the audit of sign-ins.

The admin's sign-in is throttled per email and client IP (hzm/throttling.py); the
tenants' JSON sign-in is not, and never touches axes' tables (its requests run as the
runtime role, which holds none). Every sign-in records its last login in a transaction
whose audit actor is the user, with the request's id, address and user agent.
"""

import datetime
import io
import json
import re
import sys
from collections.abc import Iterator
from importlib import import_module
from typing import Any
from unittest import mock

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.contrib.auth.signals import user_logged_in
from django.core.management import call_command, get_commands, load_command_class
from django.db import connection
from django.db.models import F
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from core.models import SignInFailure, User
from hzm.db.operations import runtime_role, service_role
from hzm.deploy.connection import MigrationConnectionCommand
from hzm.throttling import sign_in_username
from ops.models import AuditLog
from tests.factories import UserFactory
from tests.serving import production

pytestmark = pytest.mark.django_db

PASSWORD = "an admin's long passphrase"
LIMIT = 3
COOL_OFF = datetime.timedelta(minutes=10)
THROTTLE = override_settings(AXES_FAILURE_LIMIT=LIMIT, AXES_COOLOFF_TIME=COOL_OFF)
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admins(db: None) -> list[User]:
    call_command("loaddata", "001_default_languages", "002_default_currencies", verbosity=0)
    return [
        User.objects.create_superuser("root@hzm.test", PASSWORD),
        User.objects.create_superuser("other@hzm.test", PASSWORD),
    ]


def sign_in(email: str, password: str, address: str = "198.51.100.7", **headers: str) -> Any:
    """A fresh browser posting the admin's sign-in form from `address` (via the proxy)."""
    client = Client()
    response = client.post(
        LOGIN,
        {"username": email, "password": password},
        REMOTE_ADDR="127.0.0.1",
        headers={"X-Forwarded-For": address, **headers},
    )
    response.client = client
    return response


def signed_in(response: Any) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def age_attempts(by: datetime.timedelta) -> None:
    """As if every recorded failure had happened `by` earlier."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)


@pytest.fixture
def hashes() -> Iterator[mock.MagicMock]:
    """Counts Argon2 verifications (each one is a full Argon2 hash)."""
    with mock.patch.object(
        Argon2PasswordHasher, "verify", autospec=True, side_effect=Argon2PasswordHasher.verify
    ) as verify:
        yield verify


# --- Throttling ---------------------------------------------------------------------------


@THROTTLE
def test_wrong_passwords_lock_the_email_and_address_out_for_the_cool_off(admins, hashes):
    for attempt in range(1, LIMIT):
        response = sign_in("root@hzm.test", "wrong")
        assert response.status_code == 200, attempt
        assert "correct email and password" in response.content.decode()
    assert hashes.call_count == LIMIT - 1

    locked = sign_in("root@hzm.test", "wrong")
    assert locked.status_code == 429
    assert hashes.call_count == LIMIT  # the failure that reaches the limit is checked
    page = locked.content.decode()
    assert "Too many failed sign-ins for root@hzm.test" in page
    until = re.search(r'<time datetime="([^"]+)">', page)
    assert until, page
    ends = datetime.datetime.fromisoformat(until.group(1))
    assert abs(ends - (timezone.now() + COOL_OFF)) < datetime.timedelta(seconds=30)
    assert 560 < int(locked["Retry-After"]) <= 600

    # The right password is refused too, without a password check, and does not prolong it.
    right = sign_in("ROOT@hzm.test", PASSWORD)
    assert right.status_code == 429
    assert not signed_in(right)
    assert hashes.call_count == LIMIT
    assert AccessAttempt.objects.get().failures_since_start == LIMIT

    age_attempts(COOL_OFF - datetime.timedelta(seconds=30))
    assert sign_in("root@hzm.test", PASSWORD).status_code == 429
    age_attempts(datetime.timedelta(seconds=31))
    after = sign_in("root@hzm.test", PASSWORD)
    assert signed_in(after), after.content.decode()[:2000]
    # A successful sign-in clears that email and address's count.
    assert not AccessAttempt.objects.exists()


@THROTTLE
def test_a_lock_out_spares_other_users_and_other_addresses(admins):
    for _ in range(LIMIT):
        sign_in("root@hzm.test", "wrong", "198.51.100.7")
    assert sign_in("root@hzm.test", PASSWORD, "198.51.100.7").status_code == 429
    assert signed_in(sign_in("other@hzm.test", PASSWORD, "198.51.100.7"))
    assert signed_in(sign_in("root@hzm.test", PASSWORD, "203.0.113.9"))
    # Still locked where the failures came from.
    assert sign_in("root@hzm.test", PASSWORD, "198.51.100.7").status_code == 429


@THROTTLE
def test_failures_count_the_email_in_any_case(admins):
    for email in ("root@hzm.test", "ROOT@hzm.test", "Root@HZM.test"):
        sign_in(email, "wrong")
    assert sign_in("root@hzm.test", PASSWORD).status_code == 429


@THROTTLE
def test_an_unknown_email_costs_one_hash_and_is_counted_too(admins, hashes):
    for _ in range(LIMIT):
        sign_in("nobody@hzm.test", "wrong")
    assert hashes.call_count == LIMIT
    assert sign_in("nobody@hzm.test", "wrong").status_code == 429
    assert hashes.call_count == LIMIT


@THROTTLE
def test_a_client_behind_an_untrusted_peer_cannot_choose_its_address(admins):
    # Not from a trusted proxy: X-Forwarded-For is the client's own claim, ignored.
    for forged in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        Client().post(
            LOGIN,
            {"username": "root@hzm.test", "password": "wrong"},
            REMOTE_ADDR="203.0.113.50",
            headers={"X-Forwarded-For": forged},
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.50"}
    assert sign_in("root@hzm.test", PASSWORD, "203.0.113.50").status_code == 429


@THROTTLE
def test_the_tenant_sign_in_is_throttled_by_its_own_table_and_never_touches_axes(admins):
    """The same policy as the admin's (tests/production/test_tenant_sign_in_throttle.py runs
    it through the production logins); axes' tables stay untouched."""
    user = UserFactory(password=PASSWORD)
    client = Client()

    def attempt(password: str) -> int:
        return client.post(
            "/api/v1/auth/login",
            {"email": str(user.email), "password": password},
            content_type="application/json",
        ).status_code

    assert [attempt("wrong") for _ in range(LIMIT)] == [401] * (LIMIT - 1) + [429]
    assert attempt(PASSWORD) == 429
    assert not AccessAttempt.objects.exists()
    # Well before the database's now(), which is this test transaction's start.
    SignInFailure.objects.filter(email=str(user.email).lower()).update(
        locked_until=timezone.now() - datetime.timedelta(days=1)
    )
    assert attempt(PASSWORD) == 200
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert not SignInFailure.objects.filter(email=str(user.email).lower()).exists()
    assert not AccessAttempt.objects.exists()


def test_only_the_admin_role_holds_axes_tables():
    tables = ["axes_accessattempt", "axes_accessattemptexpiration", "axes_accesslog"]
    tables.append("axes_accessfailurelog")
    privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    held = {}
    with connection.cursor() as cursor:
        for role in (runtime_role(), service_role("admin")):
            for table in tables:
                cursor.execute(
                    "SELECT array_agg(p ORDER BY ord) FROM unnest(%s::text[]) WITH ORDINALITY "
                    "AS u(p, ord) WHERE has_table_privilege(%s, %s::regclass, p)",
                    [privileges, role, table],
                )
                held[role, table] = cursor.fetchone()[0] or []
    admin = service_role("admin")
    assert held == {
        **{(runtime_role(), table): [] for table in tables},
        (admin, "axes_accessattempt"): ["SELECT", "INSERT", "UPDATE", "DELETE"],
        (admin, "axes_accessattemptexpiration"): ["SELECT", "DELETE"],
        (admin, "axes_accesslog"): [],
        (admin, "axes_accessfailurelog"): [],
    }


SHOW_SETTINGS = (
    "from django.conf import settings as s; "
    "print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, s.HZM_FORWARDED_ALLOW_IPS)"
)


@pytest.mark.usefixtures("django_db_setup")
def test_the_throttle_and_the_trusted_proxies_come_from_the_environment():
    result = production.run_in_production_environment(
        [sys.executable, "manage.py", "shell", "-c", SHOW_SETTINGS],
        overrides={
            "AXES_FAILURE_LIMIT": "7",
            "AXES_COOLOFF_MINUTES": "30",
            "FORWARDED_ALLOW_IPS": "10.0.0.1, 10.1.0.0/16",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "7 0:30:00 ['10.0.0.1', '10.1.0.0/16']"


@pytest.mark.usefixtures("django_db_setup")
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AXES_FAILURE_LIMIT", "0", "AXES_FAILURE_LIMIT=0, AXES_COOLOFF_MINUTES=15: both must be"),
        ("AXES_COOLOFF_MINUTES", "0", "AXES_FAILURE_LIMIT=5, AXES_COOLOFF_MINUTES=0: both must be"),
        ("AXES_COOLOFF_MINUTES", "1441", "AXES_COOLOFF_MINUTES=1441: at most 1440 (a day"),
        ("FORWARDED_ALLOW_IPS", "proxy.internal", "FORWARDED_ALLOW_IPS: 'proxy.internal' is not"),
    ],
)
def test_bad_throttle_or_proxy_settings_stop_the_start_naming_the_variable(name, value, message):
    result = production.run_in_production_environment(
        [sys.executable, "manage.py", "check"], overrides={name: value}
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "axes_list_attempts",
        "axes_reset",
        "axes_reset_ip",
        "axes_reset_username",
        "axes_reset_ip_username",
    ],
)
def test_axes_commands_are_owner_commands(name: str):
    # The hzm app's override wins (it comes before axes in INSTALLED_APPS).
    assert get_commands()[name] == "hzm"
    command = load_command_class("hzm", name)
    assert isinstance(command, MigrationConnectionCommand)
    assert isinstance(command, import_module(f"axes.management.commands.{name}").Command)


def test_axes_reset_username_matches_the_email_in_any_case(admins):
    with override_settings(AXES_FAILURE_LIMIT=LIMIT):
        for _ in range(LIMIT):
            sign_in("root@hzm.test", "wrong")
        out = io.StringIO()
        call_command("axes_reset_username", "ROOT@HZM.test", stdout=out)
    assert out.getvalue() == "1 attempts removed.\n"
    assert not AccessAttempt.objects.exists()


# --- Counted per email ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("credentials", "post", "username"),
    [
        ({"username": "Root@HZM.test", "password": "x"}, {}, "root@hzm.test"),
        ({"email": "Root@HZM.test"}, {}, "root@hzm.test"),
        (None, {"username": "ROOT@hzm.test"}, "root@hzm.test"),
        ({"username": "a" * 300}, {}, "a" * 255),
        ({"username": None}, {}, None),
    ],
)
def test_sign_ins_are_counted_under_the_lower_case_email(credentials, post, username):
    request = RequestFactory().post("/admin/login/", post)
    assert sign_in_username(request, credentials) == username


# --- The audit of sign-ins ------------------------------------------------------------------


def sign_in_audit_rows(user: User) -> list[AuditLog]:
    return list(
        AuditLog.objects.filter(
            entity_type="core.users", entity_id=str(user.pk), action="UPDATE"
        ).order_by("id")
    )


def test_django_s_unaudited_last_login_receiver_is_replaced():
    # Each receiver is kept under (dispatch_uid, sender id), first in its entry.
    uids = {entry[0][0] for entry in user_logged_in.receivers}
    assert "update_last_login" not in uids  # django.contrib.auth's
    assert "core.update_last_login_audited" in uids


def test_an_admin_sign_in_is_audited_with_the_admin_and_the_request(admins):
    root = admins[0]
    before = len(sign_in_audit_rows(root))
    response = sign_in(
        "root@hzm.test",
        PASSWORD,
        "198.51.100.7",
        **{"User-Agent": "admin-browser/1.0", "X-Request-ID": "admin-sign-in-1"},
    )
    assert signed_in(response)
    rows = sign_in_audit_rows(root)[before:]
    assert len(rows) == 1, [(r.user_id, r.new_values) for r in rows]
    [row] = rows
    assert (row.user_id, row.ip_address, row.user_agent, row.request_id) == (
        root.pk,
        "198.51.100.7",
        "admin-browser/1.0",
        "admin-sign-in-1",
    )
    assert set(row.new_values) >= {"last_login_at"}
    assert row.new_values["last_login_at"] != row.old_values["last_login_at"]
    root.refresh_from_db()
    assert root.last_login is not None


def test_a_tenant_sign_in_is_audited_with_the_user_and_the_request(db):
    user = UserFactory(password=PASSWORD)
    before = len(sign_in_audit_rows(user))
    response = Client().post(
        "/api/v1/auth/login",
        json.dumps({"email": str(user.email), "password": PASSWORD}),
        content_type="application/json",
        REMOTE_ADDR="127.0.0.1",
        headers={
            "X-Forwarded-For": "198.51.100.8",
            "User-Agent": "tenant-app/2.0",
            "X-Request-ID": "tenant-sign-in-1",
        },
    )
    assert response.status_code == 200, response.content
    rows = sign_in_audit_rows(user)[before:]
    assert len(rows) == 1, [(r.user_id, r.new_values) for r in rows]
    [row] = rows
    assert (row.tenant_id, row.user_id, row.ip_address, row.user_agent, row.request_id) == (
        user.tenant_id,
        user.pk,
        "198.51.100.8",
        "tenant-app/2.0",
        "tenant-sign-in-1",
    )
    assert response["X-Request-ID"] == "tenant-sign-in-1"
