"""What the deployment tests share: a migrated template, scratch clones, a probe app.

- `deploy_template`: one database migrated once per session, with a runtime role of its
  own (roles belong to the cluster: <prefix>, and the service roles <prefix>_comms, ...);
  `databases.clone()` copies it in a fraction of a second (CREATE DATABASE ... TEMPLATE).
- `run(...)`: `manage.py` in a subprocess against a scratch database, as an operator
  would run it (tests/support.py's manage() with this session's role and backup folder).
- `probe`: a throwaway app `deployprobe` whose migrations a test writes itself, loaded
  through a settings module that adds it to INSTALLED_APPS; never in the repository.
"""

import os
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from psycopg import sql

from hzm.db import sql as hzm_sql
from tests import support

ROLE = f"hzm_app_dep_{uuid.uuid4().hex[:8]}"


def connect(dbname: str) -> psycopg.Connection:
    """A superuser connection (autocommit) to `dbname` on the test server."""
    return psycopg.connect(**support.server_params(dbname), autocommit=True)


def query(dbname: str, statement: str, params: Any = None) -> list[tuple]:
    with connect(dbname) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def create_database(name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with connect("postgres") as admin:
        admin.execute(statement)


def drop_database(name: str) -> None:
    with connect("postgres") as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def manage(*args: str, dbname: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    """support.manage() with this session's runtime role, and no MIGRATION_DATABASE_URL."""
    environment = {"HZM_APP_ROLE": ROLE, **(env or {})}
    with mock.patch.dict(os.environ, environment):
        if "MIGRATION_DATABASE_URL" not in environment:
            os.environ.pop("MIGRATION_DATABASE_URL", None)
        return support.manage(*args, dbname=dbname, check=check)


@pytest.fixture(scope="session")
def deploy_template() -> Iterator[str]:
    """A database with every migration applied, to clone (nobody connects to it after)."""
    name = f"hzm_dep_tpl_{uuid.uuid4().hex[:8]}"
    create_database(name)
    try:
        manage("migrate", "--no-input", dbname=name)
        yield name
    finally:
        drop_database(name)
        with connect("postgres") as admin:
            roles = admin.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [ROLE + "%"]
            ).fetchall()
            for (role,) in roles:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


class Databases:
    """Scratch databases of one test, dropped at its end."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.names: list[str] = []

    def _name(self) -> str:
        name = f"hzm_dep_{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        return name

    def clone(self) -> str:
        """A copy of the migrated template."""
        name = self._name()
        create_database(name, self.template)
        # CREATE DATABASE ... TEMPLATE copies no database-level privileges: take TEMPORARY
        # from PUBLIC as migrate did on the template (hzm 0005), or dbdoctor reports it.
        query(name, hzm_sql.revoke_database_temporary())
        return name

    def empty(self) -> str:
        name = self._name()
        create_database(name)
        return name

    def reserve(self) -> str:
        """A name a command will create (dropped at the end if it did)."""
        return self._name()

    def drop_all(self) -> None:
        for name in self.names:
            drop_database(name)


def create_role(name: str, attributes: str) -> None:
    with connect("postgres") as admin:
        admin.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name)))


def drop_role(name: str) -> None:
    with connect("postgres") as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def web_login(deploy_template: str) -> Iterator[str]:
    """The authenticator: LOGIN NOINHERIT, no privileges, granted only the runtime role."""
    login = f"hzm_test_web_{uuid.uuid4().hex[:8]}"
    create_role(login, "LOGIN NOINHERIT")
    try:
        with connect("postgres") as admin:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(ROLE), sql.Identifier(login))
            )
        yield login
    finally:
        drop_role(login)


@pytest.fixture
def databases(deploy_template: str) -> Iterator[Databases]:
    found = Databases(deploy_template)
    try:
        yield found
    finally:
        found.drop_all()


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def run(backup_dir: Path) -> Callable[..., Any]:
    """manage.py ARGS in a subprocess, with BACKUP_DIR in this test's temporary folder."""

    def run(*args: str, dbname: str, env: dict[str, str] | None = None, check: bool = True):
        return manage(
            *args, dbname=dbname, env={"BACKUP_DIR": str(backup_dir), **(env or {})}, check=check
        )

    return run


# --- The probe app -------------------------------------------------------------------------

PROBE_SETTINGS = """
from hzm.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "deployprobe"]  # noqa: F405
"""

CREATE_WIDGETS = """
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            "Widget",
            fields=[("id", models.AutoField(primary_key=True)), ("name", models.TextField())],
        ),
    ]
"""


class Probe:
    """The app `deployprobe` in a temporary folder, and the environment that loads it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.migrations = root / "deployprobe" / "migrations"
        self.migrations.mkdir(parents=True)
        for init in (root / "deployprobe" / "__init__.py", self.migrations / "__init__.py"):
            init.write_text("")
        (root / "deployprobe" / "models.py").write_text("")
        (root / "deployprobe_settings.py").write_text(PROBE_SETTINGS)
        self.add("0001_create_widgets", CREATE_WIDGETS)
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        self.env = {"PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": "deployprobe_settings"}

    def add(self, name: str, source: str) -> None:
        """Write migrations/<name>.py (dedented)."""
        (self.migrations / f"{name}.py").write_text(textwrap.dedent(source).lstrip())

    def remove(self, name: str) -> None:
        (self.migrations / f"{name}.py").unlink()


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    return Probe(tmp_path / "probe")


def migration(dependency: str, operations: str, *, atomic: bool = True, imports: str = "") -> str:
    """The source of a probe migration after `dependency` with `operations` (Python text)."""
    return (
        "from django.db import migrations, models\n"
        + imports
        + "\n\nclass Migration(migrations.Migration):\n"
        + ("    atomic = False\n" if not atomic else "")
        + f"    dependencies = [('deployprobe', '{dependency}')]\n"
        + f"    operations = [\n{textwrap.indent(textwrap.dedent(operations).strip(), ' ' * 8)}\n"
        + "    ]\n"
    )


def environment(dbname: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a manage.py subprocess on `dbname` (for Popen)."""
    found = {**os.environ, "DATABASE_URL": support.database_url(dbname), "HZM_APP_ROLE": ROLE}
    found.pop("MIGRATION_DATABASE_URL", None)
    return {**found, **(env or {})}


def url_as(dbname: str, user: str) -> str:
    """A DATABASE_URL for `dbname` on the test server, logging in as `user` (no password)."""
    url = support.database_url(dbname)
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}@{rest.split('@', 1)[1]}"
