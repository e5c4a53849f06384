"""The verified tenant context in the database (hzm 0006): keys, rotation, the doctor, health.

The attacks themselves are in tests/production/test_unforgeable_context.py (as the
README's authenticator); here is the machinery: which keys the database holds and how
migrate refreshes them, what a verified context gives the runtime role and the service
roles, what the doctor and /healthz say when the keys differ, the sealed sign-in lookup.
"""

import secrets

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, transaction

from core.auth import authenticate_credentials
from hzm import health
from hzm.db import checks, context_tokens
from hzm.db.context import (
    TenantContextError,
    as_runtime_role,
    backend_of,
    context_token,
    service_context,
    set_audit_actor,
    sign_context,
    tenant_context,
)
from hzm.db.context_keys import install_context_keys, installed_fingerprints, key_fingerprints
from hzm.db.operations import runtime_role, service_role
from hzm.durations import duration_seconds
from hzm.secrets import context_keys, parse_context_keys
from ops.models import AuditLog
from tests.factories import ProjectFactory, UserFactory
from tests.factories_platform import NotificationFactory
from tests.support import fetchone, run, server_params, sql_refused

pytestmark = pytest.mark.django_db


def claims() -> tuple:
    return fetchone("SELECT current_user::text, app.current_tenant(), app.current_user_id()")


def database_keys() -> list:
    with connection.cursor() as cursor:
        return installed_fingerprints(cursor)


@pytest.fixture
def rotated(settings):
    """settings.HZM_CONTEXT_KEY replaced for the test; the database's keys put back after."""
    original = settings.HZM_CONTEXT_KEY
    yield settings
    settings.HZM_CONTEXT_KEY = original
    install_context_keys()


# --- The keys ------------------------------------------------------------------------------


def test_migrate_installed_the_settings_keys_and_only_the_owner_may_read_them():
    assert database_keys() == key_fingerprints(context_keys())
    with as_runtime_role():
        error = sql_refused("SELECT count(*) FROM hzm_private.context_keys")
    assert error.diag.message_primary == "permission denied for schema hzm_private"


def test_installing_unchanged_keys_writes_nothing():
    assert install_context_keys() is False


def test_a_rotation_verifies_old_and_new_tokens_until_the_old_key_goes(rotated):
    old = rotated.HZM_CONTEXT_KEY.split(",")[0]
    new = secrets.token_urlsafe(32)
    role = f"SET LOCAL ROLE {runtime_role()}"
    with transaction.atomic():  # one transaction: the owner installs, the runtime role asks
        at = backend_of(connection.cursor())
        signed_with_old = context_token(1, 2, at)
        # Verified once before the rotation: this session's plans hold the old keys.
        run(role)
        run("SELECT set_config('app.context', %s, true)", [signed_with_old])
        assert claims() == (runtime_role(), 1, 2)
        run("RESET ROLE")
        rotated.HZM_CONTEXT_KEY = f"{new},{old}"
        assert install_context_keys() is True
        signed_with_new = context_token(1, 2, at)
        assert signed_with_new != signed_with_old
        for token in (signed_with_old, signed_with_new):
            run(role)
            run("SELECT set_config('app.context', %s, true)", [token])
            assert claims() == (runtime_role(), 1, 2)
            run("RESET ROLE")
        rotated.HZM_CONTEXT_KEY = new
        install_context_keys()
        run(role)
        run("SELECT set_config('app.context', %s, true)", [signed_with_old])
        assert claims() == (runtime_role(), None, None)
        run("SELECT set_config('app.context', %s, true)", [signed_with_new])
        assert claims() == (runtime_role(), 1, 2)
        run("RESET ROLE")


@pytest.mark.django_db(transaction=True)
def test_a_rotation_reaches_sessions_that_verified_with_the_old_keys(rotated):
    """migrate runs in another process while the web's sessions live on: they re-plan."""
    web = psycopg.connect(**server_params(connection.settings_dict["NAME"]), autocommit=True)
    try:

        def verifies(key_text: str) -> bool:
            with web.transaction():
                web.execute(f"SET LOCAL ROLE {runtime_role()}")
                at = backend_of(web.cursor())
                claims_ = context_tokens.claims_for(4, 2, at, 60)
                token = context_tokens.sign(claims_, parse_context_keys(key_text)[0])
                web.execute("SELECT set_config('app.context', %s, true)", [token])
                return web.execute("SELECT app.current_tenant()").fetchone() == (4,)

        old, new = rotated.HZM_CONTEXT_KEY, secrets.token_urlsafe(32)
        assert verifies(old) and not verifies(new)
        rotated.HZM_CONTEXT_KEY = new
        assert install_context_keys() is True  # committed: autocommit outside a test transaction
        assert verifies(new) and not verifies(old)
    finally:
        web.close()


def test_migrate_itself_refreshes_the_keys(rotated):
    rotated.HZM_CONTEXT_KEY = secrets.token_urlsafe(32)
    call_command("migrate", verbosity=0)
    assert database_keys() == key_fingerprints(parse_context_keys(rotated.HZM_CONTEXT_KEY))


# --- What a verified context gives ---------------------------------------------------------


def test_tenant_context_is_verified_and_ends_with_its_transaction():
    with tenant_context(5, 9):
        assert claims() == (runtime_role(), 5, 9)
        token = fetchone("SELECT current_setting('app.context')")[0]
        assert context_tokens.verify(token, context_keys()).tenant_id == 5
    assert fetchone("SELECT app.current_tenant(), current_setting('app.context', true)") in {
        (None, None),
        (None, ""),
    }


def test_the_policies_verify_once_per_statement():
    """Every tenant policy calls app.current_tenant() in an InitPlan, not per row."""
    with tenant_context(5):
        plan = "\n".join(
            line
            for (line,) in connection.cursor().execute(
                "EXPLAIN VERBOSE SELECT id FROM core.projects"
            )
        )
    assert plan.count("InitPlan") == 1 and plan.count("app.current_tenant()") == 1, plan
    assert plan.index("InitPlan") < plan.index("app.current_tenant()"), plan


def test_app_set_context_ends_the_context_instead_of_naming_a_tenant():
    with tenant_context(5, 9):
        run("SELECT app.set_context(6, 10)")
        assert claims() == (runtime_role(), None, None)


def test_only_the_owner_signs_in_the_database():
    with as_runtime_role():
        error = sql_refused("SELECT app.sign_context(1, 1)")
    assert error.diag.message_primary == "permission denied for function sign_context"
    # The owner (the tests' login) may: its token is a valid one for this transaction.
    with transaction.atomic():
        run("SELECT set_config('app.context', app.sign_context(3, 4), true)")
        assert claims()[1:] == (3, 4)


def test_a_context_whose_lifetime_is_over_names_nobody():
    with transaction.atomic():
        run("SET LOCAL ROLE " + runtime_role())
        at = backend_of(connection.cursor())
        past = context_tokens.Claims(7, None, at.transaction_start_seconds - 1, at)
        run(
            "SELECT set_config('app.context', %s, true)",
            [context_tokens.sign(past, context_keys()[0])],
        )
        assert claims() == (runtime_role(), None, None)


def test_the_lifetime_comes_from_settings_or_the_caller(settings):
    settings.HZM_CONTEXT_LIFETIME = "2min"
    with tenant_context(5):
        token = fetchone("SELECT current_setting('app.context')")[0]
        start = fetchone("SELECT extract(epoch FROM now())::bigint")[0]
    assert int(token.split(".")[3]) - start in (119, 120)
    with tenant_context(5, lifetime="3h"):
        token = fetchone("SELECT current_setting('app.context')")[0]
        start = fetchone("SELECT extract(epoch FROM now())::bigint")[0]
    assert int(token.split(".")[3]) - start in (3 * 3600 - 1, 3 * 3600)
    assert duration_seconds("1h", "x") == 3600 and duration_seconds("1500ms", "x") == 1


def test_a_service_worker_enters_its_tenant_as_its_own_role():
    mine, theirs = NotificationFactory(), NotificationFactory()
    with service_context("comms", mine.tenant_id):
        assert claims() == (service_role("comms"), mine.tenant_id, None)
        ids = [i for (i,) in connection.cursor().execute("SELECT id FROM comms.notifications")]
    assert ids == [mine.pk] and theirs.pk not in ids


def test_a_service_context_refuses_another_role_inside_a_tenant_context():
    with tenant_context(5), pytest.raises(TenantContextError, match="refusing to switch"):
        with service_context("comms", 5):
            pass


def test_the_admins_audit_actor_is_signed_too():
    project = ProjectFactory()
    actor = UserFactory(tenant=project.tenant)
    with transaction.atomic():
        set_audit_actor(actor.pk)
        assert fetchone("SELECT app.current_user_id()") == (actor.pk,)
        project.name = "renamed by staff"
        project.save()
    entry = AuditLog.objects.filter(entity_id=str(project.pk), action="UPDATE").latest("id")
    assert entry.user_id == actor.pk


@pytest.mark.django_db(transaction=True)
def test_sign_context_on_a_plain_cursor_binds_the_token_to_its_transaction():
    with transaction.atomic(), connection.cursor() as cursor:
        token = sign_context(cursor, 8, 1)
        assert claims()[1:] == (8, 1)
    with transaction.atomic():
        run("SELECT set_config('app.context', %s, true)", [token])  # the next transaction
        assert claims()[1:] == (None, None)


# --- When the keys differ ----------------------------------------------------------------


def test_the_doctor_reports_keys_that_are_not_the_settings(rotated):
    rotated.HZM_CONTEXT_KEY = secrets.token_urlsafe(32)  # not installed
    problems = [str(f) for f in checks.diagnose() if f.where == "hzm_private.context_keys"]
    assert problems == [
        "ERROR: hzm_private.context_keys: the keys are not HZM_CONTEXT_KEY's: no tenant context "
        "is accepted until migrate runs with this environment (it installs them)"
    ]


def test_the_doctor_reports_a_role_that_may_read_the_keys():
    run(f"GRANT USAGE ON SCHEMA hzm_private TO {runtime_role()}")
    run(f"GRANT SELECT ON hzm_private.context_keys TO {runtime_role()}")
    problems = {str(f) for f in checks.diagnose() if "hzm_private" in f.where}
    assert problems == {
        f"ERROR: hzm_private.context_keys: {runtime_role()} may read or change the context keys",
        f"ERROR: schema hzm_private: grants USAGE to {runtime_role()}: the owner's alone",
        f"ERROR: table hzm_private.context_keys: grants SELECT to {runtime_role()}: "
        "the owner's alone",
    }


def test_health_says_when_the_database_does_not_accept_this_processs_tokens(rotated):
    assert health.check()[0] is True
    rotated.HZM_CONTEXT_KEY = secrets.token_urlsafe(32)
    healthy, body = health.check()
    assert not healthy
    assert body["problems"] == [
        "tenant path: the database did not accept the context's signed token: its keys are "
        "not this process's HZM_CONTEXT_KEY (run migrate with this environment)"
    ]


# --- The sign-in lookup ------------------------------------------------------------------------


def test_the_sign_in_lookup_gives_the_runtime_role_a_sealed_hash_only_the_application_opens():
    user = UserFactory(password="correct horse battery")
    stored = fetchone("SELECT password_hash FROM core.users WHERE id = %s", [user.pk])[0]
    with as_runtime_role():
        first = fetchone("SELECT password_hash FROM app.auth_login(%s)", [user.email])[0]
        second = fetchone("SELECT password_hash FROM app.auth_login(%s)", [user.email])[0]
        assert authenticate_credentials(user.email, "correct horse battery") == user
        assert authenticate_credentials(user.email, "wrong") is None
    assert first.startswith("s1.") and first != second  # a fresh IV each time
    assert stored not in first and stored.split("$")[-1] not in first
