"""The application as the web process runs it: logged in as the README's authenticator.

Every request here goes through Django's test client on a connection that logs in as
`hzm_web` (NOINHERIT, owns nothing, granted only the runtime role) to a database that
the README's own SQL, migrate and loaddata set up (tests/production/deployment.py).
Rows are made beforehand as the owner, which the README's operator would be.
"""

import json
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test import Client, override_settings

from core.models import ApiKey, Tenant, User
from core.rbac import Role, UserRole
from hzm.db.context import tenant_context
from hzm.db.operations import runtime_role
from tests import support
from tests.factories import ProjectFactory
from tests.production.deployment import REPO_ROOT, Deployment, superuser

pytestmark = pytest.mark.usefixtures("deployment")

PASSWORD = "correct horse battery staple"
WEB = override_settings(HZM_SERVE="api", DEBUG=False)
FIELDS = [{"name": "title", "type": "text", "required": True}]


def tenant_with_key(deployment: Deployment) -> dict[str, Any]:
    """As the owner: a tenant, its user (with a password), a project and an API key."""
    with deployment.connected_as("hzm_owner"):
        project = ProjectFactory(user__password=PASSWORD)
        # A session user may do what its roles permit (the API asks app.has_permission).
        UserRole.objects.create(
            tenant=project.tenant,
            user=project.user,
            role=Role.objects.get(tenant=None, code="owner"),
        )
        _, key = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, name="ci", project=project
        )
        return {
            "tenant": project.tenant_id,
            "user": project.user_id,
            "email": str(project.user.email),
            "project": project.pk,
            "key": key,
        }


def body(response: Any) -> Any:
    return json.loads(response.content) if response.content else None


def define_and_write(client: Client, project: int, headers: dict[str, str]) -> dict[str, Any]:
    """Define a table, write a row, read it back: what a tenant's first call does."""
    table = f"notes_{uuid.uuid4().hex[:6]}"
    base = f"/api/v1/projects/{project}/tables/"
    created = client.post(
        base, {"name": table, "fields": FIELDS}, content_type="application/json", headers=headers
    )
    assert created.status_code == 201, created.content
    row = client.post(
        f"{base}{table}/rows/",
        {"data": {"title": "first"}},
        content_type="application/json",
        headers=headers,
    )
    assert row.status_code == 201, row.content
    row_id = body(row)["id"]
    read = client.get(f"{base}{table}/rows/{row_id}/", headers=headers)
    assert read.status_code == 200, read.content
    assert body(read)["data"] == {"title": "first"}
    return {"table": table, "row": row_id}


@WEB
def test_health_answers_through_the_web_login(deployment):
    with deployment.connected_as("hzm_web"):
        response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    assert body(response)["status"] == "ok"


@WEB
def test_an_api_key_defines_a_table_and_writes_and_reads_a_row(deployment):
    tenant = tenant_with_key(deployment)
    with deployment.connected_as("hzm_web"):
        client = Client()
        define_and_write(client, tenant["project"], {"Authorization": f"Bearer {tenant['key']}"})
        assert client.get("/healthz").status_code == 200


@WEB
def test_a_tenant_user_signs_in_works_and_signs_out(deployment):
    tenant = tenant_with_key(deployment)
    with deployment.connected_as("hzm_web"):
        client = Client(enforce_csrf_checks=True)
        token = body(client.get("/api/v1/auth/csrf"))["csrf_token"]
        signed_in = client.post(
            "/api/v1/auth/login",
            {"email": tenant["email"].upper(), "password": PASSWORD},
            content_type="application/json",
            headers={"X-CSRFToken": token},
        )
        assert signed_in.status_code == 200, signed_in.content
        assert body(signed_in)["user"]["tenant_id"] == tenant["tenant"]
        # login() rotates the CSRF token.
        headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
        define_and_write(client, tenant["project"], headers)
        # A sessionid cookie on /healthz is not looked up (it answered 500 as the web login).
        assert client.get("/healthz").status_code == 200
        assert body(client.get("/api/v1/auth/session"))["user"]["id"] == tenant["user"]

        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
        assert client.get("/api/v1/auth/session").status_code == 401
        listing = client.get(f"/api/v1/projects/{tenant['project']}/tables/")
        assert listing.status_code == 401


@WEB
def test_sign_in_needs_the_csrf_token_and_the_right_password(deployment):
    tenant = tenant_with_key(deployment)
    with deployment.connected_as("hzm_web"):
        client = Client(enforce_csrf_checks=True)
        credentials = {"email": tenant["email"], "password": PASSWORD}
        no_token = client.post("/api/v1/auth/login", credentials, content_type="application/json")
        assert no_token.status_code == 403
        assert body(no_token)["error"]["code"] == "csrf_failed"
        token = body(client.get("/api/v1/auth/csrf"))["csrf_token"]
        wrong = client.post(
            "/api/v1/auth/login",
            {**credentials, "password": "wrong"},
            content_type="application/json",
            headers={"X-CSRFToken": token},
        )
        assert wrong.status_code == 401
        assert body(wrong)["error"]["code"] == "invalid_credentials"
        unknown = client.post(
            "/api/v1/auth/login",
            {"email": "nobody@example.com", "password": PASSWORD},
            content_type="application/json",
            headers={"X-CSRFToken": token},
        )
        assert unknown.status_code == 401


def signed_in_client(deployment: Deployment, tenant: dict[str, Any]) -> Client:
    client = Client()
    response = client.post(
        "/api/v1/auth/login",
        {"email": tenant["email"], "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return client


@WEB
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda t: User.objects.filter(pk=t["user"]).update(is_active=False),
            id="user-deactivated",
        ),
        pytest.param(lambda t: User.objects.filter(pk=t["user"]).delete(), id="user-deleted"),
        pytest.param(
            lambda t: Tenant.objects.filter(pk=t["tenant"]).update(is_active=False),
            id="tenant-suspended",
        ),
        pytest.param(lambda t: Tenant.objects.filter(pk=t["tenant"]).delete(), id="tenant-deleted"),
    ],
)
def test_a_session_ends_when_its_user_or_tenant_may_no_longer_sign_in(deployment, change):
    tenant = tenant_with_key(deployment)
    with deployment.connected_as("hzm_web"):
        client = signed_in_client(deployment, tenant)
        assert client.get("/api/v1/auth/session").status_code == 200
    with deployment.connected_as("hzm_owner"):
        change(tenant)
    with deployment.connected_as("hzm_web"):
        assert client.get("/api/v1/auth/session").status_code == 401
        tables = client.get(f"/api/v1/projects/{tenant['project']}/tables/")
        assert tables.status_code == 401


@WEB
def test_platform_staff_do_not_sign_in_to_the_api(deployment):
    with deployment.connected_as("hzm_owner"):
        staff = User.objects.create_superuser(f"staff-{uuid.uuid4().hex[:6]}@hzm.local", PASSWORD)
    with deployment.connected_as("hzm_web"):
        response = Client().post(
            "/api/v1/auth/login",
            {"email": str(staff.email), "password": PASSWORD},
            content_type="application/json",
        )
    assert response.status_code == 403
    assert "admin" in body(response)["error"]["message"]


@WEB
def test_the_web_process_serves_no_admin(deployment):
    with deployment.connected_as("hzm_web"):
        response = Client().get("/admin/login/")
    assert response.status_code == 404


@WEB
def test_health_answers_503_when_the_runtime_role_cannot_be_entered(deployment):
    login = f"hzm_web_nogrant_{uuid.uuid4().hex[:6]}"
    with superuser() as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN NOINHERIT")
    try:
        with deployment.connected_as(login):
            response = Client().get("/healthz")
        assert response.status_code == 503
        problems = body(response)["problems"]
        assert any("tenant path" in problem for problem in problems), problems
    finally:
        with superuser() as admin:
            admin.execute(f"DROP ROLE {login}")


def test_other_sessions_query_text_shows_no_parameter_values(deployment):
    """After RESET ROLE the authenticator sees its other sessions' queries: no values in them."""
    secret = f"secret-{uuid.uuid4().hex}"
    with deployment.connected_as("hzm_web"):
        with transaction.atomic(), tenant_context(1), connection.cursor() as cursor:
            # The statement stays the session's last one while it is idle in transaction.
            cursor.execute("SELECT count(*) FROM core.users WHERE email = %s", [secret])
            web_login = deployment.login("hzm_web")
            params = {**support.server_params(deployment.dbname), "user": web_login}
            with psycopg.connect(**params, autocommit=True) as attacker:
                attacker.execute("RESET ROLE")
                seen = attacker.execute(
                    "SELECT query FROM pg_stat_activity WHERE usename = %s "
                    "AND pid <> pg_backend_pid()",
                    [web_login],
                ).fetchall()
    queries = [query for (query,) in seen]
    assert any("core.users WHERE email = $1" in query for query in queries), queries
    assert not any(secret in query for query in queries), queries
    assert runtime_role() not in " ".join(queries)  # the role travels as a parameter too


def test_deploy_checks_health_through_the_web_login(deployment, tmp_path):
    """deploy runs as the owner (MIGRATION_DATABASE_URL); its health step is the web's."""
    done = deployment.manage("deploy", "--skip-backup", BACKUP_DIR=str(tmp_path))
    assert "status:" in done.stdout and "ok" in done.stdout, done.stdout
    login = f"hzm_web_nogrant_{uuid.uuid4().hex[:6]}"
    with superuser() as admin:
        admin.execute(f"CREATE ROLE {login} LOGIN NOINHERIT")
    try:
        failed = subprocess.run(
            [sys.executable, "manage.py", "deploy", "--skip-backup"],
            cwd=REPO_ROOT,
            env=deployment.environment(
                DATABASE_URL=deployment.url(login), BACKUP_DIR=str(tmp_path)
            ),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        with superuser() as admin:
            admin.execute(f"DROP ROLE {login}")
    assert failed.returncode != 0
    assert "step 5/5 (health check)" in failed.stderr, failed.stderr
    assert "tenant path" in failed.stderr
