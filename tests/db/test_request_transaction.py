"""A request of the application is one transaction as the runtime role: a failure undoes it all."""

import pytest
from django.test import Client, override_settings

from tests.factories import ProjectFactory

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
