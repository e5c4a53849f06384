"""The tenants' sign-in throttle (core/sign_in_throttle.py), through the README's logins.

The requests go through Django's whole stack with the connection logged in as the web
process's authenticator (hzm_web), as production runs them: the failures are counted in
app.sign_in_failures by the runtime role's functions, and the owner ages them. Then the
attacker: SQL inside a tenant user's request (the runtime role, and the authenticator
after RESET ROLE) can neither read the failures nor clear the count of an account it is
guessing.
"""

import datetime
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client, override_settings

from core import sign_in_throttle
from core.models import SignInFailure, User
from hzm.db.context import as_runtime_role, backend, tenant_context
from hzm.db.context_tokens import Backend
from hzm.secrets import context_keys
from tests.factories import UserFactory
from tests.production.deployment import Deployment
from tests.support import REPO_ROOT

PASSWORD = "a tenant user's long passphrase"
LIMIT = 3
COOL_OFF = datetime.timedelta(minutes=10)
WEB = override_settings(
    HZM_SERVE="api", DEBUG=False, AXES_FAILURE_LIMIT=LIMIT, AXES_COOLOFF_TIME=COOL_OFF
)
LOGIN = "/api/v1/auth/login"
README = (REPO_ROOT / "README.md").read_text()


@pytest.fixture
def user(deployment: Deployment) -> Iterator[User]:
    """A tenant user of its own (made as the owner); its failure counts go afterwards."""
    with deployment.connected_as("hzm_owner"):
        found = UserFactory(email=f"guess-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD)
    yield found
    with deployment.connected_as("hzm_owner"):
        SignInFailure.objects.filter(email=str(found.email).lower()).delete()


def sign_in(email: str, password: str, address: str) -> tuple[Client, object]:
    client = Client()
    response = client.post(
        LOGIN,
        {"email": email, "password": password},
        content_type="application/json",
        headers={"X-Forwarded-For": address},
    )
    return client, response


def status(email: str, password: str, address: str) -> int:
    return sign_in(email, password, address)[1].status_code


def failures(deployment: Deployment, email: str) -> list[tuple[str, int, bool]]:
    with deployment.connected_as("hzm_owner"):
        return sorted(
            (f.ip_address, f.failures, f.locked_until is not None)
            for f in SignInFailure.objects.filter(email=email.lower())
        )


@WEB
def test_a_guessed_password_locks_the_email_out_from_that_address(deployment, user):
    email, address = str(user.email), "198.51.100.31"
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT - 1):
            assert status(email, "wrong", address) == 401
        _, locked = sign_in(email, "wrong", address)
        assert locked.status_code == 429, locked.content
        body = locked.json()
        assert body["error"]["code"] == "too_many_requests", body
        assert "too many failed sign-ins" in body["error"]["message"]
        wait = int(locked["Retry-After"])
        assert 0 < wait <= COOL_OFF.total_seconds()
        # Locked out: the right password is refused too, and the email in another case.
        assert status(email, PASSWORD, address) == 429
        assert status(email.upper(), PASSWORD, address) == 429
        # Another address signs in; another email from the locked address is not locked.
        _, right = sign_in(email, PASSWORD, "203.0.113.31")
        assert right.status_code == 200, right.content
        assert status(f"other-{email}", "wrong", address) == 401
    assert failures(deployment, email) == [(address, LIMIT, True)]


@WEB
def test_the_lock_out_ends_after_the_cool_off_and_a_sign_in_clears_the_count(deployment, user):
    email, address = str(user.email), "198.51.100.32"
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT):
            status(email, "wrong", address)
        assert status(email, PASSWORD, address) == 429
    with deployment.connected_as("hzm_owner"):
        SignInFailure.objects.filter(email=email.lower()).update(
            last_failure=datetime.datetime.now(datetime.UTC) - COOL_OFF,
            locked_until=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1),
        )
    with deployment.connected_as("hzm_web"):
        # A failure after the cool-off starts the count again: not locked out.
        assert status(email, "wrong", address) == 401
        assert failures(deployment, email) == [(address, 1, False)]
    with deployment.connected_as("hzm_web"):
        client, right = sign_in(email, PASSWORD, address)
        assert right.status_code == 200, right.content
        assert client.get("/api/v1/auth/session").status_code == 200
    assert failures(deployment, email) == []
    with deployment.connected_as("hzm_web"):
        # Cleared: LIMIT - 1 new failures do not lock the pair out.
        for _ in range(LIMIT - 1):
            assert status(email, "wrong", address) == 401
        assert status(email, PASSWORD, address) == 200


@WEB
def test_an_unknown_email_is_counted_like_a_known_one(deployment):
    email, address = f"nobody-{uuid.uuid4().hex[:8]}@example.com", "198.51.100.33"
    with deployment.connected_as("hzm_web"):
        codes = [status(email, "wrong", address) for _ in range(LIMIT + 1)]
    # The same answers as for a real account: the throttle tells no one which emails exist.
    assert codes == [401] * (LIMIT - 1) + [429, 429]
    with deployment.connected_as("hzm_owner"):
        SignInFailure.objects.filter(email=email).delete()


# --- The attacker ------------------------------------------------------------------------------


def attacker_sql(deployment: Deployment, attacker: User, statement: str, params=None):
    """`statement` inside the attacker's own tenant context, as the runtime role; the error."""
    with deployment.connected_as("hzm_web"):
        try:
            with tenant_context(attacker.tenant_id, attacker.pk):
                with connection.cursor() as cursor:
                    cursor.execute(statement, params)
                    return cursor.fetchall() if cursor.description else None
        except DatabaseError as error:
            return error


@WEB
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT email, ip_address FROM app.sign_in_failures",
        "DELETE FROM app.sign_in_failures",
        "UPDATE app.sign_in_failures SET locked_until = NULL",
        "INSERT INTO app.sign_in_failures (email, ip_address, failures, last_failure) "
        "VALUES ('x', 'y', 1, now())",
        "TRUNCATE app.sign_in_failures",
        "RESET ROLE; SELECT email FROM app.sign_in_failures",
        "RESET ROLE; DELETE FROM app.sign_in_failures",
    ],
)
def test_injected_sql_cannot_read_or_rewrite_the_failures(deployment, user, statement):
    with deployment.connected_as("hzm_owner"):
        attacker = UserFactory(password=PASSWORD)
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT):
            status(str(user.email), "wrong", "198.51.100.34")
    result = attacker_sql(deployment, attacker, statement)
    assert isinstance(result, DatabaseError), result
    assert "permission denied" in str(result), result
    assert failures(deployment, str(user.email)) == [("198.51.100.34", LIMIT, True)]


@WEB
def test_injected_sql_clears_only_its_own_users_failures(deployment, user):
    """app.sign_in_succeeded() takes the email from the verified context, not from the caller."""
    address = "198.51.100.35"
    with deployment.connected_as("hzm_owner"):
        attacker = UserFactory(tenant=user.tenant, password=PASSWORD)
    with deployment.connected_as("hzm_web"):
        for who in (user, attacker):
            for _ in range(LIMIT):
                status(str(who.email), "wrong", address)
    # The attacker's session is in the victim's tenant even: it clears its own count only.
    assert attacker_sql(deployment, attacker, "SELECT app.sign_in_succeeded(%s)", [address]) == [
        (None,)
    ]
    assert failures(deployment, str(attacker.email)) == []
    assert failures(deployment, str(user.email)) == [(address, LIMIT, True)]
    with deployment.connected_as("hzm_web"):
        assert status(str(user.email), PASSWORD, address) == 429
    with deployment.connected_as("hzm_owner"):
        SignInFailure.objects.filter(email=str(attacker.email).lower()).delete()


@WEB
@pytest.mark.parametrize(
    "limit, cool_off", [(0, 60), (3, 0), (3, 86401), (3, 2_000_000_000), (None, 60), (3, None)]
)
def test_injected_sql_cannot_lock_an_account_out_beyond_a_day(deployment, user, limit, cool_off):
    with deployment.connected_as("hzm_owner"):
        attacker = UserFactory(password=PASSWORD)
    result = attacker_sql(
        deployment,
        attacker,
        "SELECT app.count_sign_in_failure(%s, %s, %s, %s, %s)",
        [str(user.email), "198.51.100.36", limit, cool_off, "0" * 64],
    )
    assert isinstance(result, DatabaseError), result
    assert "sign-in throttle: limit" in str(result), result
    assert failures(deployment, str(user.email)) == []


def signed_elsewhere(email: str, address: str, limit: int, cool_off: int) -> str:
    """A signature with the real key, as if seen in another transaction: another backend's."""
    other = Backend(pid=1, transaction_start=1_700_000_000_000_000)
    return sign_in_throttle.failure_signature(
        email, address, limit, cool_off, other, context_keys()[0]
    )


@WEB
@pytest.mark.parametrize("how", ["unsigned", "empty", "forged", "another transaction's", "0008's"])
def test_injected_sql_cannot_count_a_failure_the_web_process_did_not_sign(deployment, user, how):
    """A victim's email from the victim's own address: over HTTP only the victim could fail
    from there, so injected SQL must not be able to either."""
    with deployment.connected_as("hzm_owner"):
        attacker = UserFactory(password=PASSWORD)
    email, address = str(user.email), "198.51.100.40"
    limit, cool_off = 1, 86400  # one failure would lock the victim out for a day
    statement = "SELECT app.count_sign_in_failure(%s, %s, %s, %s, %s)"
    params = [email, address, limit, cool_off]
    if how == "0008's":
        statement, signature = "SELECT app.sign_in_failed(%s, %s, %s, %s)", None
    else:
        signature = {
            "unsigned": None,
            "empty": "",
            "forged": "f" * 64,
            "another transaction's": signed_elsewhere(email, address, limit, cool_off),
        }[how]
        params.append(signature)
    result = attacker_sql(deployment, attacker, statement, params)
    assert isinstance(result, DatabaseError), result
    if how == "0008's":
        assert "permission denied for function sign_in_failed" in str(result), result
    else:
        assert "sign-in throttle: this failure is not signed for this transaction" in str(result)
    assert failures(deployment, email) == []
    with deployment.connected_as("hzm_web"):
        assert status(email, PASSWORD, address) == 200


@WEB
def test_a_signature_counts_only_the_failure_it_was_made_for(deployment, user):
    """The web process's own signature for this transaction, with any one thing changed."""
    with deployment.connected_as("hzm_owner"):
        attacker = UserFactory(password=PASSWORD)
    email, address, limit, cool_off = str(user.email), "198.51.100.41", 3, 600
    with deployment.connected_as("hzm_web"):
        with tenant_context(attacker.tenant_id, attacker.pk):
            at = backend()
            good = sign_in_throttle.failure_signature(
                email, address, limit, cool_off, at, context_keys()[0]
            )
            changed = [
                [email.upper(), address, limit, cool_off],
                [email, "198.51.100.42", limit, cool_off],
                [email, address, 1, cool_off],
                [email, address, limit, 86400],
            ]
            for params in changed:
                with pytest.raises(DatabaseError, match="not signed for this transaction"):
                    with transaction.atomic(), connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT app.count_sign_in_failure(%s, %s, %s, %s, %s)", [*params, good]
                        )
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT app.count_sign_in_failure(%s, %s, %s, %s, %s)",
                    [email, address, limit, cool_off, good],
                )
                assert cursor.fetchone() == (0,)  # counted: one failure of three
    assert failures(deployment, email) == [(address, 1, False)]


@WEB
def test_the_wait_outside_a_request_is_only_a_number(deployment, user):
    """What the runtime role may learn without any context: whether a pair is locked out."""
    address = "198.51.100.37"
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT):
            status(str(user.email), "wrong", address)
        with as_runtime_role(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT app.sign_in_wait(%s, %s), app.sign_in_wait(%s, %s)",
                [str(user.email).upper(), address, str(user.email), "203.0.113.37"],
            )
            locked, other = cursor.fetchone()
            transaction.set_rollback(True)
    assert 0 < locked <= COOL_OFF.total_seconds() and other == 0


def readme_unlock_commands() -> list[list[str]]:
    """The README's sign_in_* commands, as written there: each one's manage.py arguments."""
    section = README.split("**Tenants' sign-in is throttled the same way.**")[1]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)[1]
    return [
        shlex.split(line.split("#", 1)[0])[2:]
        for line in block.splitlines()
        if line.startswith("python manage.py sign_in_")
    ]


@WEB
def test_the_readmes_unlock_commands_list_and_unlock_the_user(deployment, user):
    """The README's commands, with this user's email and addresses, as the operator runs them
    (DATABASE_URL the web login's, MIGRATION_DATABASE_URL the owner's)."""
    commands = readme_unlock_commands()
    assert [arguments[0] for arguments in commands] == [
        "sign_in_lockouts",
        "sign_in_lockouts",
        "sign_in_unlock",
        "sign_in_unlock",
    ]
    list_all, list_one, unlock_one_address, unlock_everywhere = commands
    email, first, second = str(user.email), "198.51.100.7", "198.51.100.38"
    assert "ada@example.com" in list_one and first in unlock_one_address

    def run(arguments: list[str]) -> str:
        named = [email.upper() if value == "ada@example.com" else value for value in arguments]
        return deployment.manage(*named).stdout

    with deployment.connected_as("hzm_web"):
        for address in (first, second):
            for _ in range(LIMIT):
                status(email, "wrong", address)
            assert status(email, PASSWORD, address) == 429
    listed = [line.split("\t") for line in run(list_all).splitlines()]
    mine = sorted(line for line in listed if line[0] == email.lower())
    assert sorted((line[1], line[2]) for line in mine) == sorted(
        [(first, f"{LIMIT} failure(s)"), (second, f"{LIMIT} failure(s)")]
    ), listed
    assert all(line[4].startswith("locked out until ") for line in mine), mine
    assert sorted(run(list_one).splitlines()) == sorted("\t".join(line) for line in mine)

    assert run(unlock_one_address) == f"{email.lower()}: unlocked, 1 address(es) forgotten\n"
    with deployment.connected_as("hzm_web"):
        assert status(email, PASSWORD, second) == 429  # the other address stays locked
    assert failures(deployment, email) == [(second, LIMIT, True)]
    assert run(unlock_everywhere) == f"{email.lower()}: unlocked, 1 address(es) forgotten\n"
    assert run(unlock_everywhere) == f"{email.lower()}: no failed sign-ins on record\n"
    with deployment.connected_as("hzm_web"):
        assert status(email, PASSWORD, first) == 200
        assert status(email, PASSWORD, second) == 200


@WEB
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--ip", "198.51.100.999"], "--ip '198.51.100.999' is not an IPv4 or IPv6 address"),
        (["--ip", "'; DROP TABLE x"], "is not an IPv4 or IPv6 address"),
        (["x" * 300 + "@example.com"], "is not an email the throttle counts"),
    ],
)
def test_unlock_refuses_bad_arguments_before_deleting_anything(
    deployment, user, arguments, message
):
    email, address = str(user.email), "198.51.100.39"
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT):
            status(email, "wrong", address)
    # A good email first: nothing of it is deleted either.
    result = subprocess.run(
        [sys.executable, "manage.py", "sign_in_unlock", email, *arguments],
        cwd=REPO_ROOT,
        env=deployment.environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result
    assert result.stderr.startswith("CommandError: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert failures(deployment, email) == [(address, LIMIT, True)]


ADMIN = override_settings(HZM_SERVE="admin", DEBUG=False)
ADMIN_PASSWORD = "an admin's long passphrase"


@WEB
def test_the_admin_lists_a_lock_out_and_deleting_it_unlocks_the_user(deployment, user):
    """Through the admin's own login (hzm_admin: SELECT and DELETE on the table, core 0009)."""
    email, address = str(user.email), "198.51.100.39"
    with deployment.connected_as("hzm_web"):
        for _ in range(LIMIT):
            status(email, "wrong", address)
        assert status(email, PASSWORD, address) == 429
    staff = f"ops-{uuid.uuid4().hex[:6]}@hzm.local"
    deployment.manage(
        "createsuperuser",
        "--noinput",
        DJANGO_SUPERUSER_EMAIL=staff,
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    with ADMIN, deployment.connected_as("hzm_admin"):
        admin = Client()
        signed = admin.post(
            "/admin/login/?next=/admin/", {"username": staff, "password": ADMIN_PASSWORD}
        )
        assert signed.status_code == 302, signed.content.decode()[:2000]
        listed = admin.get("/admin/core/signinfailure/", {"q": email})
        assert listed.status_code == 200
        assert email.lower() in listed.content.decode()
        assert admin.get("/admin/core/signinfailure/add/").status_code == 403
        row = SignInFailure.objects.get(email=email.lower())
        deleted = admin.post(f"/admin/core/signinfailure/{row.pk}/delete/", {"post": "yes"})
        assert deleted.status_code == 302, deleted.content.decode()[:2000]
    assert failures(deployment, email) == []
    with deployment.connected_as("hzm_web"):
        assert status(email, PASSWORD, address) == 200
