"""The production processes, run by end-to-end tests: PgBouncer, gunicorn and an HTTP client.

Each server is a context manager that starts the real program on 127.0.0.1 (a free port,
never another address), waits until it answers, yields its address and stops it on exit,
also when the body raised (whose exception then carries the server's output as a note).
A program that is missing or does not start raises ServerError with its log: the tests
fail, they never skip. Logs live in a temporary directory that lasts as long as the
server's context.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import json as jsonlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# How much of a server's log an error message or exception note shows (its end).
LOG_TAIL_CHARS = 6000
PGBOUNCER_FALLBACK = Path("/usr/sbin/pgbouncer")  # Debian's; not on a non-root user's PATH.
PGBOUNCER_INSTALL_HINT = (
    "PgBouncer is not installed (no pgbouncer on PATH or in /usr/sbin): the end-to-end "
    "tests need it. Install it (Debian/Ubuntu: `sudo apt-get install pgbouncer`); "
    ".ci/run installs it on CI."
)
# Database and user names go unquoted into pgbouncer.ini's [databases] keys and dbname=.
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# What a gunicorn child inherits from our environment besides the caller's `env`: enough
# to run Python, nothing that configures the application (DATABASE_URL, DEBUG, PG*, ...).
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class ServerError(RuntimeError):
    """A test server that is missing or did not start; the message holds its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def production_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """A production web process's environment on loopback: DEBUG off, this checkout's keys."""
    from django.conf import settings

    return {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        # A fresh key: nothing signed by the test process should be accepted by the server.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": LOOPBACK,
        # The same key as the test process, so that secrets the tests store decrypt there.
        "HZM_ENCRYPTION_KEY": settings.HZM_ENCRYPTION_KEY,
        "HZM_CONTEXT_KEY": settings.HZM_CONTEXT_KEY,
        "HZM_APP_ROLE": settings.HZM_APP_ROLE,
        # Plain HTTP on loopback, no TLS proxy in front: no redirect to https, and cookies
        # that a client sends back over http.
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        **overrides,
    }


# --- Processes ---------------------------------------------------------------------------


def _log_tail(log_file: Path) -> str:
    """The end of a server's log, for error messages."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    if not text.strip():
        return "(the log is empty)"
    return text if len(text) <= LOG_TAIL_CHARS else "...\n" + text[-LOG_TAIL_CHARS:]


def _wait_until_ready(
    ready: Callable[[], bool],
    process: subprocess.Popen,
    what: str,
    log_file: Path,
    timeout: float,
) -> None:
    """Poll `ready` until it is true; raise with the log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerError(
                f"{what} exited with code {process.returncode} before it answered. "
                f"Its output:\n{_log_tail(log_file)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"{what} did not answer within {timeout:g} s. Its output:\n{_log_tail(log_file)}"
            )
        time.sleep(0.05)


def _stop(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process; after `timeout` seconds SIGKILL its process group."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        # Not reaped yet, so the group (its own session: gunicorn's workers too) is still ours.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


@contextmanager
def _running(
    command: list[str],
    *,
    what: str,
    log_file: Path,
    ready: Callable[[], bool],
    startup_timeout: float,
    **popen: Any,
) -> Iterator[None]:
    """Run `command` with its output in `log_file` until the body is done; see the module doc."""
    with log_file.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Its own process group: no terminal signals, one kill.
            **popen,
        )
    try:
        _wait_until_ready(ready, process, what, log_file, startup_timeout)
        try:
            yield
        except Exception as exc:
            exc.add_note(f"Output of {what}:\n{_log_tail(log_file)}")
            raise
    finally:
        _stop(process)


def _accepts_tcp(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- PgBouncer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BouncerAddress:
    """Where a test PgBouncer listens, and its log."""

    host: str
    port: int
    log_file: Path

    def url(self, user: str, dbname: str) -> str:
        """The libpq URL of `dbname` through this PgBouncer, as `user` (no password)."""
        userinfo, path = quote(user, safe=""), quote(dbname, safe="")
        return f"postgresql://{userinfo}@{self.host}:{self.port}/{path}"

    def output(self) -> str:
        """The end of PgBouncer's log so far."""
        return _log_tail(self.log_file)


def _pgbouncer_program() -> str:
    """The pgbouncer executable, or ServerError saying how to install it."""
    program = shutil.which("pgbouncer")
    if program is None and os.access(PGBOUNCER_FALLBACK, os.X_OK):
        program = str(PGBOUNCER_FALLBACK)
    if program is None:
        raise ServerError(PGBOUNCER_INSTALL_HINT)
    return program


def _bouncer_account(upstream_host: str) -> pwd.struct_passwd | None:
    """The OS user PgBouncer runs as: ourselves, or under root (which it refuses) another."""
    if os.geteuid() != 0:
        return None
    # The owner of a socket directory can reach its socket even when the directory is
    # private (the embedded cluster's is, mode 700, owned by the server's OS user).
    if upstream_host.startswith("/"):
        try:
            owner = os.stat(upstream_host).st_uid
            if owner != 0:
                return pwd.getpwuid(owner)
        except (OSError, KeyError):
            pass
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError(
            "PgBouncer refuses to run as root and there is no OS user 'postgres' to run it "
            "as: create one (it comes with Debian's postgresql package) or run the tests as "
            "an ordinary user."
        ) from None


def _conninfo_value(value: str) -> str:
    """Quote a value for a [databases] connection string of pgbouncer.ini."""
    if "\n" in value or "\0" in value:
        raise ServerError(f"{value!r} cannot be written to pgbouncer.ini")
    return "'" + value.replace("'", "''") + "'"


README = REPO_ROOT / "README.md"


def readme_pgbouncer_settings() -> list[str]:
    """The README's pgbouncer.ini lines for production (Serving in production)."""
    block = re.search(
        r"```ini\n; pgbouncer\.ini, \[pgbouncer\].*?\n(.*?)```", README.read_text(), re.S
    )
    if block is None:
        raise ServerError("README.md: no ```ini block '; pgbouncer.ini, [pgbouncer] ...'")
    return [line for line in block[1].splitlines() if line.strip()]


def pgbouncer_ini(
    *,
    port: int,
    auth_file: Path,
    upstream_host: str,
    upstream_port: int,
    dbname: str,
    pool_mode: str,
    pool_size: int,
    max_client_conn: int,
    overrides: dict[str, str] | None = None,
) -> str:
    """The text of a pgbouncer.ini for one test PgBouncer.

    In transaction mode with the README's production lines, as they are written there;
    `overrides` come last, and PgBouncer takes a setting's last value (bench/pooler.py
    measures the README's reset against none).
    """
    pooling = (
        "\n".join(readme_pgbouncer_settings())
        if pool_mode == "transaction"
        else f"pool_mode = {pool_mode}"
    )
    return f"""\
; Written by tests/production/servers.py for one test run.
[databases]
{dbname} = host={_conninfo_value(upstream_host)} port={upstream_port} dbname={dbname}

[pgbouncer]
listen_addr = {LOOPBACK}
listen_port = {port}
; No Unix socket: 127.0.0.1 is the only way in.
unix_socket_dir =
; trust: a client is taken at its word (its user must be in auth_file). Acceptable only
; because this PgBouncer listens on loopback and lives for one test.
auth_type = trust
auth_file = {auth_file}
{pooling}
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = {max_client_conn}
; Startup parameters psycopg or Django may send, which PgBouncer does not track.
ignore_startup_parameters = extra_float_digits,options
""" + "".join(f"{name} = {value}\n" for name, value in (overrides or {}).items())


@contextmanager
def pgbouncer(
    upstream_host: str,
    upstream_port: int,
    dbname: str,
    users: list[str],
    pool_mode: str = "transaction",
    pool_size: int = 5,
    *,
    max_client_conn: int = 100,
    startup_timeout: float = STARTUP_TIMEOUT,
    overrides: dict[str, str] | None = None,
) -> Iterator[BouncerAddress]:
    """Run PgBouncer on 127.0.0.1 in front of `dbname` on the upstream server, for `users`."""
    program = _pgbouncer_program()
    if not users:
        raise ServerError("pgbouncer(): give at least one user that may connect")
    for name in (dbname, *users):
        if not _PLAIN_NAME.match(name):
            raise ServerError(f"pgbouncer(): {name!r} is not a plain name (letters, digits, _)")
    account = _bouncer_account(upstream_host)
    with tempfile.TemporaryDirectory(prefix="hzm-pgbouncer-") as tmp:
        directory = Path(tmp)
        port = free_port()
        auth_file = directory / "userlist.txt"
        auth_file.write_text("".join(f'"{user}" ""\n' for user in users))
        config = directory / "pgbouncer.ini"
        config.write_text(
            pgbouncer_ini(
                port=port,
                auth_file=auth_file,
                upstream_host=upstream_host,
                upstream_port=upstream_port,
                dbname=dbname,
                pool_mode=pool_mode,
                pool_size=pool_size,
                max_client_conn=max_client_conn,
                overrides=overrides,
            )
        )
        as_account: dict[str, Any] = {}
        if account is not None:
            for path in (directory, auth_file, config):
                os.chown(path, account.pw_uid, account.pw_gid)
            as_account = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": os.getgrouplist(account.pw_name, account.pw_gid),
            }
        log_file = directory / "pgbouncer.log"
        with _running(
            [program, str(config)],
            what=f"PgBouncer on {LOOPBACK}:{port}",
            log_file=log_file,
            ready=lambda: _accepts_tcp(port),
            startup_timeout=startup_timeout,
            cwd=directory,
            **as_account,
        ):
            yield BouncerAddress(LOOPBACK, port, log_file)


# --- gunicorn ----------------------------------------------------------------------------


class ServerUrl(str):
    """The base URL of a running test server (a str), with the server's output."""

    log_file: Path

    def __new__(cls, url: str, log_file: Path) -> ServerUrl:
        self = super().__new__(cls, url)
        self.log_file = log_file
        return self

    def output(self) -> str:
        """The end of the server's output so far."""
        return _log_tail(self.log_file)


def _gunicorn_settings() -> list[str]:
    """The project's gunicorn configuration, as production starts it."""
    if (REPO_ROOT / "hzm" / "gunicorn.py").is_file():
        return ["--config", "python:hzm.gunicorn"]
    # A checkout without the config module: gunicorn's defaults plus logs on our output.
    return ["--access-logfile", "-", "--error-logfile", "-"]


def _answers_http(url: str) -> bool:
    """True if `url` gives any HTTP response, error statuses included."""
    try:
        with _opener().open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, http.client.HTTPException):
        return False


@contextmanager
def gunicorn_server(
    env: Mapping[str, str],
    *,
    workers: int = 2,
    extra_args: Sequence[str] = (),
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[ServerUrl]:
    """Serve hzm.wsgi with gunicorn on 127.0.0.1 with `env` (see production_environment())."""
    with tempfile.TemporaryDirectory(prefix="hzm-gunicorn-") as tmp:
        directory = Path(tmp)
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            *_gunicorn_settings(),
            # The command line wins over the config module: our port, on loopback only.
            "--bind",
            f"{LOOPBACK}:{port}",
            "--workers",
            str(workers),
            # Its default socket, ~/.gunicorn/gunicorn.ctl, would be shared by every server.
            "--no-control-socket",
            *extra_args,
            "hzm.wsgi",
        ]
        child_env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        child_env["PYTHONUNBUFFERED"] = "1"
        child_env.update(env)
        log_file = directory / "gunicorn.log"
        with _running(
            command,
            what=f"gunicorn on {base_url}",
            log_file=log_file,
            ready=lambda: _answers_http(f"{base_url}/healthz"),
            startup_timeout=startup_timeout,
            cwd=REPO_ROOT,
            env=child_env,
        ):
            yield ServerUrl(base_url, log_file)


# --- HTTP client -------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to the caller, as Django's test client does."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    """A urllib opener that never goes through a proxy (http_proxy must not see loopback)."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)


@dataclass(frozen=True)
class Response:
    """An HTTP response as the client received it."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError showing the status and body when it is not."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            raise ValueError(
                f"expected a JSON body, got HTTP {self.status} "
                f"({self.headers.get('Content-Type')}): {self.text[:1000]!r}"
            ) from None


class HttpSession:
    """A browser-like client of one server: cookies, Django's CSRF token, no redirects."""

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, csrf_cookie: str = "csrftoken"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.csrf_cookie = csrf_cookie
        self.cookies = http.cookiejar.CookieJar()
        self._opener = _opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects())

    def cookie(self, name: str) -> str | None:
        """The value of the cookie `name` the server set, if any."""
        return next((cookie.value for cookie in self.cookies if cookie.name == name), None)

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request; any status (4xx, 5xx, 3xx) comes back as a Response."""
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with /")
        method = method.upper()
        sent: dict[str, str] = {}
        data = None
        if json is not None:
            data = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if method not in _SAFE_METHODS:
            # What a browser sends with a form or fetch(): Django checks Origin, and the
            # token of the csrftoken cookie in X-CSRFToken.
            sent["Origin"] = self.base_url
            sent["Referer"] = f"{self.base_url}/"
            token = self.cookie(self.csrf_cookie)
            if token:
                sent["X-CSRFToken"] = token
        sent.update(headers or {})
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=sent, method=method
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return Response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read())

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(
        self, path: str, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return self.request("POST", path, json=json, headers=headers)

    def patch(
        self, path: str, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return self.request("PATCH", path, json=json, headers=headers)

    def delete(
        self, path: str, json: Any = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        return self.request("DELETE", path, json=json, headers=headers)
