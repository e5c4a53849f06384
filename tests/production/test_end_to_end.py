"""End to end as production runs: gunicorn (the README's command) behind PgBouncer in
transaction mode, in front of the README's deployment, over HTTP on loopback.

The web process logs in as hzm_web, the admin's process as hzm_admin, both through the
same PgBouncer, whose small pool makes every server connection serve many clients in
turn: whatever one transaction left on a connection (role, context, timeouts, temporary
objects) would reach the next client's. Two tenants alternate over a few thousand
requests from several clients; no row, write or audit actor crosses between them.
"""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from core.models import ApiKey
from core.rbac import Role, UserRole
from generic_data.models import GenericData
from ops.models import AuditLog
from tests.factories import ProjectFactory
from tests.production.deployment import Deployment
from tests.production.servers import (
    HttpSession,
    gunicorn_server,
    production_environment,
)

PASSWORD = "correct horse battery staple"
CLIENTS = 4
REQUESTS_PER_CLIENT = 500  # each one transaction: 2,000 in all, half per tenant
FIELDS = [{"name": "title", "type": "text", "required": True}]


@pytest.fixture(scope="module")
def bouncer(deployment: Deployment) -> Iterator[Any]:
    with deployment.pgbouncer(("hzm_web", "hzm_admin", "hzm_owner"), pool_size=3) as address:
        yield address


def server_environment(bouncer: Any, deployment: Deployment, login: str, serve: str) -> dict:
    return production_environment(
        bouncer.url(deployment.login(login), deployment.dbname),
        HZM_SERVE=serve,
        # What PgBouncer in transaction mode needs (README, Serving in production).
        CONN_MAX_AGE="0",
        DISABLE_SERVER_SIDE_CURSORS="true",
    )


@pytest.fixture(scope="module")
def web(bouncer: Any, deployment: Deployment) -> Iterator[str]:
    with gunicorn_server(server_environment(bouncer, deployment, "hzm_web", "api")) as url:
        yield url


def make_tenant(deployment: Deployment, name: str) -> dict[str, Any]:
    with deployment.connected_as("hzm_owner"):
        project = ProjectFactory(user__password=PASSWORD, tenant__name=name)
        # A session user may do what its roles permit (the API asks app.has_permission).
        UserRole.objects.create(
            tenant=project.tenant,
            user=project.user,
            role=Role.objects.get(tenant=None, code="owner"),
        )
        # A few thousand requests in a minute: more than a key's default limit allows.
        _, key = ApiKey.objects.issue(
            tenant=project.tenant,
            user=project.user,
            name="e2e",
            project=project,
            rate_limit_per_minute=1_000_000,
            rate_limit_per_day=1_000_000,
        )
        return {
            "name": name,
            "tenant": project.tenant_id,
            "user": project.user_id,
            "email": str(project.user.email),
            "project": project.pk,
            "key": key,
        }


def bearer(tenant: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant['key']}"}


def define_table(client: HttpSession, tenant: dict[str, Any], headers: dict[str, str]) -> str:
    table = f"t_{uuid.uuid4().hex[:8]}"
    response = client.post(
        f"/api/v1/projects/{tenant['project']}/tables/",
        {"name": table, "fields": FIELDS},
        headers=headers,
    )
    assert response.status == 201, response.text
    return table


def test_an_api_key_and_a_session_define_tables_and_write_and_read_rows(web, deployment):
    tenant = make_tenant(deployment, "Keyed")
    client = HttpSession(web)
    rows_url = f"/api/v1/projects/{tenant['project']}/tables/{{}}/rows/"

    table = define_table(client, tenant, bearer(tenant))
    created = client.post(rows_url.format(table), {"data": {"title": "by key"}}, bearer(tenant))
    assert created.status == 201, created.text
    listed = client.get(rows_url.format(table), bearer(tenant))
    assert [row["data"] for row in listed.json()["rows"]] == [{"title": "by key"}]

    browser = HttpSession(web)
    assert browser.get("/api/v1/auth/csrf").status == 200
    signed_in = browser.post("/api/v1/auth/login", {"email": tenant["email"], "password": PASSWORD})
    assert signed_in.status == 200, signed_in.text
    table = define_table(browser, tenant, {})
    created = browser.post(rows_url.format(table), {"data": {"title": "by session"}})
    assert created.status == 201, created.text
    row = browser.get(f"{rows_url.format(table)}{created.json()['id']}/")
    assert row.json()["data"] == {"title": "by session"}
    assert browser.post("/api/v1/auth/logout").status == 204
    assert browser.get(rows_url.format(table)).status == 401


def test_two_tenants_alternating_through_pgbouncer_never_cross(web, deployment):
    tenants = [make_tenant(deployment, "Alpha"), make_tenant(deployment, "Beta")]
    setup = HttpSession(web)
    for tenant in tenants:
        tenant["table"] = define_table(setup, tenant, bearer(tenant))
    failures: list[str] = []

    def client(number: int) -> None:
        http = HttpSession(web, timeout=30)
        for i in range(REQUESTS_PER_CLIENT):
            tenant = tenants[(number + i) % 2]
            url = f"/api/v1/projects/{tenant['project']}/tables/{tenant['table']}/rows/"
            if i % 2 == 0:
                title = f"{tenant['name']}-{number}-{i}"
                response = http.post(url, {"data": {"title": title}}, bearer(tenant))
                expected = 201
            else:
                response = http.get(url + "?limit=20&sort=-id", bearer(tenant))
                expected = 200
            if response.status != expected:
                failures.append(f"{tenant['name']} {i}: HTTP {response.status} {response.text}")
                continue
            if expected == 200:
                titles = [row["data"]["title"] for row in response.json()["rows"]]
                foreign = [t for t in titles if not t.startswith(tenant["name"] + "-")]
                if foreign:
                    failures.append(f"{tenant['name']} read {foreign}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert failures == []

    writes = CLIENTS * REQUESTS_PER_CLIENT // 2
    with deployment.connected_as("hzm_owner"):
        for tenant in tenants:
            rows = GenericData.objects.filter(project_id=tenant["project"])
            titles = list(rows.values_list("data__title", flat=True))
            assert len(titles) == writes // 2
            assert all(title.startswith(tenant["name"] + "-") for title in titles)
            assert set(rows.values_list("tenant_id", flat=True)) == {tenant["tenant"]}
            audited = AuditLog.objects.filter(
                entity_type="app.generic_data",
                entity_id__in=[str(r) for r in rows.values_list("id", flat=True)],
            )
            assert audited.count() == writes // 2
            assert set(audited.values_list("tenant_id", "user_id")) == {
                (tenant["tenant"], tenant["user"])
            }


def test_no_role_context_timeout_or_temporary_object_outlives_a_transaction(
    web, bouncer, deployment
):
    tenant = make_tenant(deployment, "Gamma")
    client = HttpSession(web)
    table = define_table(client, tenant, bearer(tenant))
    for _ in range(50):
        url = f"/api/v1/projects/{tenant['project']}/tables/{table}/rows/"
        assert client.post(url, {"data": {"title": "x"}}, bearer(tenant)).status == 201
    # Every server connection the pool holds, each reached by a client of its own.
    seen = []
    connections = [
        psycopg.connect(
            bouncer.url(deployment.login("hzm_web"), deployment.dbname), autocommit=True
        )
        for _ in range(3)
    ]
    try:
        for conn in connections:
            conn.execute("BEGIN")
        for conn in connections:
            seen.append(
                conn.execute(
                    "SELECT pg_backend_pid(), current_user, session_user, "
                    "coalesce(current_setting('app.tenant_id', true), ''), "
                    "coalesce(current_setting('app.user_id', true), ''), "
                    # A timeout left by a SET (not SET LOCAL) would differ from its reset value.
                    "(SELECT array_agg(name ORDER BY name) FROM pg_settings "
                    " WHERE setting IS DISTINCT FROM reset_val AND name IN ('statement_timeout', "
                    " 'lock_timeout', 'idle_in_transaction_session_timeout', 'role')), "
                    "(SELECT count(*) FROM pg_class WHERE relpersistence = 't')"
                ).fetchone()
            )
        for conn in connections:
            conn.execute("COMMIT")
    finally:
        for conn in connections:
            conn.close()
    assert len({row[0] for row in seen}) == 3  # three distinct server connections
    web_login = deployment.login("hzm_web")
    for _pid, *state in seen:
        assert state == [web_login, web_login, "", "", None, 0]
