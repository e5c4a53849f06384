"""The README's production server, started as documented: collectstatic, then gunicorn on
loopback; the admin's CSS comes from WhiteNoise, /healthz from the database."""

import http.client
import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving import production

HOST = "hzm.example.com"  # the README's ALLOWED_HOSTS
STATIC_FILE = "/static/admin/css/base.css"
START_TIMEOUT = 60

pytestmark = pytest.mark.usefixtures("django_db_setup")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(
    port: int, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Host": HOST, **(headers or {})})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, django_db_setup: None) -> Iterator[int]:
    """gunicorn as the README starts it, after collectstatic into a fresh STATIC_ROOT."""
    folder = tmp_path_factory.mktemp("serving")
    port = free_port()
    environment = {
        "STATIC_ROOT": str(folder / "static"),
        "HZM_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
    }
    collected = production.run_in_production_environment(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], overrides=environment
    )
    assert collected.returncode == 0, collected.stderr
    assert (folder / "static" / "admin" / "css" / "base.css").is_file()

    log = folder / "gunicorn.log"
    with log.open("w") as output:
        process = production.run_in_production_environment(
            production.server_command(),
            overrides=environment,
            popen=True,
            stdout=output,
            stderr=output,
        )
    try:
        _wait_until_listening(process, port, log)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except Exception:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()


def _wait_until_listening(process, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            request(port, "/healthz")
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


def test_healthz_answers_over_plain_http(server: int) -> None:
    response = request(server, "/healthz")
    assert response.status == 200, response.body
    assert json.loads(response.body)["status"] == "ok"


def test_the_admins_css_is_served_over_https_from_the_proxy(server: int) -> None:
    response = request(server, STATIC_FILE, {"X-Forwarded-Proto": "https"})
    assert response.status == 200, response.body
    assert response.getheader("Content-Type").startswith("text/css")
    assert b"body" in response.body
    assert response.getheader("Strict-Transport-Security") == (
        "max-age=31536000; includeSubDomains; preload"
    )


def test_the_compressed_copy_goes_to_clients_that_take_gzip(server: int) -> None:
    response = request(
        server, STATIC_FILE, {"X-Forwarded-Proto": "https", "Accept-Encoding": "gzip"}
    )
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"


def test_plain_http_is_redirected_to_https(server: int) -> None:
    response = request(server, STATIC_FILE)
    assert response.status == 301
    assert response.getheader("Location") == f"https://{HOST}{STATIC_FILE}"


def test_an_unknown_api_path_answers_json(server: int) -> None:
    response = request(server, "/api/v1/nope/", {"X-Forwarded-Proto": "https"})
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.body)["error"]["code"] == "not_found"


def test_a_host_not_in_allowed_hosts_is_refused(server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    connection.request("GET", "/healthz", headers={"Host": "attacker.example"})
    assert connection.getresponse().status == 400
    connection.close()
