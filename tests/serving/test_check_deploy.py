"""`check --deploy` is clean in the README's production environment, and only there."""

import sys

import pytest

from tests.serving import production

CHECK_DEPLOY = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]

pytestmark = pytest.mark.usefixtures("django_db_setup")


def output(result) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_the_readme_has_one_production_environment_block() -> None:
    block = production.environment_block()
    assert "export DEBUG=false\n" in block
    assert production.server_command() == [
        "gunicorn",
        "--config",
        "python:hzm.gunicorn",
        "hzm.wsgi",
    ]


def test_check_deploy_is_clean_in_the_documented_environment() -> None:
    result = production.run_in_production_environment(CHECK_DEPLOY)
    assert result.returncode == 0, output(result)
    assert "System check identified no issues (0 silenced)." in result.stdout, output(result)
    assert "WARNING" not in result.stderr, output(result)


def test_check_deploy_warns_with_debug_on() -> None:
    result = production.run_in_production_environment(CHECK_DEPLOY, overrides={"DEBUG": "true"})
    assert result.returncode != 0, output(result)
    assert "security.W018" in result.stderr, output(result)  # DEBUG


@pytest.mark.parametrize(
    ("name", "value", "warning"),
    [
        ("SECURE_SSL_REDIRECT", "false", "security.W008"),
        ("SECURE_HSTS_SECONDS", "0", "security.W004"),
        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "false", "security.W005"),
        ("SECURE_HSTS_PRELOAD", "false", "security.W021"),
        ("SESSION_COOKIE_SECURE", "false", "security.W012"),
        ("CSRF_COOKIE_SECURE", "false", "security.W016"),
    ],
)
def test_each_security_setting_comes_from_the_environment(
    name: str, value: str, warning: str
) -> None:
    result = production.run_in_production_environment(CHECK_DEPLOY, overrides={name: value})
    assert result.returncode != 0, output(result)
    assert warning in result.stderr, output(result)


def test_a_malformed_proxy_ssl_header_stops_the_start_naming_the_variable() -> None:
    result = production.run_in_production_environment(
        [sys.executable, "manage.py", "check"],
        overrides={"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
    )
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be '<request.META name>,<value>'" in result.stderr


def test_the_proxy_ssl_header_is_read_from_the_environment() -> None:
    result = production.run_in_production_environment(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)",
        ],
        overrides={"SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"},
    )
    assert result.returncode == 0, output(result)
    assert result.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_PROTO', 'https')"
