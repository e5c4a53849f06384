"""A bad setting stops manage.py and gunicorn in one paragraph with its fix, exit status 2.

Each case starts the real program in a subprocess with one variable set wrong (the
environment wins over .env), as an operator would meet it.
"""

import os
import subprocess
import sys

import pytest

from hzm.configuration import EXIT_CONFIGURATION
from tests.support import REPO_ROOT

CASES = {
    # variable(s): what the message must say (the fix included)
    "HZM_ENCRYPTION_KEY=not-a-key": ("HZM_ENCRYPTION_KEY", "Fernet.generate_key()"),
    "HZM_ENCRYPTION_KEY=": ("HZM_ENCRYPTION_KEY is not set", "Fernet.generate_key()"),
    "HZM_CONTEXT_KEY=not-a-key": ("HZM_CONTEXT_KEY: key 1 of 1", "secrets.token_urlsafe(32)"),
    "HZM_CONTEXT_KEY=": ("HZM_CONTEXT_KEY is not set", "secrets.token_urlsafe(32)"),
    "HZM_CONTEXT_LIFETIME=soon": ("HZM_CONTEXT_LIFETIME", "e.g. 30s"),
    "DEBUG=false SECRET_KEY=": ("SECRET_KEY is not set", "secrets.token_urlsafe(50)"),
    "HZM_SERVE=everything": ("HZM_SERVE='everything'", "use api"),
    "HZM_STATEMENT_TIMEOUT=soon": ("HZM_STATEMENT_TIMEOUT", "e.g. 30s"),
    "SECURE_PROXY_SSL_HEADER=https": ("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https"),
    "CONN_MAX_AGE=forever": ("CONN_MAX_AGE='forever' is not a whole number", ".env"),
    "HZM_MIGRATION_LOCK_TIMEOUT=soon": ("HZM_MIGRATION_LOCK_TIMEOUT='soon' is not a number", ""),
}


def environment(assignments: str) -> dict[str, str]:
    env = dict(os.environ)
    for assignment in assignments.split():
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


def run(args: list[str], assignments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=environment(assignments),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def assert_one_paragraph(result: subprocess.CompletedProcess, program: str, says: tuple) -> None:
    assert result.returncode == EXIT_CONFIGURATION, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"{program}: configuration error: ")
    assert all(part in errors[0] for part in says), errors[0]


@pytest.mark.parametrize("assignments", CASES)
def test_manage_py_prints_the_error_and_its_fix_and_exits_2(assignments: str):
    result = run([sys.executable, "manage.py", "check"], assignments)
    assert_one_paragraph(result, "manage.py", CASES[assignments])


def test_traceback_shows_the_traceback():
    result = run([sys.executable, "manage.py", "check", "--traceback"], "HZM_SERVE=everything")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ImproperlyConfigured" in result.stderr


@pytest.mark.parametrize("assignments", ["HZM_ENCRYPTION_KEY=not-a-key", "HZM_SERVE=everything"])
def test_gunicorn_stops_before_its_workers_start(assignments: str):
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    result = run(
        [gunicorn, "--config", "python:hzm.gunicorn", "--bind", "127.0.0.1:0", "hzm.wsgi"],
        assignments,
    )
    assert_one_paragraph(result, "gunicorn", CASES[assignments])
    assert "Booting worker" not in result.stderr
