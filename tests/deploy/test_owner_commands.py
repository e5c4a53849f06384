"""The owner's commands under the README's production set-up, run as an operator would.

DATABASE_URL logs in as an authenticator like the README's hzm_web: LOGIN NOINHERIT, owning
nothing, granted only the runtime role (the deployment tests' databases have their own,
conftest.ROLE, which is runtime_role() in their manage.py runs). With that URL alone every
command that needs the owner refuses at once, naming MIGRATION_DATABASE_URL and the
privilege, without a traceback; with MIGRATION_DATABASE_URL set to the owner's, they work.
"""

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.management.commands import changepassword, createsuperuser
from django.core.management import get_commands, load_command_class
from django.core.management.commands import loaddata
from psycopg import sql

from hzm.deploy.connection import MigrationConnectionCommand
from tests import support
from tests.deploy.conftest import (
    create_role,
    drop_database,
    drop_role,
    environment,
    query,
    url_as,
)

# Each command, with arguments it would run with; a refusal must come before they matter.
OWNER_COMMANDS = {
    "loaddata": ["001_default_languages"],
    "createsuperuser": ["--no-input"],
    "changepassword": ["admin@hzm.local"],
    "dbdoctor": [],
    "backup": [],
    "restore": ["missing.dump", "--target-db", "hzm_never_created"],
    "rollback": ["--to-backup", "latest"],
    "deploy": [],
    "prune_audit_logs": ["--older-than-days", "30"],
    "prune_system_logs": ["--older-than-months", "3"],
    # Onboarding (core/management/commands; tests/deploy/test_onboarding.py).
    "create_tenant": ["Acme Corp"],
    "create_tenant_user": ["--tenant", "acme", "--email", "ada@acme.test"],
    "create_project": ["--tenant", "acme", "--owner", "ada@acme.test", "Shop"],
    "issue_api_key": ["--project", "1", "--name", "first key"],
    "revoke_api_key": ["hzm_0123456789ab", "--reason", "leaked"],
    # The tenants' sign-in lock-outs (core/sign_in_throttle.py).
    "sign_in_lockouts": [],
    "sign_in_unlock": ["ada@example.com"],
}
SUPERUSER = {"DJANGO_SUPERUSER_EMAIL": "ops@example.com", "DJANGO_SUPERUSER_PASSWORD": "x" * 16}


@pytest.fixture
def owned(databases) -> Iterator[tuple[str, str]]:
    """(database, role): a clone whose migration table a LOGIN BYPASSRLS role owns.

    To require_owner() the role is the owner; it owns nothing else, and may not create
    databases (NOCREATEDB).
    """
    role = f"hzm_test_owner_{uuid.uuid4().hex[:8]}"
    database = databases.clone()
    create_role(role, "LOGIN BYPASSRLS NOCREATEDB")
    try:
        query(
            database,
            sql.SQL("ALTER TABLE django_migrations OWNER TO {}").format(sql.Identifier(role)),
        )
        yield database, role
    finally:
        drop_database(database)  # what the role owns goes with it
        drop_role(role)


def manage_as(
    login: str, *args: str, dbname: str, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """manage.py ARGS with DATABASE_URL logging in as `login` (and no MIGRATION_DATABASE_URL
    unless `env` gives one)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=support.REPO_ROOT,
        env=environment(dbname, {"DATABASE_URL": url_as(dbname, login), **env}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def refused(result: subprocess.CompletedProcess) -> str:
    """The one-paragraph refusal of a command that failed without a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("CommandError: "), result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


# --- Which command runs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", OWNER_COMMANDS)
def test_the_owner_commands_connect_with_migration_database_url(name):
    command = load_command_class(get_commands()[name], name)
    assert isinstance(command, MigrationConnectionCommand)


@pytest.mark.parametrize(
    ("name", "django_command"),
    [
        ("loaddata", loaddata.Command),
        ("createsuperuser", createsuperuser.Command),
        ("changepassword", changepassword.Command),
    ],
)
def test_djangos_commands_are_overridden_by_the_hzm_app(name, django_command):
    # django.contrib.auth comes after `hzm` in INSTALLED_APPS: the earlier app wins.
    assert get_commands()[name] == "hzm"
    assert isinstance(load_command_class("hzm", name), django_command)


# --- As the authenticator -------------------------------------------------------------------


@pytest.mark.parametrize("name", OWNER_COMMANDS)
def test_as_the_authenticator_each_refuses_naming_the_url(name, web_login, databases, backup_dir):
    database = databases.clone()
    env = {"BACKUP_DIR": str(backup_dir), **SUPERUSER}
    result = manage_as(web_login, name, *OWNER_COMMANDS[name], dbname=database, env=env)
    message = refused(result)
    assert f"{name} needs the database owner" in message
    assert "set MIGRATION_DATABASE_URL to the owner's URL (postgresql://" in message
    assert f"DATABASE_URL logs in as {web_login}, which does not own the platform's" in message
    assert not backup_dir.exists()  # backup, deploy: nothing written


def test_with_the_owners_url_they_work(web_login, databases):
    database = databases.clone()
    query(database, "DELETE FROM cfg.languages")
    env = {"MIGRATION_DATABASE_URL": support.database_url(database), **SUPERUSER}

    def ok(*args: str, **extra: str) -> str:
        result = manage_as(web_login, *args, dbname=database, env={**env, **extra})
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "Installed 4 object(s)" in ok("loaddata", "001_default_languages")
    assert query(database, "SELECT code FROM cfg.languages ORDER BY code") == [
        ("de",),
        ("en",),
        ("fr",),
        ("tr",),
    ]
    ok("loaddata", "002_default_currencies")
    ok("createsuperuser", "--no-input")
    assert query(database, "SELECT role FROM core.users WHERE email = 'ops@example.com'") == [
        ("platform_admin",)
    ]
    # In production (DEBUG off) dbdoctor runs as the owner but judges DATABASE_URL's login,
    # which here is no superuser and owns nothing: no warning, even with --strict.
    out = ok("dbdoctor", "--strict", DEBUG="false", SECRET_KEY="x" * 50)
    assert "dbdoctor: the database matches the code (0 warnings)" in out
    ok("prune_system_logs", "--older-than-months", "3", "--dry-run")


# --- As an owner that lacks something ---------------------------------------------------------


def test_a_privilege_refused_later_is_a_message_too(web_login, owned):
    database, owner = owned  # owns django_migrations, not the cfg schema
    env = {"MIGRATION_DATABASE_URL": url_as(database, owner)}
    message = refused(
        manage_as(web_login, "loaddata", "001_default_languages", dbname=database, env=env)
    )
    assert "loaddata was refused a privilege by PostgreSQL (" in message
    assert "permission denied for schema cfg" in message
    assert f"MIGRATION_DATABASE_URL logs in as {owner}: run it as the database owner" in message


def test_an_owner_without_bypassrls_is_told_so(web_login, owned):
    database, owner = owned
    query(database, sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(owner)))
    env = {"MIGRATION_DATABASE_URL": url_as(database, owner)}
    result = manage_as(web_login, "changepassword", "admin@hzm.local", dbname=database, env=env)
    message = refused(result)
    assert "changepassword needs a role that bypasses row level security" in message
    assert f"ALTER ROLE {owner} BYPASSRLS;" in message


def test_restore_create_without_createdb_says_what_to_do(
    run, web_login, owned, backup_dir, databases
):
    database, owner = owned
    run("backup", dbname=database)  # as the superuser
    [dump] = backup_dir.glob("*.dump")
    target = databases.reserve()
    env = {"MIGRATION_DATABASE_URL": url_as(database, owner)}
    result = manage_as(
        web_login, "restore", str(dump), "--target-db", target, "--create", dbname=database, env=env
    )
    message = refused(result)
    assert f"restore --create needs CREATEDB, which {owner} lacks" in message
    assert f"(CREATE DATABASE {target} OWNER {owner};) and run restore without --create" in message
    assert f"(ALTER ROLE {owner} CREATEDB;)" in message
    assert "pg_restore" not in result.stdout
    assert query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", [target]) == []


# --- Backup files ---------------------------------------------------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_backups_are_readable_by_their_owner_only(run, databases, backup_dir):
    directory = backup_dir / "created" / "by the command"
    run("backup", "--dir", str(directory), dbname=databases.clone())
    [dump] = directory.glob("*.dump")
    assert mode(dump) == 0o600
    assert mode(dump.with_suffix(".json")) == 0o600
    assert mode(directory) == 0o700
