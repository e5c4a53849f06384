"""The connection schema changes run on: the owner's URL, one migrate at a time, short locks.

- MIGRATION_DATABASE_URL (settings.HZM_MIGRATION_DATABASE): the commands that need the
  owner (migrate, loaddata, createsuperuser, changepassword, dbdoctor, backup, restore,
  rollback, deploy, the retention commands), run from the command line, connect with it
  instead of DATABASE_URL, and refuse at once, naming the URL and the privilege, when the
  role they end up with lacks what they need (require_owner).
- An advisory lock with a fixed key serialises migrate runs on one database.
- DDL waits at most settings.HZM_MIGRATION_LOCK_TIMEOUT for a lock (lock_timeout), and
  what timed out (SQLSTATE 55P03) is retried with backoff: a statement alone when it ran
  outside a transaction, otherwise the caller retries the whole migration.
"""

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from psycopg.conninfo import make_conninfo

# pg_advisory_lock(int, int): ('HZM' in ASCII, 1 = migrate). Advisory locks are per database.
MIGRATE_LOCK_KEY = (0x485A4D, 1)
LOCK_NOT_AVAILABLE = "55P03"
INSUFFICIENT_PRIVILEGE = "42501"  # also a row level security policy's refusal
MAX_BACKOFF_SECONDS = 30.0
# How often a migrate that waits for another asks for the migration lock again.
LOCK_POLL_SECONDS = 0.25
# The keys of a DATABASES entry that say where and as whom to connect.
CONNECTION_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


@contextmanager
def use_database(alias: str, database: dict[str, Any]) -> Iterator[Any]:
    """Point connection `alias` at another database (NAME, USER, HOST, ...) for the block.

    The connection is closed before and after, so nothing opened on one database is used
    on the other; it must not be inside a transaction. Entering with the settings it
    already has changes nothing.
    """
    connection = connections[alias]
    wanted = {**connection.settings_dict, "OPTIONS": {}}
    wanted.update({key: database[key] for key in CONNECTION_KEYS if key in database})
    if all(wanted[key] == connection.settings_dict.get(key) for key in CONNECTION_KEYS):
        yield connection
        return
    saved = connection.settings_dict
    connection.close()
    connection.settings_dict = wanted
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict = saved


@contextmanager
def migration_connection(alias: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Connect `alias` as the database owner (MIGRATION_DATABASE_URL) for the block, if set.

    Django's connection handler builds a connection from settings.DATABASES once, and
    connects lazily; swapping the wrapper's settings_dict before anything connects makes
    every query of the command (system checks included) go to the owner's URL, without
    a second alias that models, routers and migrations would not know about.
    """
    database = getattr(settings, "HZM_MIGRATION_DATABASE", None)
    if not database:
        yield
        return
    with use_database(alias, database):
        yield


@dataclass(frozen=True)
class RoleFacts:
    """What require_owner() learnt about the role a command connects as."""

    role: str
    owner: str  # who owns the platform's tables (django_migrations), else the database
    database: str
    url: str  # the setting the connection came from: DATABASE_URL or MIGRATION_DATABASE_URL
    superuser: bool
    owns: bool  # the role is, or inherits the rights of, `owner`
    reads_all: bool  # member of pg_read_all_data
    bypass_rls: bool
    create_db: bool


ROLE_FACTS = (
    "SELECT r.rolname, pg_get_userbyid(o.owner), current_database(), r.rolsuper, "
    "pg_has_role(r.oid, o.owner, 'USAGE'), "
    "pg_has_role(r.oid, 'pg_read_all_data', 'USAGE'), r.rolbypassrls, r.rolcreatedb "
    "FROM pg_roles r, (SELECT coalesce((SELECT relowner FROM pg_class "
    "WHERE oid = to_regclass('django_migrations')), (SELECT datdba FROM pg_database "
    "WHERE datname = current_database())) AS owner) o WHERE r.rolname = current_user"
)


def _named(role: str) -> str:
    """`role` as it would be written in SQL (quoted only when it has to be)."""
    return role if re.fullmatch(r"[a-z_][a-z0-9_$]*", role) else '"' + role.replace('"', '""') + '"'


def role_facts(connection: Any) -> RoleFacts:
    """One catalog query: who `connection` logs in as, and what that role may do."""
    with connection.cursor() as cursor:
        cursor.execute(ROLE_FACTS)
        role, owner, database, *flags = cursor.fetchone()
    migration = getattr(settings, "HZM_MIGRATION_DATABASE", None) or {}
    via_migration = bool(migration) and all(
        migration.get(key) == connection.settings_dict.get(key)
        for key in ("NAME", "USER", "HOST", "PORT")
    )
    url = "MIGRATION_DATABASE_URL" if via_migration else "DATABASE_URL"
    return RoleFacts(role, owner, database, url, *flags)


def require_owner(
    connection: Any,
    command: str,
    *,
    read_only: bool = False,
    bypass_rls: bool = False,
    create_database: str | None = None,
) -> RoleFacts:
    """Refuse (CommandError, one paragraph) unless `connection`'s role can do `command`'s work.

    It needs the owner of the platform's tables (a superuser will do); with `read_only`, a
    member of pg_read_all_data will do too (a backup role); with `bypass_rls`, a role that
    row level security does not apply to (FORCE binds the owner too); with
    `create_database`, the right to create that database (CREATEDB).
    """
    facts = role_facts(connection)
    if facts.superuser:
        return facts
    if not facts.owns and not (read_only and facts.reads_all):
        # The wrong login altogether (DATABASE_URL's authenticator, say): name the owner's URL.
        reader = " (or a backup role that is a member of pg_read_all_data)" if read_only else ""
        raise CommandError(
            f"{command} needs the database owner{' with BYPASSRLS' if bypass_rls else ''}: "
            f"set MIGRATION_DATABASE_URL to the owner's URL (postgresql://{facts.owner}:...@"
            f"host/{facts.database}){reader}; {facts.url} logs in as {facts.role}, which does "
            f"not own the platform's tables ({facts.owner} does)."
        )
    problems = []
    if bypass_rls and not facts.bypass_rls:
        problems.append(
            f"{command} needs a role that bypasses row level security, to see every tenant's "
            f"rows: {facts.role} is neither a superuser nor BYPASSRLS (FORCE ROW LEVEL "
            "SECURITY binds the tables' owner too); as a superuser, ALTER ROLE "
            f"{_named(facts.role)} BYPASSRLS; (README, Releases)."
        )
    if create_database is not None and not facts.create_db:
        problems.append(
            f"{command} --create needs CREATEDB, which {facts.role} lacks: either create the "
            f"empty database as a superuser (CREATE DATABASE {_named(create_database)} OWNER "
            f"{_named(facts.role)};) and run {command} without --create, or let the role "
            f"create databases (ALTER ROLE {_named(facts.role)} CREATEDB;)."
        )
    if problems:
        raise CommandError(" ".join(problems))
    return facts


def privilege_refusal(exc: BaseException, command: str, facts: RoleFacts | None) -> str:
    """The message for a privilege PostgreSQL refused (SQLSTATE 42501) during `command`."""
    error = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    who = f"{facts.url} logs in as {facts.role}" if facts else "the role it logs in as"
    owner = _named(facts.owner) if facts else "<owner>"
    if "row-level security" in error:
        fix = (
            "run it as a role that bypasses row level security, the owner with BYPASSRLS (as "
            f"a superuser: ALTER ROLE {owner} BYPASSRLS; see README, Releases)"
        )
    else:
        fix = (
            "run it as the database owner: set MIGRATION_DATABASE_URL to the owner's URL "
            f"(postgresql://{owner}:...@host/db)"
        )
    return f"{command} was refused a privilege by PostgreSQL ({error}); {who}: {fix}."


class MigrationConnectionCommand:
    """Mixin for the owner's commands: MIGRATION_DATABASE_URL when run from the shell.

    Only from the command line (run_from_argv): call_command() in-process, such as the
    test runner creating its database with `migrate`, keeps the connection it has. There,
    the command first checks the role it got (owner_needs(), require_owner()) and turns a
    privilege PostgreSQL refuses later (SQLSTATE 42501) into a CommandError too.
    """

    _from_command_line = False

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any] | None:
        """require_owner()'s keywords for a run with `options`; None: nothing to check."""
        return None

    def run_from_argv(self, argv: list[str]) -> None:
        self._from_command_line = True
        super().run_from_argv(argv)  # type: ignore[misc]

    def execute(self, *args: Any, **options: Any) -> Any:
        if not self._from_command_line:
            return super().execute(*args, **options)  # type: ignore[misc]
        alias = options.get("database") or DEFAULT_DB_ALIAS
        command = type(self).__module__.rpartition(".")[2]
        facts = None
        with migration_connection(alias):
            try:
                needs = self.owner_needs(options)
                if needs is not None:
                    facts = require_owner(connections[alias], command, **needs)
                return super().execute(*args, **options)  # type: ignore[misc]
            except (DatabaseError, psycopg.Error) as exc:
                if options.get("traceback") or not has_sqlstate(exc, INSUFFICIENT_PRIVILEGE):
                    raise
                raise CommandError(privilege_refusal(exc, command, facts)) from exc


def libpq_connection(connection: Any, dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """(conninfo, environment) for pg_dump/pg_restore/psql to reach what `connection` reaches.

    Built from the connection's own psycopg parameters, so a socket directory in OPTIONS
    (postgresql://u@/db?host=/run/pg), sslmode and the like are honoured. The password
    goes in PGPASSWORD, not on the command line where `ps` would show it.
    """
    keywords = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    params = {
        key: str(value)
        for key, value in connection.get_connection_params().items()
        if key in keywords and value not in (None, "")
    }
    if dbname is not None:
        params["dbname"] = dbname
    env = {**os.environ, "PGAPPNAME": "hzm-deploy"}
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    return make_conninfo(**params), env


@contextmanager
def advisory_lock(connection: Any, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the migrate advisory lock on `connection` for the block; wait if another has it.

    Session-level and re-entrant: a command holding it (deploy) may run migrate, which
    takes it again on the same connection.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY)
        if not cursor.fetchone()[0]:
            cursor.execute(
                "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
                "AND l.objid = %s AND l.objsubid = 2 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                MIGRATE_LOCK_KEY,
            )
            holder = cursor.fetchone()
            who = (
                f"process {holder[0]} ({holder[1] or 'no application name'}, "
                f"connected {holder[2]:%Y-%m-%d %H:%M:%S %Z})"
                if holder
                else "another session"
            )
            on_wait(f"another migrate holds the migration lock: {who}; waiting for it to finish")
            # Wait as long as it takes, asking again and again rather than blocking in one
            # statement: a session waiting inside a statement holds a snapshot, and the
            # holder's CREATE INDEX CONCURRENTLY (core 0007) waits for every such session to
            # end: both would wait for each other (a deadlock).
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY)
                if cursor.fetchone()[0]:
                    break
                time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK_KEY)
        except DatabaseError:
            pass  # The connection is gone, and the server released the lock with it.


@contextmanager
def lock_timeout(connection: Any, seconds: float) -> Iterator[None]:
    """SET lock_timeout on `connection` for the block (session level), then put it back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, false)",
            [f"{max(1, round(seconds * 1000))}ms"],
        )
        previous = cursor.fetchone()[0]
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [previous])
        except DatabaseError:
            pass


def has_sqlstate(exc: BaseException | None, sqlstate: str) -> bool:
    """Whether `exc`, or what caused it, is a PostgreSQL error with SQLSTATE `sqlstate`."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if getattr(exc, "sqlstate", None) == sqlstate:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def is_lock_timeout(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is PostgreSQL's lock_not_available (55P03)."""
    return has_sqlstate(exc, LOCK_NOT_AVAILABLE)


def backoff_delays(retries: int, first: float) -> list[float]:
    """Seconds to wait before each retry: first, 2*first, 4*first, ... (at most 30 s each)."""
    return [min(first * 2**attempt, MAX_BACKOFF_SECONDS) for attempt in range(retries)]


class RetryOutsideTransactions:
    """connection.execute_wrapper(): re-run a statement that timed out waiting for a lock.

    Only a statement that ran in autocommit, alone: inside a transaction block the failed
    statement has aborted the transaction, and the caller must retry it whole.
    """

    def __init__(
        self,
        delays: Sequence[float],
        on_retry: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.delays = list(delays)
        self.on_retry = on_retry
        self.sleep = sleep

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        connection = context["connection"]
        for attempt, delay in enumerate([*self.delays, None], start=1):
            try:
                return execute(sql, params, many, context)
            except DatabaseError as exc:
                alone = not connection.in_atomic_block and connection.get_autocommit()
                if delay is None or not alone or not is_lock_timeout(exc):
                    raise
                first_line = str(sql).strip().splitlines()[0][:100]
                self.on_retry(
                    f"lock timeout on `{first_line}`; retrying the statement in {delay:g} s "
                    f"(attempt {attempt + 1} of {len(self.delays) + 1})"
                )
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover
