"""`manage.py migrate`: --dry-run, one run at a time, lock timeouts retried, the owner's URL."""

import subprocess
import sys
import threading
import time

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection
from django.test import override_settings

from hzm.deploy.connection import (
    MIGRATE_LOCK_KEY,
    RetryOutsideTransactions,
    backoff_delays,
    is_lock_timeout,
    use_database,
)
from tests import support
from tests.deploy.conftest import connect, environment, migration, query
from tests.parity.catalog import diff, snapshot

SCHEMAS = ("public", "app", "core", "cfg", "ops", "comms", "billing")
ADD_INDEX = migration(
    "0001_create_widgets",
    'migrations.AddIndex("widget", models.Index(fields=["name"], name="idx_widget_name"))',
)
ADD_SCORE_SAFELY = migration(
    "0002_add_widget_index",
    'AddNotNullColumnSafely("widget", "score", models.IntegerField(db_default=0))',
    atomic=False,
    imports="from hzm.db.operations import AddNotNullColumnSafely\n",
)
INDEX_SCORE = migration(
    "0003_add_widget_score",
    'migrations.AddIndex("widget", models.Index(fields=["score"], name="idx_widget_score"))',
)
# Fails on a table with rows: "column contains null values".
ADD_NOT_NULL_WITHOUT_DEFAULT = migration(
    "0002_add_widget_index", 'migrations.AddField("widget", "size", models.IntegerField())'
)


def state_of(database: str) -> tuple:
    """Everything a dry run must leave as it was: catalog, django_migrations, rows."""
    with connect(database) as conn, conn.cursor() as cursor:
        catalog = snapshot(cursor, SCHEMAS)
    applied = query(database, "SELECT app, name, applied FROM django_migrations ORDER BY id")
    widgets = query(database, "SELECT count(*) FROM deployprobe_widget")
    return catalog, applied, widgets


def widgets_with_rows(run, probe, databases) -> str:
    """A clone with deployprobe.0001 applied and 1000 analyzed widget rows."""
    database = databases.clone()
    run("migrate", "deployprobe", "0001", dbname=database, env=probe.env)
    query(
        database,
        "INSERT INTO deployprobe_widget (name) SELECT 'w' || n "
        "FROM generate_series(1, 1000) n; ANALYZE deployprobe_widget",
    )
    return database


# --- --dry-run -------------------------------------------------------------------------------


def test_dry_run_reports_and_changes_nothing(run, probe, databases):
    database = widgets_with_rows(run, probe, databases)
    probe.add("0002_add_widget_index", ADD_INDEX)
    probe.add("0003_add_widget_score", ADD_SCORE_SAFELY)
    probe.add("0004_index_widget_score", INDEX_SCORE)
    before = state_of(database)

    out = run("migrate", "--dry-run", dbname=database, env=probe.env).stdout

    assert diff(before[0], state_of(database)[0]) == []
    assert state_of(database) == before
    assert "Dry run: 3 migration(s) inside one transaction, then rolled back" in out
    assert "[1/1] apply deployprobe.0002_add_widget_index" in out
    assert 'CREATE INDEX "idx_widget_name" ON "deployprobe_widget" ("name");  -- ' in out
    assert (
        'lock: "deployprobe_widget" (~1,000 rows): SHARE: blocks writes (reads go on); '
        "no rewrite; scans the table while locked"
    ) in out
    assert "Not run (2): cannot run inside a transaction" in out
    assert "deployprobe.0003_add_widget_score: atomic = False" in out
    assert 'ADD COLUMN IF NOT EXISTS "score" integer' in out  # its SQL is shown, not run
    assert (
        "deployprobe.0004_index_widget_score: depends on deployprobe.0003_add_widget_score, "
        "which is not run"
    ) in out
    assert "Rolled back: the database is unchanged" in out


def test_a_failing_dry_run_names_the_migration_and_rolls_everything_back(run, probe, databases):
    database = widgets_with_rows(run, probe, databases)
    probe.add("0002_add_widget_index", ADD_INDEX)
    probe.add("0003_add_widget_size", ADD_NOT_NULL_WITHOUT_DEFAULT)
    before = state_of(database)

    result = run("migrate", "--dry-run", dbname=database, env=probe.env, check=False)

    assert result.returncode != 0
    assert "migration deployprobe.0003_add_widget_size failed" in result.stderr
    assert 'column "size" of relation "deployprobe_widget" contains null values' in result.stderr
    assert "Rolled back: the database is unchanged." in result.stderr
    assert state_of(database) == before  # the index of 0002 is gone with the rest


def test_dry_run_of_unapplying(run, probe, databases):
    database = widgets_with_rows(run, probe, databases)
    before = state_of(database)
    out = run("migrate", "deployprobe", "zero", "--dry-run", dbname=database, env=probe.env).stdout
    assert "[1/1] unapply deployprobe.0001_create_widgets" in out
    assert 'DROP TABLE "deployprobe_widget" CASCADE;' in out
    assert state_of(database) == before


# --- One migrate at a time ---------------------------------------------------------------------


def test_two_migrates_at_once_both_succeed(databases):
    database = databases.empty()
    command = [sys.executable, "manage.py", "migrate", "--no-input"]
    with connect(database) as holder:
        # Hold the lock ourselves until both have started and are waiting for it.
        holder.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY)
        processes = [
            subprocess.Popen(
                command,
                cwd=support.REPO_ROOT,
                env=environment(database),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while _waiting_for_the_lock(holder) < 2:
            assert time.monotonic() < deadline, "the two migrates never waited for the lock"
            assert all(p.poll() is None for p in processes), "a migrate ended without the lock"
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK_KEY)
        outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    stdouts = [out for out, _ in outputs]
    # The first builds the empty database (from the schema snapshot, or the history when
    # that is stale); the second finds it built.
    [first] = [out for out in stdouts if "No migrations to apply." not in out]
    assert "Loading the schema snapshot" in first or "Applying hzm.0001_foundation... OK" in first
    [second] = [out for out in stdouts if out is not first]
    assert "Applying" not in second and "Loading" not in second
    assert all("another migrate holds the migration lock" in err for _, err in outputs)


def _waiting_for_the_lock(conn) -> int:
    """The other sessions asking for the migration lock again and again (each waiting migrate)."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND query LIKE 'SELECT pg_try_advisory_lock(%%'"
    ).fetchone()[0]


# --- lock_timeout and retries -------------------------------------------------------------------


class Blocker:
    """Another session holding ROW EXCLUSIVE on the widgets table (an open write)."""

    def __init__(self, database: str) -> None:
        self.conn = connect(database)
        self.conn.execute("BEGIN; LOCK TABLE deployprobe_widget IN ROW EXCLUSIVE MODE")

    def someone_waits(self) -> bool:
        return bool(
            self.conn.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation' "
                "AND relation = 'deployprobe_widget'::regclass"
            ).fetchone()[0]
        )

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.execute("COMMIT")
            self.conn.close()


def test_a_migration_that_times_out_is_retried_whole(run, probe, databases):
    database = widgets_with_rows(run, probe, databases)
    probe.add("0002_add_widget_index", ADD_INDEX)
    blocker = Blocker(database)
    release = threading.Thread(target=_release_after_a_timeout, args=(blocker,))
    release.start()
    try:
        result = run(
            "migrate",
            "deployprobe",
            "--lock-backoff",
            "0.3",
            dbname=database,
            env={**probe.env, "HZM_MIGRATION_LOCK_TIMEOUT": "0.2"},
            check=False,
        )
    finally:
        release.join()
        blocker.release()
    assert result.returncode == 0, result.stderr
    assert (
        "migration deployprobe.0002_add_widget_index timed out waiting 0.2 s for a lock"
        in result.stderr
    )
    assert "it was rolled back; retrying in 0.3 s (attempt 2 of 6)" in result.stderr
    assert query(database, "SELECT to_regclass('idx_widget_name') IS NOT NULL") == [(True,)]


def _release_after_a_timeout(blocker: Blocker) -> None:
    deadline = time.monotonic() + 60
    while not blocker.someone_waits() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # > the 0.2 s lock_timeout: the first attempt has timed out by now
    blocker.release()


def test_it_gives_up_naming_the_migration(run, probe, databases):
    database = widgets_with_rows(run, probe, databases)
    probe.add("0002_add_widget_index", ADD_INDEX)
    blocker = Blocker(database)
    try:
        result = run(
            "migrate",
            "--lock-retries",
            "1",
            "--lock-backoff",
            "0.1",
            dbname=database,
            env={**probe.env, "HZM_MIGRATION_LOCK_TIMEOUT": "0.1"},
            check=False,
        )
    finally:
        blocker.release()
    assert result.returncode != 0
    assert "migration deployprobe.0002_add_widget_index failed" in result.stderr
    assert "lock timeout" in result.stderr
    assert query(database, "SELECT to_regclass('idx_widget_name')") == [(None,)]


class FakeConnection:
    in_atomic_block = False

    def get_autocommit(self) -> bool:
        return True


class LockNotAvailable(OperationalError):
    sqlstate = "55P03"


def test_a_statement_alone_is_retried_in_place():
    calls, waits, notices = [], [], []

    def execute(sql, params, many, context):
        calls.append(sql)
        if len(calls) < 3:
            raise LockNotAvailable("canceling statement due to lock timeout")
        return "done"

    retry = RetryOutsideTransactions([0.5, 1.0, 2.0], notices.append, sleep=waits.append)
    context = {"connection": FakeConnection()}
    assert retry(execute, "ALTER TABLE t ADD COLUMN c int", None, False, context) == "done"
    assert waits == [0.5, 1.0]
    assert "retrying the statement in 0.5 s (attempt 2 of 4)" in notices[0]

    FakeConnection.in_atomic_block = True  # inside a transaction: the caller retries it whole
    try:
        calls.clear()
        with pytest.raises(LockNotAvailable):
            retry(execute, "ALTER TABLE t ADD COLUMN c int", None, False, context)
        assert len(calls) == 1
    finally:
        FakeConnection.in_atomic_block = False


def test_lock_timeout_helpers():
    assert backoff_delays(4, 1.0) == [1.0, 2.0, 4.0, 8.0]
    assert backoff_delays(7, 10.0)[-1] == 30.0
    wrapped = OperationalError("x")
    wrapped.__cause__ = LockNotAvailable("y")
    assert is_lock_timeout(wrapped)
    assert not is_lock_timeout(OperationalError("connection refused"))


# --- MIGRATION_DATABASE_URL ------------------------------------------------------------------


def test_migrate_connects_with_migration_database_url(run, databases):
    owners, runtime = databases.empty(), databases.empty()
    run(
        "migrate",
        "--no-input",
        dbname=runtime,
        env={"MIGRATION_DATABASE_URL": support.database_url(owners)},
    )
    assert query(owners, "SELECT count(*) > 0 FROM django_migrations") == [(True,)]
    assert query(runtime, "SELECT to_regclass('django_migrations')") == [(None,)]
    # showmigrations is not a schema change: it reads DATABASE_URL.
    out = run(
        "showmigrations",
        "hzm",
        dbname=runtime,
        env={"MIGRATION_DATABASE_URL": support.database_url(owners)},
    ).stdout
    assert "[ ] 0001_foundation" in out


@pytest.mark.django_db
def test_call_command_keeps_its_connection():
    # The test runner creates its database with call_command("migrate"): it must never be
    # sent to MIGRATION_DATABASE_URL, here a database that does not exist.
    nowhere = {"NAME": "hzm_no_such_database", "USER": "nobody", "HOST": "", "PORT": ""}
    with override_settings(HZM_MIGRATION_DATABASE=nowhere):
        call_command("migrate", check_unapplied=True, verbosity=0)
    assert connection.settings_dict["NAME"] != "hzm_no_such_database"


@pytest.mark.django_db(transaction=True)
def test_use_database_swaps_and_restores():
    saved = connection.settings_dict
    with use_database(DEFAULT_DB_ALIAS, {**saved, "NAME": "postgres"}) as swapped:
        with swapped.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone() == ("postgres",)
    assert connection.settings_dict is saved
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone() == (saved["NAME"],)
