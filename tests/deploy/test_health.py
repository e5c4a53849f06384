"""GET /healthz: 200 when the database answers and is fully migrated, 503 naming the problem."""

import tomllib

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection

import hzm
from hzm import health
from hzm.db.round_trips import traced
from hzm.deploy.connection import use_database


def test_the_version_is_the_projects():
    project = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())["project"]
    assert hzm.__version__ == project["version"]


@pytest.mark.django_db(transaction=True)
def test_healthy_without_signing_in(client):
    # As a request of the web process runs: BEGIN with the switch to the runtime role (and
    # the timeouts), the probe's tenant context with the read of the migrations, the read
    # through a policy, COMMIT. Nothing read back, nothing put back: the transaction ends.
    with traced(connection) as trace:
        response = client.get("/healthz")
    assert trace.round_trips == 4, trace.sent
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": hzm.__version__,
        "database": "ok",
        "migrations": "up to date",
    }
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthy_for_a_signed_in_tenant_user_too(client):
    """/healthz is exempt from the tenant context: the runtime role cannot read migrations."""
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json()["migrations"] == "up to date"


@pytest.mark.django_db
def test_unapplied_migrations_are_named(client, monkeypatch):
    future = {("core", "9999_add_the_future"), ("ops", "9998_more")}
    on_disk = health.migrations_on_disk() | future
    monkeypatch.setattr(health, "migrations_on_disk", lambda: on_disk)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "version": hzm.__version__,
        "problems": ["2 unapplied migration(s): core.9999_add_the_future, ops.9998_more"],
    }


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_is_named():
    nowhere = {**connection.settings_dict, "NAME": "hzm_health_no_such_database"}
    with use_database(DEFAULT_DB_ALIAS, nowhere):
        healthy, body = health.check()
    assert not healthy
    [problem] = body["problems"]
    assert problem.startswith("database unreachable: ")
    assert "hzm_health_no_such_database" in problem
