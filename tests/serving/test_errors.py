"""The 404 and 500 handlers: JSON in the API's error shape under /api/, HTML elsewhere."""

import json

import pytest
from django.conf import settings
from django.test import Client, override_settings

from hzm import errors, urls

# Handlers only answer with DEBUG off; plain HTTP must not be redirected to HTTPS here.
serving = override_settings(DEBUG=False, SECURE_SSL_REDIRECT=False)
failing_views = override_settings(ROOT_URLCONF="tests.serving.error_urls")
# Requests may touch the database before any view (sessions, the runtime role).
pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return json.loads(response.content)["error"]


def test_the_project_urlconf_installs_the_handlers() -> None:
    assert urls.handler404 is errors.not_found
    assert urls.handler500 is errors.server_error


@serving
def test_an_unknown_api_path_answers_json_404(client: Client) -> None:
    response = client.get("/api/v1/nope/")
    assert response.status_code == 404
    assert error_of(response) == {
        "code": "not_found",
        "message": "there is no API endpoint at /api/v1/nope/",
    }


@serving
def test_an_unknown_path_elsewhere_answers_djangos_html_404(client: Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Not Found" in response.content


@serving
@failing_views
@pytest.mark.parametrize(
    "path", ["/api/v1/fail/database/", "/api/v1/fail/connection/", "/api/v1/fail/wrapped/"]
)
def test_a_lost_database_connection_answers_json_503_with_retry_after(
    client: Client, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == str(errors.RETRY_AFTER_SECONDS)
    error = error_of(response)
    assert error["code"] == "database_unavailable"
    assert "retry in" in error["message"]


@serving
@failing_views
def test_any_other_exception_answers_json_500(client: Client) -> None:
    response = client.get("/api/v1/fail/bug/")
    assert response.status_code == 500
    assert not response.has_header("Retry-After")
    assert error_of(response) == {
        "code": "server_error",
        "message": "the server failed to answer this request",
    }
    # Nothing of the exception reaches the client.
    assert b"a bug" not in response.content


@serving
@failing_views
@pytest.mark.parametrize("path", ["/fail/database/", "/fail/bug/"])
def test_exceptions_elsewhere_answer_djangos_html_500(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"Server Error (500)" in response.content


@serving
@failing_views
@pytest.mark.parametrize(
    ("path", "status"), [("/api/v1/fail/database/", 503), ("/api/v1/fail/bug/", 500)]
)
def test_the_first_failure_of_a_request_decides(client: Client, path: str, status: int) -> None:
    cleanup = "tests.serving.error_urls.FailingCleanupMiddleware"
    with override_settings(MIDDLEWARE=[cleanup, *settings.MIDDLEWARE]):
        response = client.get(path)
    assert response.status_code == status
