"""A database set up exactly as the README's production section says, and connections to it.

The README's own SQL blocks (`-- production: ...`) run as the superuser, `migrate` and
`loaddata` run as commands with the README's DATABASE_URL and MIGRATION_DATABASE_URL,
and the tests then connect as the logins the README creates:

- `hzm_owner`: owns everything, runs migrate and the owner's commands;
- `hzm_web`: the web process's authenticator (NOINHERIT, granted only the runtime role);
- `hzm_admin`: the platform admin's process (the admin role, BYPASSRLS);
- `hzm_watchdog`: `manage.py watchdog` (sees and ends backends, reads no table).

Only names and passwords are substituted in the README's text: the database's, the
runtime role's (settings.HZM_APP_ROLE) and the logins', which get a suffix of this test
database's own, since roles belong to the cluster and two test runs (two checkouts, two
developers) may share one. The fixture drops them before and after, and the database.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import sql

from hzm.db.operations import runtime_role
from hzm.deploy.connection import use_database
from tests import support
from tests.production.servers import BouncerAddress, pgbouncer

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
LOGINS = ("hzm_web", "hzm_admin", "hzm_owner", "hzm_watchdog")
# The embedded cluster trusts its private socket; PgBouncer in the tests trusts loopback.
# Passwords are set anyway, as the README says, so the SQL runs unchanged.
PASSWORD = "not-a-secret"
REFERENCE_FIXTURES = (
    "001_default_languages",
    "002_default_currencies",
    "003_platform_admin",
    "004_default_rbac",
    "005_default_plans",
)


def readme_sql(marker: str) -> str:
    """The README's ```sql block whose first line is `-- production: <marker>`."""
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if b.startswith(f"-- production: {marker}")]
    assert len(found) == 1, f"README.md: no single ```sql block '-- production: {marker}'"
    return found[0]


def login_name(readme_name: str, dbname: str) -> str:
    """The login the README calls `readme_name` (hzm_web, ...) in this test database's run."""
    return f"{readme_name}_{hashlib.sha256(dbname.encode()).hexdigest()[:8]}"


def as_deployed(text: str, dbname: str) -> str:
    """The README's SQL for this test's database, logins, passwords and runtime role."""
    text = text.replace("'...'", "'" + PASSWORD + "'")
    text = re.sub(r"\bDATABASE hzm\b", f'DATABASE "{dbname}"', text)
    for readme_name in LOGINS:
        text = re.sub(rf"\b{readme_name}\b", login_name(readme_name, dbname), text)
    return re.sub(r"\bhzm_app\b", runtime_role(), text)


def superuser(dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(**support.server_params(dbname), autocommit=True)


def run_statements(text: str, dbname: str = "postgres") -> None:
    """Each statement of a README block, one by one (CREATE DATABASE needs its own)."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    statements = [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
    with superuser(dbname) as admin:
        for statement in statements:
            admin.execute(statement)


def drop_everything(dbname: str) -> None:
    with superuser() as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        for readme_name in LOGINS:
            login = login_name(readme_name, dbname)
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


@dataclass
class Deployment:
    """The production database of the tests, and how to reach it as each login."""

    dbname: str
    blocker: Any

    def login(self, readme_name: str) -> str:
        """The real name of the README's login `readme_name` (others are taken as they are)."""
        if readme_name in LOGINS:
            return login_name(readme_name, self.dbname)
        return readme_name

    def settings(self, login: str) -> dict[str, Any]:
        params = support.server_params(self.dbname)
        return {
            "NAME": self.dbname,
            "USER": self.login(login),
            "PASSWORD": PASSWORD,
            "HOST": params.get("host", ""),
            "PORT": str(params.get("port", "") or ""),
            "OPTIONS": {"server_side_binding": True},
        }

    def url(self, login: str) -> str:
        params = support.server_params(self.dbname)
        host, port = str(params.get("host", "")), str(params.get("port", "") or "")
        userinfo = f"{self.login(login)}:{quote(PASSWORD, safe='')}"
        if host.startswith("/"):
            query = f"?host={quote(host, safe='/')}" + (f"&port={port}" if port else "")
            return f"postgresql://{userinfo}@/{self.dbname}{query}"
        return f"postgresql://{userinfo}@{host}{':' + port if port else ''}/{self.dbname}"

    def environment(self, **overrides: str) -> dict[str, str]:
        """The README's production environment of a manage.py command (no DEBUG)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "DATABASE_URL", "MIGRATION_DATABASE_URL"))
        }
        env.update(
            DATABASE_URL=self.url("hzm_web"),
            MIGRATION_DATABASE_URL=self.url("hzm_owner"),
            HZM_APP_ROLE=runtime_role(),
            HZM_ENCRYPTION_KEY=settings.HZM_ENCRYPTION_KEY,
            HZM_CONTEXT_KEY=settings.HZM_CONTEXT_KEY,
        )
        env.update(overrides)
        return env

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`python manage.py ARGS` as the README's operator runs it; fails the test on error."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
        return result

    @contextmanager
    def pgbouncer(self, logins: tuple[str, ...], pool_size: int) -> Iterator[BouncerAddress]:
        """PgBouncer in transaction mode in front of this database, for the README's `logins`."""
        params = support.server_params(self.dbname)
        with pgbouncer(
            str(params["host"]),
            int(params.get("port") or 5432),
            self.dbname,
            [self.login(name) for name in logins],
            pool_mode="transaction",
            pool_size=pool_size,
        ) as address:
            yield address

    @contextmanager
    def connected_as(self, login: str) -> Iterator[None]:
        """Django's default connection logs in as `login` to this database for the block."""
        with self.blocker.unblock(), use_database("default", self.settings(login)):
            connection.ensure_connection()
            yield


@pytest.fixture(scope="session")
def deployment(django_db_blocker: Any) -> Iterator[Deployment]:
    """The README's production set-up, on a database of its own, for the whole session."""
    with django_db_blocker.unblock():
        dbname = f"{connection.creation._get_test_db_name()}_production"[:63]
    drop_everything(dbname)
    found = Deployment(dbname, django_db_blocker)
    try:
        run_statements(as_deployed(readme_sql("once per cluster"), dbname))
        found.manage("migrate", "--no-input")
        run_statements(as_deployed(readme_sql("after the first migrate"), dbname), dbname)
        found.manage("loaddata", *REFERENCE_FIXTURES)
        yield found
    finally:
        drop_everything(dbname)
