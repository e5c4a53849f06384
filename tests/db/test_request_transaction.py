"""A request of the application is one transaction as the runtime role: a failure undoes it all."""

import psycopg
import pytest
from django.db import connection
from django.test import Client, override_settings

from tests.factories import ProjectFactory
from tests.support import server_params

PASSWORD = "correct horse battery staple"


@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF="tests.db.request_urls")
def test_a_request_that_fails_in_sql_answers_500_json_and_writes_nothing():
    project = ProjectFactory(user__password=PASSWORD)
    client = Client(raise_request_exception=False)
    assert client.login(email=str(project.user.email), password=PASSWORD)

    response = client.get(f"/api/test/write-then-fail?project={project.pk}")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    project.refresh_from_db()
    assert project.name != "written"
    # The connection serves the next request.
    assert client.get("/api/v1/auth/session").status_code == 200


@pytest.mark.django_db
def test_a_user_agent_with_a_nul_byte_is_recorded_without_it():
    project = ProjectFactory(user__password=PASSWORD)
    client = Client(raise_request_exception=False)
    assert client.login(email=str(project.user.email), password=PASSWORD)
    response = client.get("/api/v1/auth/session", headers={"User-Agent": "evil\x00agent"})
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
def test_a_database_restart_answers_503_json_and_the_next_request_reconnects():
    project = ProjectFactory(user__password=PASSWORD)
    client = Client(raise_request_exception=False)
    assert client.login(email=str(project.user.email), password=PASSWORD)
    assert client.get("/api/v1/auth/session").status_code == 200
    # What a server restart does to every open connection: the backend goes away.
    pid = connection.connection.info.backend_pid
    with psycopg.connect(
        **server_params(connection.settings_dict["NAME"]), autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    response = client.get("/api/v1/auth/session")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "database_unavailable"
    assert client.get("/api/v1/auth/session").status_code == 200
