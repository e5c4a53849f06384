"""AddNotNullColumnSafely on a live table: the seed's zero-downtime steps, for real.

Each test runs the operation on a scratch database (so its batches really commit),
with a table in a scratch schema built from a ProjectState, as tests/db does.
"""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connection, migrations, models
from django.db import transaction as db_transaction
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter

from hzm import progress
from hzm.db import operations as ops
from hzm.db import sql
from hzm.deploy.connection import use_database
from tests.deploy.conftest import ROLE, connect

APP = "nntest"
SCHEMA = "hzm_nntest"
TABLE = f"{SCHEMA}.gadgets"
ROWS = 20_000
SCORE = models.IntegerField(db_default=-1)
OPERATION = ops.AddNotNullColumnSafely("gadget", "score", SCORE, backfill="id * 2", batch_size=200)


def apply(operation, state: ProjectState, *, backwards=False, collect=False):
    """Run `operation` forwards (or backwards) outside any transaction; (state, collected SQL)."""
    new_state = state.clone()
    operation.state_forwards(APP, new_state)
    with connection.schema_editor(collect_sql=collect, atomic=False) as editor:
        if backwards:
            operation.database_backwards(APP, editor, new_state, state)
        else:
            operation.database_forwards(APP, editor, state, new_state)
    return new_state, getattr(editor, "collected_sql", [])


def column(database: str) -> tuple | None:
    """(nullable, default) of gadgets.score, or None when there is no such column."""
    rows = _query(
        database,
        "SELECT is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'gadgets' AND column_name = 'score'",
        [SCHEMA],
    )
    return rows[0] if rows else None


def _query(database: str, statement: str, params=None) -> list[tuple]:
    with connect(database) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def gadgets(databases, django_db_blocker) -> Iterator[tuple[str, ProjectState]]:
    """(database, state): a gadgets table with ROWS rows, the default connection on it."""
    database = databases.empty()
    settings = {**connection.settings_dict, "NAME": database}
    with django_db_blocker.unblock(), use_database(DEFAULT_DB_ALIAS, settings):
        state, _ = apply(ops.CreateSchema(SCHEMA), ProjectState())
        create = migrations.CreateModel(
            "Gadget",
            fields=[("id", models.AutoField(primary_key=True)), ("name", models.TextField())],
            options={"db_table": f'{SCHEMA}"."gadgets'},
        )
        state, _ = apply(create, state)
        _query(
            database,
            f"INSERT INTO {TABLE} (name) SELECT 'g' || n FROM generate_series(1, {ROWS}) n",
        )
        yield database, state


def test_protocol():
    assert OPERATION.deconstruct() == (
        "AddNotNullColumnSafely",
        [],
        {
            "model_name": "gadget",
            "name": "score",
            "field": SCORE,
            "backfill": "id * 2",
            "batch_size": 200,
        },
    )
    plain = ops.AddNotNullColumnSafely("gadget", "score", SCORE)
    assert plain.deconstruct()[2] == {"model_name": "gadget", "name": "score", "field": SCORE}
    assert plain.describe() == (
        "Add NOT NULL field score to gadget without blocking writes (backfill in batches of 1000)"
    )
    assert plain.migration_name_fragment == "gadget_score"
    assert plain.reversible
    written = MigrationWriter.serialize(OPERATION)[0]
    assert written.startswith("hzm.db.operations.AddNotNullColumnSafely(")


def test_the_state_is_that_of_add_field():
    create = migrations.CreateModel("Gadget", fields=[("id", models.AutoField(primary_key=True))])
    state = ProjectState()
    create.state_forwards(APP, state)
    ours, django = state.clone(), state.clone()
    OPERATION.state_forwards(APP, ours)
    migrations.AddField("gadget", "score", SCORE).state_forwards(APP, django)
    field = ours.models[APP, "gadget"].fields["score"]
    assert field.deconstruct() == django.models[APP, "gadget"].fields["score"].deconstruct()
    assert field.null is False


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (models.IntegerField(null=True, db_default=1), "null=True"),
        (models.IntegerField(default=1), "db_default"),
        (models.IntegerField(db_default=1, unique=True), "only plain columns"),
        (models.ForeignKey("x.y", models.CASCADE, db_default=1), "only plain columns"),
    ],
)
def test_what_it_refuses_when_the_migration_loads(field, message):
    with pytest.raises(ValueError, match=message):
        ops.AddNotNullColumnSafely("gadget", "score", field)
    with pytest.raises(ValueError, match="batch size"):
        ops.AddNotNullColumnSafely("gadget", "score", SCORE, batch_size=0)


def test_sqlmigrate_shows_every_step(gadgets):
    _, state = gadgets
    _, collected = apply(OPERATION, state, collect=True)
    ref = '"hzm_nntest"."gadgets"'
    assert collected == [
        # The default travels as a parameter; psycopg quotes -1 as " -1" (never "--").
        f'ALTER TABLE {ref} ADD COLUMN IF NOT EXISTS "score" integer, '
        'ALTER COLUMN "score" SET DEFAULT  -1;',
        sql.backfill_in_batches(SCHEMA, "gadgets", "score", "id", value="id * 2", batch_size=200)
        + ";",
        f'ALTER TABLE {ref} DROP CONSTRAINT IF EXISTS "chk_gadgets_score_not_null", '
        'ADD CONSTRAINT "chk_gadgets_score_not_null" CHECK ("score" IS NOT NULL) NOT VALID;',
        f'ALTER TABLE {ref} VALIDATE CONSTRAINT "chk_gadgets_score_not_null";',
        f'ALTER TABLE {ref} ALTER COLUMN "score" SET NOT NULL;',
        f'ALTER TABLE {ref} DROP CONSTRAINT IF EXISTS "chk_gadgets_score_not_null";',
    ]
    _, collected = apply(OPERATION, state, backwards=True, collect=True)
    assert collected == [f'ALTER TABLE {ref} DROP COLUMN "score";']


def test_it_refuses_to_run_inside_a_transaction(gadgets):
    _, state = gadgets
    with pytest.raises(NotSupportedError, match="atomic = False"):
        with db_transaction.atomic(), connection.schema_editor(atomic=False) as editor:
            OPERATION.database_forwards(APP, editor, state, state.clone())


def test_a_live_table_keeps_taking_writes_from_old_code(gadgets, capsys):
    database, state = gadgets
    stop, inserted = threading.Event(), []

    def old_code() -> None:
        # Code deployed before the migration: it does not know the column.
        with psycopg.connect(**_params(database), autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(f"INSERT INTO {TABLE} (name) VALUES ('late') RETURNING id")
                inserted.append((row.fetchone()[0], time.monotonic()))

    writer = threading.Thread(target=old_code)
    writer.start()
    try:
        while len(inserted) < 20:
            time.sleep(0.01)
        started = time.monotonic()
        apply(OPERATION, state)
        finished = time.monotonic()
    finally:
        stop.set()
        writer.join()

    assert any(started < at < finished for _, at in inserted), "no write overlapped the run"
    assert column(database) == ("NO", "'-1'::integer")
    assert (
        _query(
            database,
            "SELECT conname FROM pg_constraint WHERE conname = 'chk_gadgets_score_not_null'",
        )
        == []
    )
    by_value = dict(
        _query(
            database,
            f"SELECT CASE WHEN score = id * 2 THEN 'backfilled' WHEN score = -1 THEN 'default' "
            f"ELSE 'wrong' END, count(*) FROM {TABLE} GROUP BY 1",
        )
    )
    assert set(by_value) == {"backfilled", "default"}, by_value
    assert by_value["backfilled"] >= ROWS
    assert _query(database, f"SELECT count(*) FROM {TABLE}")[0][0] == ROWS + len(inserted)
    progress = capsys.readouterr().out
    assert f"backfill {TABLE}.score: " in progress
    assert "rows filled" in progress


def test_the_backfill_reports_progress_whatever_the_client_s_notice_level(
    gadgets, capsys, monkeypatch
):
    _database, state = gadgets
    monkeypatch.setattr(progress, "INTERVAL", 0)  # a line per batch
    with connection.cursor() as cursor:
        # As PGOPTIONS='-c client_min_messages=warning' sets it: notices would not arrive.
        cursor.execute("SET client_min_messages = warning")
    apply(OPERATION, state)
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == ROWS // 200  # a line per batch
    assert lines[-1].startswith(f"backfill {TABLE}.score: {ROWS} rows filled, keys up to ")
    assert lines[-1].endswith(" rows/s)") and " s, " in lines[-1]
    with connection.cursor() as cursor:
        cursor.execute("SHOW client_min_messages")
        assert cursor.fetchone() == ("warning",)  # the session's own setting, put back


def test_the_backfill_is_quiet_where_the_command_is(gadgets, capsys):
    database, state = gadgets
    with progress.reporting(None):  # what migrate -v 0 sets
        apply(OPERATION, state)
    assert capsys.readouterr().out == ""
    assert column(database) == ("NO", "'-1'::integer")


def test_a_rerun_continues_where_it_stopped(gadgets):
    database, state = gadgets
    # An interrupted run: the column added, the first half filled, then it stopped.
    _query(database, sql.add_nullable_column(SCHEMA, "gadgets", "score", "integer", "-1"))
    _query(database, f"UPDATE {TABLE} SET score = id * 2 WHERE id <= {ROWS // 2}")
    before = _query(database, f"SELECT id, xmin::text FROM {TABLE} WHERE id <= {ROWS // 2}")

    apply(OPERATION, state)

    after = _query(database, f"SELECT id, xmin::text FROM {TABLE} WHERE id <= {ROWS // 2}")
    assert sorted(after) == sorted(before), "rows already filled were updated again"
    assert _query(database, f"SELECT count(*) FROM {TABLE} WHERE score <> id * 2") == [(0,)]
    assert column(database)[0] == "NO"


def test_backwards_drops_the_column_and_forwards_adds_it_again(gadgets):
    database, state = gadgets
    new_state, _ = apply(OPERATION, state)
    apply(OPERATION, state, backwards=True)
    assert column(database) is None
    apply(OPERATION, state)
    assert column(database) == ("NO", "'-1'::integer")
    assert "score" in new_state.models[APP, "gadget"].fields


def test_it_refuses_when_row_level_security_hides_rows(gadgets):
    database, state = gadgets
    owner = f"{ROLE}_own"
    _query(
        database,
        f"CREATE ROLE {owner} NOLOGIN NOBYPASSRLS; GRANT USAGE, CREATE ON SCHEMA {SCHEMA} TO "
        f"{owner}; ALTER TABLE {TABLE} OWNER TO {owner}; ALTER TABLE {TABLE} ENABLE ROW LEVEL "
        f"SECURITY; ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY",
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {owner}")
        with pytest.raises(Exception, match=f"row level security hides rows from role {owner}"):
            apply(OPERATION, state)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
        _query(database, f"DROP TABLE {TABLE}; DROP OWNED BY {owner}; DROP ROLE {owner}")


def _params(database: str) -> dict:
    from tests import support

    return support.server_params(database)
