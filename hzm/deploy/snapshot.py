"""The schema snapshot: `migrate`'s fast way to build an empty database, and how it is made.

Applying the whole migration history to an empty database is slow: Django re-renders the
model state after nearly every operation, and the SQL is a small part of the time. The
snapshot (settings.HZM_SCHEMA_SNAPSHOT, hzm/schema_snapshot.sql) is that history's SQL,
collected once (`manage.py schema_snapshot --write`, see hzm.db.snapshot). `migrate` of an
EMPTY database, when the snapshot is up to date, loads it instead of applying migration
after migration, in one transaction:

1. django_migrations is created first, as the executor does before the first migration;
2. the SQL of every migration runs, in plan order, with this deployment's runtime role:
   the same statements the history runs, the roles, grants and revocations included
   (EnsureRuntimeRole, RevokeDatabaseTemporary, RevokeCatalogFunctions are SQL too);
3. django_migrations records every migration of the plan, as the executor does;
4. then post_migrate is sent as after any migrate (content types, permissions, and
   whatever else listens), with the plan the history would have applied.

Up to date means: the same migrations in the same order, each file unchanged, the same
toolkit sources (SOURCES), Django version and PostgreSQL major version as when it was
made; anything else falls back to the history, which is always right.
tests/deploy/test_schema_snapshot.py builds one database each way and compares them
(the catalog, pg_dump, privileges, roles, django_migrations, content types, dbdoctor),
before and after a later migration.
"""

import hashlib
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.db import transaction
from psycopg import sql as pgsql

from hzm.db import snapshot as text
from hzm.db.operations import runtime_role
from hzm.deploy.backup import database_contents
from hzm.deploy.connection import use_database

WRITE_COMMAND = "python manage.py schema_snapshot --write"
# The project's code that runs inside migrations and decides their SQL (the operations and
# their renderers, the fields and expressions frozen in them, the backend's foreign keys):
# a change to one can change what an old migration does, so it makes the snapshot stale.
SOURCES = (
    "hzm/db/sql.py",
    "hzm/db/operations.py",
    "hzm/db/partitions.py",
    "hzm/db/fields.py",
    "hzm/db/expressions.py",
    "hzm/db/backends/postgresql/base.py",
)


class SnapshotError(Exception):
    """A snapshot could not be made; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    facts: dict[str, str]
    migrations: dict[str, str]
    template: str


def snapshot_path() -> Path:
    return Path(settings.HZM_SCHEMA_SNAPSHOT)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def label(migration: Any) -> str:
    return f"{migration.app_label}.{migration.name}"


def history(plan: list[tuple[Any, bool]], server_major: int) -> tuple[dict, dict]:
    """(facts, migrations) of the history `plan` (an empty database's whole plan) is."""
    facts = {"postgresql": str(server_major), "django": django.get_version()}
    base = Path(settings.BASE_DIR)
    facts.update({f"source {name}": _digest(base / name) for name in SOURCES})
    migrations = {
        label(migration): _digest(Path(sys.modules[type(migration).__module__].__file__))
        for migration, _ in plan
    }
    return facts, migrations


def read(path: Path | None = None) -> Snapshot | None:
    """The snapshot at `path` (settings.HZM_SCHEMA_SNAPSHOT), or None when there is none."""
    path = path or snapshot_path()
    if not path.exists():
        return None
    facts, migrations, template = text.parse(path.read_text())
    return Snapshot(path, facts, migrations, template)


def full_plan(executor: Any) -> list[tuple[Any, bool]]:
    """The plan of every migration, as for an empty database."""
    return executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)


def why_not(connection: Any, executor: Any, plan: list, found: Snapshot | None) -> str | None:
    """Why `found` may not build this (empty) database by `plan`; None: it may."""
    if found is None:
        return f"there is no schema snapshot ({snapshot_path()})"
    if plan != full_plan(executor):
        return "the plan is not the whole history"
    if settings.DATABASE_ROUTERS:  # the snapshot's SQL is every model's, on one database
        return "DATABASE_ROUTERS may leave models out of this database"
    current = history(plan, connection.pg_version // 10000)
    reasons = text.stale_reasons((found.facts, found.migrations), current)
    if reasons:
        return f"the schema snapshot {found.path.name} is stale ({'; '.join(reasons)})"
    return None


def is_empty(connection: Any) -> bool:
    """Nothing in the database a fresh CREATE DATABASE does not have."""
    with connection.cursor() as cursor:
        return not database_contents(cursor)


def load(connection: Any, executor: Any, plan: list[tuple[Any, bool]], found: Snapshot) -> None:
    """Build the empty database as `plan` would, from `found`, in one transaction."""
    script = text.render(found.template, runtime_role())
    with transaction.atomic(using=connection.alias):
        executor.recorder.ensure_schema()
        with connection.cursor() as cursor:
            cursor.execute(script)  # no parameters: one multi-statement script
        # As executor.record_migration() for each (a squash records what it replaces), in
        # one INSERT instead of two queries a migration.
        Migration = executor.recorder.Migration
        executor.recorder.migration_qs.bulk_create(
            [
                Migration(app=app, name=name)
                for migration, _ in plan
                for app, name in migration.replaces or [(migration.app_label, migration.name)]
            ]
        )
    executor.check_replacements()


# --- Making it ------------------------------------------------------------------------------


def write(
    connection: Any, path: Path | None = None, say: Callable[[str], None] = print
) -> Snapshot:
    """Migrate a scratch database by the history, collecting each migration's SQL on the way."""
    from django.db.migrations.executor import MigrationExecutor
    from django.test.utils import override_settings

    path = path or snapshot_path()
    suffix = uuid.uuid4().hex[:8]
    # Names nothing else contains, to find them in the SQL (hzm.db.snapshot).
    scratch, role = f"hzm_snapshot_{suffix}", f"hzm_snapshot_{suffix}_app"
    _admin(connection, pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(scratch)))
    try:
        database = {**connection.settings_dict, "NAME": scratch}
        with (
            use_database(connection.alias, database) as target,
            override_settings(HZM_APP_ROLE=role),
        ):
            say(f"migrating the scratch database {scratch} by the migration history")
            executor = MigrationExecutor(target)
            executor.recorder.ensure_schema()
            plan = full_plan(executor)
            # The files as they were imported (an edit while this runs makes it stale).
            facts, migrations = history(plan, target.pg_version // 10000)
            state = executor._create_project_state(with_applied_migrations=True)
            collected = []
            for migration, _ in plan:
                # The SQL sqlmigrate shows, against the database as the history leaves it
                # before this migration (operations may look at it), then applied.
                with target.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                    migration.apply(state.clone(), editor, collect_sql=True)
                collected.append((label(migration), editor.collected_sql))
                state = executor.apply_migration(state, migration)
            with target.cursor() as cursor:
                cursor.execute("SELECT current_user")
                (owner,) = cursor.fetchone()
        try:
            template = text.template_from_sql(collected, role, owner)
        except ValueError as exc:
            raise SnapshotError(str(exc)) from exc
        path.write_text(text.format_header(facts, migrations) + template)
        say(f"wrote {path} ({len(migrations)} migrations, {len(template):,} characters of SQL)")
        return Snapshot(path, facts, migrations, template)
    finally:
        _admin(
            connection,
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(scratch)),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = %s OR starts_with(rolname, %s)",
                [role, f"{role}_"],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(name)))


def _admin(connection: Any, statement: pgsql.Composed) -> None:
    """CREATE/DROP DATABASE, outside any transaction."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection))
