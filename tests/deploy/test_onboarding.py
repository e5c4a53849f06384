"""The onboarding commands as an operator runs them: subprocesses, the production logins.

DATABASE_URL logs in as an authenticator like the README's hzm_web; the commands connect
with MIGRATION_DATABASE_URL (the owner). With DATABASE_URL alone each refuses, naming
the setting (tests/deploy/test_owner_commands.py, OWNER_COMMANDS). Here: the whole
onboarding with the owner's URL, what goes to stdout and stderr, bad input as one line
without a traceback, and an owner that row level security binds.
"""

import datetime
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from psycopg import sql

from core.models import ApiKey, Tenant, User
from hzm.deploy.connection import use_database
from tests import support
from tests.deploy.conftest import ROLE, connect, create_role, drop_role, query, url_as
from tests.deploy.test_owner_commands import (  # noqa: F401  (owned: a fixture)
    manage_as,
    owned,
    refused,
)
from tests.production.servers import HttpSession, gunicorn_server, production_environment

COMMANDS = (
    "create_tenant",
    "create_tenant_user",
    "create_project",
    "issue_api_key",
    "revoke_api_key",
)


@pytest.fixture
def onboard(web_login, databases):
    """manage.py as the operator: DATABASE_URL the authenticator, MIGRATION_DATABASE_URL the
    owner (a superuser here), on a migrated database with the reference data."""
    database = databases.clone()
    owner = {"MIGRATION_DATABASE_URL": support.database_url(database)}
    loaded = manage_as(
        web_login, "loaddata", "001_default_languages", "002_default_currencies",
        dbname=database, env=owner,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr

    def command(*args: str) -> subprocess.CompletedProcess:
        return manage_as(web_login, *args, dbname=database, env=owner)

    command.database = database  # type: ignore[attr-defined]
    return command


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_tenant_its_user_project_and_key_as_an_operator_makes_them(onboard):
    database = onboard.database
    tenant = ok(onboard("create_tenant", "Acme Corp", "--slug", "acme")).strip()
    user = ok(onboard("create_tenant_user", "--tenant", "acme", "--email", "ada@acme.test"))
    project = ok(onboard("create_project", "--tenant", "acme", "--owner", "ada@acme.test", "Shop"))
    issued = onboard("issue_api_key", "--project", project.strip(), "--name", "first key")
    key = ok(issued)
    # stdout holds only what a script captures; what the commands say is on stderr.
    assert tenant.isdigit() and user.strip().isdigit() and project.strip().isdigit()
    assert key.endswith("\n") and key.count("\n") == 1 and key.startswith("hzm_")
    assert "It is shown this once." in issued.stderr and key.strip() not in issued.stderr
    prefix = key[:16]
    rows = query(
        database,
        "SELECT k.tenant_id, k.project_id, u.email::text, k.scopes, k.key_hash <> %s "
        "FROM core.api_keys k JOIN core.users u ON u.id = k.user_id WHERE k.key_prefix = %s",
        [key.strip(), prefix],
    )
    assert rows == [(int(tenant), int(project), "ada@acme.test", ["read", "write", "define"], True)]
    # Every write is in the audit trail, with the command as its user agent.
    audited = query(
        database,
        "SELECT entity_type, split_part(user_agent, ' (', 1) FROM ops.audit_logs "
        "WHERE tenant_id = %s AND action = 'INSERT' ORDER BY id",
        [int(tenant)],
    )
    assert audited == [
        ("core.tenants", "manage.py create_tenant"),
        ("core.users", "manage.py create_tenant_user"),
        ("core.projects", "manage.py create_project"),
        ("core.api_keys", "manage.py issue_api_key"),
    ]
    revoked = ok(onboard("revoke_api_key", prefix, "--reason", "a test"))
    assert f"Revoked API key 'first key' ({prefix})" in revoked
    assert query(
        database, "SELECT revoke_reason FROM core.api_keys WHERE key_prefix = %s", [prefix]
    ) == [("a test",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create_tenant", "Acme", "--slug", "No Slug"], "--slug 'No Slug': use lower-case"),
        (["create_tenant_user", "--tenant", "nobody", "--email", "a@b.test"], "no such tenant"),
        (["issue_api_key", "--project", "424242", "--name", "k"], "no such project"),
        (["create_tenant", "Acme", "--default-currency", "XXX"], "not in cfg.currencies"),
        (["revoke_api_key", "hzm_0123456789ab", "--reason", "x"], "no such API key"),
    ],
)
def test_bad_input_is_one_line_without_a_traceback(onboard, args, message):
    assert message in refused(onboard(*args))


@pytest.mark.parametrize("name", COMMANDS)
def test_help_explains_every_argument(onboard, name):
    shown = ok(onboard(name, "--help"))
    assert "examples:" in shown and "MIGRATION_DATABASE_URL" in shown


def test_an_owner_that_row_level_security_binds_is_told_so(web_login, owned):  # noqa: F811
    database, owner = owned
    query(database, sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(owner)))
    env = {"MIGRATION_DATABASE_URL": url_as(database, owner)}
    message = refused(manage_as(web_login, "create_tenant", "Acme", dbname=database, env=env))
    assert "create_tenant needs a role that bypasses row level security" in message
    assert f"ALTER ROLE {owner} BYPASSRLS;" in message


def test_rate_limits_hold_across_server_processes(onboard, web_login):
    """gunicorn with 3 worker processes, 6 clients at once: exactly the limit gets through."""
    database = onboard.database
    ok(onboard("create_tenant", "Acme Corp", "--slug", "acme"))
    ok(onboard("create_tenant_user", "--tenant", "acme", "--email", "ada@acme.test"))
    project = ok(onboard("create_project", "--tenant", "acme", "--owner", "ada@acme.test", "Shop"))
    limit = 25
    key = ok(
        onboard(
            "issue_api_key", "--project", project.strip(), "--name", "limited",
            "--rate-limit-per-minute", "none", "--rate-limit-per-day", str(limit),
        )
    ).strip()  # fmt: skip
    # The day's window: stay clear of UTC midnight, when it starts again.
    now = datetime.datetime.now(datetime.UTC)
    midnight = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0)
    if (midnight - now).total_seconds() < 120:
        time.sleep((midnight - now).total_seconds() + 1)
    env = production_environment(url_as(database, web_login), HZM_APP_ROLE=ROLE)
    path = f"/api/v1/projects/{project.strip()}/tables/"
    with gunicorn_server(env, workers=3) as base_url:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        HttpSession(base_url)
                        .get(path, headers={"Authorization": f"Bearer {key}"})
                        .status
                    ),
                    range(60),
                )
            )
    assert sorted(set(statuses)) == [200, 429], statuses
    assert statuses.count(200) == limit
    assert query(
        database,
        "SELECT requests, day_count, errors FROM core.api_key_usage u "
        "JOIN core.api_keys k ON k.id = u.api_key_id WHERE k.key_prefix = %s",
        [key[:16]],
    ) == [(60, limit, 60 - limit)]


# --- The admin's pages under the admin's own login ------------------------------------------


@pytest.fixture
def admin_login(deploy_template: str) -> Iterator[str]:
    """A login like the README's hzm_admin: the admin role (exactly its grants), BYPASSRLS."""
    login = f"hzm_test_adm_{uuid.uuid4().hex[:8]}"
    create_role(login, "LOGIN BYPASSRLS")
    try:
        with connect("postgres") as admin:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(f"{ROLE}_admin"), sql.Identifier(login)
                )
            )
        yield login
    finally:
        drop_role(login)


@contextmanager
def connected_as(database: str, login: str, blocker: Any) -> Iterator[None]:
    """Django's connection logs in to `database` as `login` for the block."""
    params = support.server_params(database)
    target = {
        "NAME": database,
        "USER": login,
        "PASSWORD": "",
        "HOST": str(params.get("host", "")),
        "PORT": str(params.get("port", "") or ""),
        "OPTIONS": {},
    }
    with blocker.unblock(), use_database("default", target):
        connection.ensure_connection()
        yield


@override_settings(HZM_SERVE="admin", DEBUG=False)
def test_the_onboarding_pages_write_through_the_admin_s_own_grants(
    onboard, admin_login, django_db_blocker
):
    database = onboard.database
    ok(onboard("create_tenant", "Acme Corp", "--slug", "acme"))
    ok(onboard("create_tenant_user", "--tenant", "acme", "--email", "ada@acme.test"))
    project = int(
        ok(onboard("create_project", "--tenant", "acme", "--owner", "ada@acme.test", "A"))
    )
    staff = {"DJANGO_SUPERUSER_EMAIL": "ops@hzm.test", "DJANGO_SUPERUSER_PASSWORD": "x" * 16}
    ok(manage_as(admin_login, "createsuperuser", "--no-input", dbname=database, env={
        "MIGRATION_DATABASE_URL": support.database_url(database), **staff}))  # fmt: skip
    with connected_as(database, admin_login, django_db_blocker):
        client = Client()
        client.force_login(User.objects.get(email="ops@hzm.test"))
        tenant = Tenant.objects.get(slug="acme")
        ada = User.objects.get(email="ada@acme.test")
        added = client.post(
            reverse("admin:core_user_add"),
            {"tenant": tenant.pk, "email": "bo@acme.test", "role": "user", "timezone": "UTC",
             "is_active": "on", "new_password": "a long password"},
        )  # fmt: skip
        assert added.status_code == 302, added.content.decode()[:3000]
        shop = client.post(
            reverse("admin:core_project_add"),
            {"tenant": tenant.pk, "user": ada.pk, "name": "Shop", "is_active": "on"},
        )
        assert shop.status_code == 302, shop.content.decode()[:3000]
        issued = client.post(
            reverse("admin:core_apikey_add"),
            {"user": ada.pk, "project": project, "name": "admin key", "scopes": "read",
             "rate_limit_per_minute": "60", "rate_limit_per_day": "",
             "expires_at_0": "", "expires_at_1": ""},
        )  # fmt: skip
        assert issued.status_code == 200 and "admin key" in issued.content.decode()
        api_key = ApiKey.objects.get(name="admin key")
        assert client.get(reverse("admin:core_apikey_changelist")).status_code == 200
        revoke = reverse("admin:core_apikey_revoke", args=[api_key.pk])
        assert client.post(revoke, {"confirm": "yes", "reason": "test"}).status_code == 302
        gone = client.post(reverse("admin:core_project_delete", args=[project]), {"post": "yes"})
        assert gone.status_code == 302
        user_page = reverse("admin:core_user_delete", args=[ada.pk])
        assert client.get(user_page).status_code == 200
    staff_id = query(database, "SELECT id FROM core.users WHERE email = 'ops@hzm.test'")[0][0]
    assert query(
        database,
        "SELECT revoke_reason, revoked_by FROM core.api_keys WHERE name = 'admin key'",
    ) == [("test", staff_id)]
    assert query(database, "SELECT is_deleted FROM core.projects WHERE id = %s", [project]) == [
        (True,)
    ]
    audited = query(
        database,
        "SELECT entity_type, action FROM ops.audit_logs WHERE user_id = %s "
        "AND NOT (entity_type = 'core.users' AND entity_id = %s::text) ORDER BY id",
        [staff_id, staff_id],
    )
    assert audited == [
        ("core.users", "INSERT"),
        ("core.projects", "INSERT"),
        ("core.api_keys", "INSERT"),
        ("core.api_keys", "UPDATE"),  # revoked
        ("core.projects", "UPDATE"),  # deleted: marked so by the trigger
    ]
