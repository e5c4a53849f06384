"""Backups with pg_dump -Fc and a JSON sidecar; restores into an empty database, verified.

Why not django-dbbackup: its PostgreSQL connector ignores a socket directory given in
OPTIONS (our DATABASE_URL form postgresql://u@/db?host=/run/pg), its restore runs
pg_restore --clean over the configured database instead of into an empty one, it does
not know our engine name, and it has no place for the migration state, the row counts
and the checks a restore must pass. What it would do for us is the pg_dump call.

A backup is <database>-<UTC time>-<8 hex of the applied migrations>.dump and a .json
sidecar: the applied migrations per app, the exact row count of every table, the row
level security flags, policies and triggers per table, the roles it references, the
server version and the dump's SHA-256. The counts and the dump come from one snapshot
(pg_dump --snapshot), so they agree even while the application writes. Both files hold
every tenant's data: they are created readable by their owner only (0600), and a backup
directory the command creates is 0700.
"""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction
from psycopg import sql as pgsql

from hzm.db import sql
from hzm.db.localdb import BINDIR_GLOBS
from hzm.deploy.connection import libpq_connection, use_database
from hzm.progress import Progress

SIDECAR_FORMAT = 1
POLL_SECONDS = 0.5  # how often a running pg_dump/pg_restore is measured for progress
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")
USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)


class BackupError(Exception):
    """A backup or restore could not be made or did not verify; the message says why."""


@dataclass(frozen=True)
class Backup:
    dump: Path
    sidecar: Path
    manifest: dict[str, Any]


# --- Pure helpers -------------------------------------------------------------------------


def state_hash(applied: dict[str, list[str]]) -> str:
    """8 hex digits naming a migration state: equal states, equal names."""
    text = "\n".join(f"{app}.{name}" for app in sorted(applied) for name in sorted(applied[app]))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def backup_filename(database: str, when: datetime, state: str) -> str:
    """'hzm-20261127T051500Z-1a2b3c4d.dump'."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database) or "database"
    return f"{safe}-{when.astimezone(UTC):%Y%m%dT%H%M%SZ}-{state}.dump"


def sidecar_path(dump: Path) -> Path:
    return dump.with_suffix(".json")


def read_manifest(path: Path) -> tuple[Path, dict[str, Any]]:
    """(dump, sidecar contents) for a backup named by its .dump or its .json."""
    path = Path(path)
    dump = path.with_suffix(".dump") if path.suffix == ".json" else path
    sidecar = sidecar_path(dump)
    if not dump.is_file():
        raise BackupError(f"backup {dump} does not exist")
    if not sidecar.is_file():
        raise BackupError(f"backup {dump} has no sidecar {sidecar.name}: cannot verify it")
    manifest = json.loads(sidecar.read_text())
    if manifest.get("format") != SIDECAR_FORMAT:
        raise BackupError(f"{sidecar}: unknown sidecar format {manifest.get('format')!r}")
    return dump, manifest


def latest_backup(directory: Path, database: str | None = None) -> Path:
    """The newest backup in `directory` (of `database`, if given), by the time in its name."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", database) + "-" if database else ""
    found = sorted(
        (p for p in Path(directory).glob(f"{prefix}*.dump") if sidecar_path(p).is_file()),
        key=lambda p: p.stem.rsplit("-", 2)[-2] if p.stem.count("-") >= 2 else "",
    )
    if not found:
        raise BackupError(f"no backup of {database or 'any database'} in {directory}")
    return found[-1]


def compare(label: str, recorded: dict, found: dict) -> list[str]:
    """The keys whose values differ between the sidecar and the restored database."""
    problems = []
    for key in sorted(set(recorded) | set(found)):
        if recorded.get(key) != found.get(key):
            problems.append(
                f"{label} {key}: backup has {recorded.get(key, 'nothing')!r}, "
                f"restored database has {found.get(key, 'nothing')!r}"
            )
    return problems


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- The catalog ----------------------------------------------------------------------------


def _rows(cursor: Any, query: str, params: list[Any] | None = None) -> list[tuple]:
    cursor.execute(query, params)  # None: no placeholders (the queries contain %)
    return cursor.fetchall()


def applied_migrations(cursor: Any) -> dict[str, list[str]]:
    """app -> sorted names of its applied migrations ({} without django_migrations)."""
    if not _rows(cursor, "SELECT to_regclass('django_migrations')")[0][0]:
        return {}
    applied: dict[str, list[str]] = {}
    for app, name in _rows(cursor, "SELECT app, name FROM django_migrations ORDER BY app, name"):
        applied.setdefault(app, []).append(name)
    return applied


def row_counts(cursor: Any) -> dict[str, int]:
    """schema.table -> exact row count, for every table outside the system schemas."""
    return dict(
        _rows(
            cursor,
            "SELECT n.nspname || '.' || c.relname, (xpath('/row/n/text()', query_to_xml("
            "format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')"
            "))[1]::text::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind = 'r' AND {USER_SCHEMAS} ORDER BY 1",
        )
    )


def security_catalog(cursor: Any) -> dict[str, dict[str, Any]]:
    """schema.table -> row level security flags, policies and triggers, for tables with any."""
    tables: dict[str, dict[str, Any]] = {}
    for table, enabled, forced, policies, triggers in _rows(
        cursor,
        "SELECT n.nspname || '.' || c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "ARRAY(SELECT polname::text FROM pg_policy WHERE polrelid = c.oid ORDER BY 1), "
        "ARRAY(SELECT tgname::text FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal "
        "ORDER BY 1) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMAS} ORDER BY 1",
    ):
        if enabled or forced or policies or triggers:
            tables[table] = {
                "rls": [enabled, forced],
                "policies": list(policies),
                "triggers": list(triggers),
            }
    return tables


def referenced_roles(cursor: Any) -> dict[str, list[str]]:
    """{"owners": [...], "grantees": [...]}: the roles a restore needs on its cluster."""
    objects = (
        "WITH objects AS ("
        " SELECT c.relowner AS owner, c.relacl AS acl FROM pg_class c"
        f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"
        f" UNION ALL SELECT n.nspowner, n.nspacl FROM pg_namespace n WHERE {USER_SCHEMAS}"
        " UNION ALL SELECT p.proowner, p.proacl FROM pg_proc p"
        f" JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS}) "
    )
    owners = _rows(
        cursor, objects + "SELECT DISTINCT pg_get_userbyid(owner) FROM objects ORDER BY 1"
    )
    grantees = _rows(
        cursor,
        objects + "SELECT DISTINCT pg_get_userbyid(a.grantee) FROM objects, aclexplode(acl) a "
        "WHERE a.grantee <> 0 ORDER BY 1",
    )
    return {"owners": [r for (r,) in owners], "grantees": [r for (r,) in grantees]}


def hidden_by_row_security(cursor: Any) -> tuple[str, list[str]]:
    """(current role, tables whose rows row level security hides from it)."""
    role = _rows(cursor, "SELECT current_user")[0][0]
    hidden = [
        table
        for (table,) in _rows(
            cursor,
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND {USER_SCHEMAS} "
            "AND row_security_active(c.oid) ORDER BY 1",
        )
    ]
    return role, hidden


def rls_refusal(role: str, hidden: list[str], what: str) -> str:
    shown = ", ".join(hidden[:5]) + (f" and {len(hidden) - 5} more" if len(hidden) > 5 else "")
    return (
        f"{what}: role {role!r} cannot read every row of {shown}: row level security is on "
        "(FORCE applies it to the tables' owner too) and the role is neither a superuser nor "
        "BYPASSRLS. pg_dump would stop with 'query would be affected by row-level security "
        "policy' (or, with --enable-row-security, silently keep only the rows the policies "
        "show: none without a tenant context). Run it as a role with BYPASSRLS, e.g. a "
        f"dedicated backup role (ALTER ROLE {role} BYPASSRLS, as a superuser), through "
        "MIGRATION_DATABASE_URL; see README, Releases."
    )


def database_contents(cursor: Any) -> list[str]:
    """What a database holds beyond a fresh CREATE DATABASE ([] when it is empty)."""
    found = []
    for what, query in (
        (
            "schema",
            f"SELECT n.nspname FROM pg_namespace n WHERE {USER_SCHEMAS} "
            "AND n.nspname <> 'public' ORDER BY 1",
        ),
        (
            "relation",
            "SELECT n.nspname || '.' || c.relname FROM pg_class c "
            f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS} "
            "ORDER BY 1",
        ),
        (
            "function",
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p "
            f"JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS} "
            "ORDER BY 1",
        ),
        ("extension", "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1"),
    ):
        names = [name for (name,) in _rows(cursor, query)]
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            found.append(f"{len(names)} {what}(s) ({', '.join(names[:3])}{more})")
    return found


# --- Client programs --------------------------------------------------------------------------


def client_program(name: str, server_major: int) -> str:
    """pg_dump/pg_restore of the server's major version or newer (PATH first)."""
    candidates = [shutil.which(name)] + [
        str(Path(directory) / name)
        for pattern in BINDIR_GLOBS
        for directory in sorted(glob.glob(pattern), reverse=True)
    ]
    seen = []
    for path in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        match = _VERSION.search(result.stdout)
        if match and int(match[1]) >= server_major:
            return path
        seen.append(f"{path} ({result.stdout.strip() or 'no version'})")
    found = f" Found only: {'; '.join(seen)}." if seen else ""
    raise BackupError(
        f"{name} for PostgreSQL {server_major} or newer not found on PATH or in "
        f"{', '.join(BINDIR_GLOBS)}.{found} Install postgresql-client-{server_major}."
    )


def _run(
    args: list[str],
    env: dict[str, str],
    what: str,
    progress: Progress | None = None,
    measure: Callable[[subprocess.Popen], int | None] | None = None,
) -> str:
    """Run a client program; with `progress`, report `measure(process)` bytes as it runs."""
    if progress is None:
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        returncode, stdout, stderr = result.returncode, result.stdout, result.stderr
    else:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        while True:
            try:
                # Waiting with a timeout and calling again loses no output (subprocess docs).
                stdout, stderr = process.communicate(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                progress.update(bytes=measure(process) if measure else None)
        returncode = process.returncode
    if returncode != 0:
        raise BackupError(f"{what} failed (exit {returncode}): {stderr.strip()}")
    return stdout


def _file_size(path: Path) -> Callable[[subprocess.Popen], int | None]:
    """How much pg_dump has written so far: the size of its output file."""

    def measure(process: subprocess.Popen) -> int | None:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    return measure


def _bytes_read(limit: int) -> Callable[[subprocess.Popen], int | None]:
    """How much pg_restore has read so far (Linux: /proc/<pid>/io), at most `limit`."""

    def measure(process: subprocess.Popen) -> int | None:
        try:
            text = Path(f"/proc/{process.pid}/io").read_text()
        except OSError:
            return None  # not Linux, or already gone: elapsed time only
        found = re.search(r"^rchar: (\d+)$", text, re.MULTILINE)
        return min(int(found[1]), limit) if found else None

    return measure


# --- Backup -------------------------------------------------------------------------------------

PRIVATE_UMASK = 0o077  # files 0600, directories 0700


@contextmanager
def private_files() -> Iterator[None]:
    """Create files (pg_dump's too: it inherits the umask) readable by their owner only.

    Set before the files exist, rather than a chmod after writing: there is no moment in
    which another user could open them. The umask is the process's: commands are single
    threaded.
    """
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def create_backup(
    connection: Any, directory: Path, say: Callable[[str], None] | None = print
) -> Backup:
    """Dump the database of `connection` into `directory`, with its sidecar; return both.

    `say` gets what it does and, while pg_dump runs, progress lines (bytes written,
    elapsed, rate); None: nothing.
    """
    with private_files():
        return _create_backup(connection, Path(directory), say)


def _quiet(message: str) -> None:
    pass


def _create_backup(connection: Any, directory: Path, say: Callable[[str], None] | None) -> Backup:
    write = say
    say = say or _quiet
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    connection.ensure_connection()
    pg_dump = client_program("pg_dump", connection.pg_version // 10000)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # One snapshot for the counts, the migration state and pg_dump itself.
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        role, hidden = hidden_by_row_security(cursor)
        if hidden:
            raise BackupError(rls_refusal(role, hidden, "backup refused"))
        snapshot, database, version, now = _rows(
            cursor,
            "SELECT pg_export_snapshot(), current_database(), current_setting('server_version'), "
            "now()",
        )[0]
        applied = applied_migrations(cursor)
        manifest: dict[str, Any] = {
            "format": SIDECAR_FORMAT,
            "database": database,
            "created_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "server_version": version,
            "role": role,
            "runtime_role": getattr(settings, "HZM_APP_ROLE", "hzm_app"),
            "roles": referenced_roles(cursor),
            "migration_state": state_hash(applied),
            "applied_migrations": applied,
            "row_counts": row_counts(cursor),
            "security": security_catalog(cursor),
        }
        dump = directory / backup_filename(database, now, manifest["migration_state"])
        if dump.exists():
            raise BackupError(f"{dump} already exists; not overwriting it")
        partial = dump.with_name(dump.name + ".partial")
        conninfo, env = libpq_connection(connection)
        rows = manifest["row_counts"]
        say(
            f"pg_dump of {database} (snapshot {snapshot}; {sum(rows.values()):,} rows in "
            f"{len(rows)} tables) to {dump}"
        )
        progress = Progress("pg_dump", write)
        try:
            options = ["--format=custom", f"--snapshot={snapshot}", "--no-password"]
            _run(
                [pg_dump, *options, f"--file={partial}", f"--dbname={conninfo}"],
                env,
                "pg_dump",
                progress,
                _file_size(partial),
            )
        except BackupError:
            partial.unlink(missing_ok=True)
            raise
        progress.bytes = partial.stat().st_size
        progress.finish("written")
    manifest["pg_dump"] = _run([pg_dump, "--version"], env, "pg_dump --version").strip()
    manifest["file"] = dump.name
    manifest["bytes"] = partial.stat().st_size
    manifest["sha256"] = sha256_of(partial)
    partial.rename(dump)
    sidecar = sidecar_path(dump)
    sidecar.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Backup(dump, sidecar, manifest)


# --- Restore ------------------------------------------------------------------------------------


def create_database(connection: Any, name: str) -> None:
    """CREATE DATABASE `name` TEMPLATE template0, from the server's maintenance database."""
    conninfo, env = libpq_connection(connection, dbname="postgres")
    with psycopg.connect(conninfo, password=env.get("PGPASSWORD"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            raise BackupError(
                f"database {name!r} already exists: restore into it without --create (it must "
                "be empty), or choose another name"
            )
        admin.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE template0").format(pgsql.Identifier(name))
        )


def restore_backup(
    connection: Any,
    path: Path,
    target: str,
    *,
    create: bool = False,
    no_owner: bool = False,
    say: Callable[[str], None] | None = print,
) -> tuple[list[str], list[str]]:
    """Restore a backup into the EMPTY database `target` (on `connection`'s server), verify it.

    Returns verify()'s (problems, notes): no problems when the restored database has the
    backup's rows, migration state, row level security, policies and triggers, and
    dbdoctor finds nothing wrong. `say` gets what it does and, while pg_restore runs,
    progress lines (bytes of the dump read, elapsed, rate); None: nothing.
    """
    write = say
    say = say or _quiet
    dump, manifest = read_manifest(path)
    if sha256_of(dump) != manifest.get("sha256"):
        raise BackupError(f"{dump}: its SHA-256 differs from the sidecar's: the file is damaged")
    if create:
        create_database(connection, target)
        say(f"created database {target}")
    database = {**connection.settings_dict, "NAME": target}
    with use_database(connection.alias, database) as target_connection:
        target_connection.ensure_connection()
        pg_restore = client_program("pg_restore", target_connection.pg_version // 10000)
        with target_connection.cursor() as cursor:
            contents = database_contents(cursor)
            if contents:
                raise BackupError(
                    f"database {target!r} is not empty: it has {'; '.join(contents)}. Restore "
                    "only into an empty database: create one (createdb -T template0 NAME, or "
                    "--create)."
                )
            _ensure_roles(cursor, manifest, no_owner, say)
        conninfo, env = libpq_connection(target_connection)
        rows = manifest["row_counts"]
        say(
            f"pg_restore of {dump.name} into {target} ({sum(rows.values()):,} rows in "
            f"{len(rows)} tables)"
        )
        size = dump.stat().st_size
        progress = Progress("pg_restore", write, bytes_total=size)
        args = [pg_restore, "--exit-on-error", "--single-transaction", "--no-password"]
        _run(
            [*args, *(["--no-owner"] if no_owner else []), f"--dbname={conninfo}", str(dump)],
            env,
            "pg_restore",
            progress,
            _bytes_read(size),
        )
        progress.bytes = size  # all of it, once it has finished
        progress.finish("read; verifying")
        with target_connection.cursor() as cursor:
            # A dump holds no database-level privileges: take TEMPORARY from PUBLIC again,
            # as hzm/migrations/0005 did on the original (dbdoctor checks it).
            cursor.execute(sql.revoke_database_temporary())
        return verify(target_connection, manifest)


def _ensure_roles(cursor: Any, manifest: dict[str, Any], no_owner: bool, say: Any) -> None:
    """Roles the dump references must exist on this cluster; the platform's own are made here.

    The runtime role and the service roles (<runtime role>_<service>) are created as the
    migrations create them: NOLOGIN, no way around row level security, nothing else.
    """
    existing = {name for (name,) in _rows(cursor, "SELECT rolname FROM pg_roles")}
    roles = manifest["roles"]
    runtime = manifest.get("runtime_role") or ""
    for role in roles["grantees"]:
        if role not in existing and runtime and (role == runtime or role.startswith(runtime + "_")):
            cursor.execute(sql.ensure_runtime_role(role))
            say(f"created role {role} (NOLOGIN NOBYPASSRLS), as the migrations do")
            existing.add(role)
    grantees = [role for role in roles["grantees"] if role not in existing]
    owners = [role for role in roles["owners"] if role not in existing and not no_owner]
    if grantees or owners:
        raise BackupError(
            f"the backup references role(s) {', '.join(sorted({*grantees, *owners}))}, which "
            "this cluster lacks: roles belong to the cluster, not the dump. Create them first "
            "(README, Releases, 'Restoring on another cluster'); roles that only own objects "
            "can be left out with --no-owner (the restoring role then owns everything)."
        )


def verify(connection: Any, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, notes): how a restored database differs from its backup's sidecar.

    Problems: row counts, migration state, row level security flags, policies or triggers
    that differ, and dbdoctor's errors. When the backup's migration state is older than
    this code, dbdoctor (which also reads today's models) can only inform: its findings
    become notes.
    """
    from django.db.migrations.loader import MigrationLoader

    from hzm.db.checks import diagnose

    with connection.cursor() as cursor:
        role, hidden = hidden_by_row_security(cursor)
        if hidden:
            return [rls_refusal(role, hidden, "cannot verify the row counts")], []
        problems = compare("row count of", manifest["row_counts"], row_counts(cursor))
        applied = applied_migrations(cursor)
        problems += compare("migrations of app", manifest["applied_migrations"], applied)
        problems += compare("security of", manifest["security"], security_catalog(cursor))
    findings = [f"dbdoctor: {f}" for f in diagnose(connection.alias) if f.severity == "error"]
    on_disk = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    current = {(app, name) for app, names in applied.items() for name in names}
    if on_disk <= current:
        return problems + findings, []
    notes = [
        "the backup's migration state is older than this code, so dbdoctor's findings "
        "(which read today's models too) are informational:"
    ]
    return problems, notes + findings if findings else []
