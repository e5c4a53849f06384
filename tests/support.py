"""Helpers shared by tests that need a database of their own or a manage.py subprocess."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

REPO_ROOT = Path(__file__).resolve().parent.parent

# Keys of DATABASES["OPTIONS"] that Django consumes itself; libpq would reject them.
DJANGO_ONLY_OPTIONS = frozenset({"assume_role", "isolation_level", "pool", "server_side_binding"})


def server_params(dbname: str) -> dict[str, Any]:
    """libpq parameters for `dbname` on the test database's server, as its user."""
    settings = connection.settings_dict
    params = {
        key: value for key, value in settings["OPTIONS"].items() if key not in DJANGO_ONLY_OPTIONS
    }
    # As Django does: a non-empty USER/HOST/... setting wins over the same key in OPTIONS.
    for key, setting in (
        ("user", "USER"),
        ("password", "PASSWORD"),
        ("host", "HOST"),
        ("port", "PORT"),
    ):
        if settings[setting]:
            params[key] = settings[setting]
    params["dbname"] = dbname
    return params


def database_url(dbname: str) -> str:
    """A DATABASE_URL for `dbname` on the test database's server (socket hosts included)."""
    params = server_params(dbname)
    userinfo = quote(params.get("user", ""), safe="")
    if params.get("password"):
        userinfo += ":" + quote(str(params["password"]), safe="")
    host = str(params.get("host", ""))
    port = str(params.get("port", "") or "")
    if host.startswith("/"):
        query = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
        return f"postgresql://{userinfo}@/{quote(dbname, safe='')}{query}"
    hostport = host + (f":{port}" if port else "")
    return f"postgresql://{userinfo}@{hostport}/{quote(dbname, safe='')}"


def manage(*args: str, dbname: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python manage.py ARGS` against database `dbname`, as a user would."""
    env = {**os.environ, "DATABASE_URL": database_url(dbname)}
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


# Every platform table with a tenant_id column, as the models declare them: the attacker
# tests (tests/security) and the doctor's (tests/db/test_checks.py) must cover exactly these.
TENANT_TABLES = [
    "app.generic_data",
    "billing.subscriptions",
    "cfg.feature_flag_overrides",
    "cfg.translations",
    "comms.email_queue",
    "comms.notifications",
    "comms.webhook_deliveries",
    "comms.webhooks",
    "core.api_keys",
    "core.files",
    "core.image_variants",
    "core.organization_members",
    "core.organizations",
    "core.projects",
    "core.role_permissions",
    "core.roles",
    "core.table_metadata",
    "core.user_2fa",
    "core.user_roles",
    "core.user_sessions",
    "core.users",
    "ops.audit_logs",
]


# --- SQL on Django's connection, and refusals -------------------------------------------


def run(query: str, params: list[Any] | tuple | None = None) -> int:
    """Execute one statement on Django's connection; return the row count it reports."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.rowcount


def fetchone(query: str, params: list[Any] | tuple | None = None) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()


def fetchall(query: str, params: list[Any] | tuple | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def refused(action: Callable[[], Any]) -> psycopg.Error:
    """Run `action` in a savepoint: the database must refuse it. Return psycopg's error."""
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        action()
    cause = info.value.__cause__
    assert isinstance(cause, psycopg.Error), f"expected a psycopg error, got {cause!r}"
    return cause


def sql_refused(query: str, params: list[Any] | tuple | None = None) -> psycopg.Error:
    return refused(lambda: run(query, params))
