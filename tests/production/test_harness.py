"""The end-to-end harness itself: PgBouncer pools transactions, gunicorn serves, the client."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from tests import support
from tests.production import servers
from tests.production.servers import (
    LOOPBACK,
    HttpSession,
    ServerError,
    gunicorn_server,
    pgbouncer,
    production_environment,
)


@pytest.fixture
def database(db: None) -> dict[str, Any]:
    """The migrated test database (`db` has it created): its name, the superuser's libpq params."""
    params = support.server_params(connection.settings_dict["NAME"])
    return {**params, "host": str(params.get("host", "")), "port": int(params.get("port") or 5432)}


@pytest.fixture
def bouncer(database: dict[str, Any]) -> Iterator[Any]:
    """PgBouncer in transaction mode with ONE server connection, in front of the test database."""
    with pgbouncer(
        database["host"], database["port"], database["dbname"], [database["user"]], pool_size=1
    ) as address:
        yield address


def test_pgbouncer_serves_two_clients_over_one_server_connection(bouncer, database) -> None:
    url = bouncer.url(database["user"], database["dbname"])
    assert url == f"postgresql://{database['user']}@{LOOPBACK}:{bouncer.port}/{database['dbname']}"
    # connect_timeout: in session mode the second client would wait for the only connection.
    with (
        psycopg.connect(url, autocommit=True, connect_timeout=5) as first,
        psycopg.connect(url, autocommit=True, connect_timeout=5) as second,
    ):
        default = first.execute("SHOW statement_timeout").fetchone()[0]
        assert default != "1s"
        backends = []
        for client in (first, second, first, second):
            with client.transaction():
                client.execute("SET LOCAL statement_timeout = '1s'")
                backends.append(client.execute("SELECT pg_backend_pid()").fetchone()[0])
            # The setting ended with its transaction; the next client's finds none.
            assert client.execute("SHOW statement_timeout").fetchone()[0] == default
    # Transaction pooling: both clients, connected at once, ran on the same backend.
    assert len(set(backends)) == 1, (backends, bouncer.output())


def test_pgbouncer_stops_and_shows_its_log_when_the_body_raises(database) -> None:
    with (
        pytest.raises(RuntimeError) as raised,
        pgbouncer(
            database["host"], database["port"], database["dbname"], [database["user"]]
        ) as address,
    ):
        raise RuntimeError("the test failed")
    assert not servers._accepts_tcp(address.port)
    assert any("process up: PgBouncer" in note for note in raised.value.__notes__)


def test_pgbouncer_startup_failure_raises_with_its_log() -> None:
    with (
        pytest.raises(ServerError, match="(?s)exited with code.*pool_mode"),
        pgbouncer("/nonexistent", 5432, "db", ["someone"], pool_mode="bogus"),
    ):
        pass


def test_pgbouncer_missing_is_an_error_not_a_skip(monkeypatch) -> None:
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    monkeypatch.setattr(servers, "PGBOUNCER_FALLBACK", Path("/nonexistent/pgbouncer"))
    with (
        pytest.raises(ServerError, match="apt-get install pgbouncer"),
        pgbouncer("/nonexistent", 5432, "db", ["someone"]),
    ):
        pass


def assert_healthy(database_url: str) -> None:
    """gunicorn, as production runs it on `database_url`, answers /healthz with 200 JSON."""
    with gunicorn_server(production_environment(database_url)) as base_url:
        client = HttpSession(base_url)
        response = client.get("/healthz")
        assert response.status == 200, (response.text, base_url.output())
        assert response.headers.get_content_type() == "application/json"
        assert response.json()["status"] == "ok"
        # An error status is returned, not raised.
        assert client.get("/no-such-page/").status == 404


def test_gunicorn_serves_healthz_from_the_test_database(database) -> None:
    assert_healthy(support.database_url(database["dbname"]))


def test_gunicorn_serves_healthz_through_pgbouncer(bouncer, database) -> None:
    assert_healthy(bouncer.url(database["user"], database["dbname"]))


def test_gunicorn_startup_failure_raises_with_its_output(database) -> None:
    environment = production_environment(support.database_url(database["dbname"]))
    with (
        pytest.raises(ServerError, match="(?s)exited with code.*unrecognized arguments"),
        gunicorn_server(environment, extra_args=["--no-such-option"]),
    ):
        pass


class Recorder(BaseHTTPRequestHandler):
    """Sets a csrftoken cookie on GET, redirects on /away, records every request's headers."""

    requests: list[dict[str, Any]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.requests.append(
            {"method": self.command, "headers": self.headers, "body": self.rfile.read(length)}
        )
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
        elif self.command == "GET":
            self.send_response(200)
            self.send_header("Set-Cookie", "csrftoken=t0ken; Path=/; SameSite=Lax")
        else:
            self.send_response(403)
        body = json.dumps({"path": self.path}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server that records what HttpSession sends."""
    Recorder.requests = []
    server = ThreadingHTTPServer((LOOPBACK, 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", Recorder.requests
    finally:
        server.shutdown()
        server.server_close()


def test_http_session_keeps_cookies_and_sends_the_csrf_token(recorder) -> None:
    base_url, seen = recorder
    client = HttpSession(base_url)
    assert client.post("/before").status == 403  # Returned, not raised.
    assert "X-CSRFToken" not in seen[-1]["headers"]

    assert client.get("/form").json() == {"path": "/form"}
    assert client.cookie("csrftoken") == "t0ken"
    assert "Origin" not in seen[-1]["headers"]

    response = client.patch("/thing", json={"name": "x"})
    assert response.status == 403
    headers = seen[-1]["headers"]
    assert seen[-1]["method"] == "PATCH"
    assert headers["X-CSRFToken"] == "t0ken"
    assert headers["Cookie"] == "csrftoken=t0ken"
    assert headers["Origin"] == base_url
    assert headers["Referer"] == f"{base_url}/"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(seen[-1]["body"]) == {"name": "x"}

    away = client.get("/away")
    assert (away.status, away.headers["Location"]) == (302, "/elsewhere")
    assert seen[-1]["method"] == "GET" and len(seen) == 4  # The redirect was not followed.
