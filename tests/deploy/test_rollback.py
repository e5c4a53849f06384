"""Rollback: to a backup's migration state, by restoring it, and every app to zero and back."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader

from hzm.deploy.backup import SIDECAR_FORMAT, state_hash
from hzm.deploy.rollback import RollbackError, Step, rollback_plan
from tests.deploy.conftest import query
from tests.deploy.test_backup_restore import two_tenants
from tests.deploy.test_migrate_command import ADD_INDEX, ADD_SCORE_SAFELY


def graph_of(edges: dict[str, list[str]]) -> MigrationGraph:
    """A migration graph from {"app.name": ["app.parent", ...]}."""
    graph = MigrationGraph()
    for node in edges:
        graph.add_node(tuple(node.split(".")), None)
    for node, parents in edges.items():
        for parent in parents:
            graph.add_dependency(None, tuple(node.split(".")), tuple(parent.split(".")))
    return graph


GRAPH = graph_of(
    {
        "a.0001": [],
        "a.0002": ["a.0001"],
        "a.0003": ["a.0002"],
        "b.0001": ["a.0001"],
        "b.0002": ["b.0001", "a.0002"],
        "c.0001": ["b.0001"],
    }
)


def test_the_plan_goes_back_newest_dependents_first():
    recorded = {"a": ["0001"], "b": ["0001"]}
    applied = {"a": ["0001", "0002", "0003"], "b": ["0001", "0002"], "c": ["0001"]}
    steps, behind = rollback_plan(recorded, applied, GRAPH)
    assert steps == [
        Step("c", "zero", ("0001",)),
        Step("b", "0001", ("0002",)),
        Step("a", "0001", ("0003", "0002")),
    ]
    assert steps[0].command == "python manage.py migrate c zero"
    assert behind == []


def test_the_plan_notes_what_the_database_lacks_and_refuses_the_unknown():
    steps, behind = rollback_plan({"a": ["0001", "0002"]}, {"a": ["0001"]}, GRAPH)
    assert (steps, behind) == ([], ["a.0002"])
    with pytest.raises(RollbackError, match=r"a\.0009 are not in this code"):
        rollback_plan({"a": ["0001", "0009"]}, {"a": ["0001"]}, GRAPH)


def probe_state(database: str) -> list[str]:
    return [
        name
        for (name,) in query(
            database, "SELECT name FROM django_migrations WHERE app = 'deployprobe' ORDER BY 1"
        )
    ]


@pytest.fixture
def moved_ahead(run, probe, databases, backup_dir) -> tuple[str, Path]:
    """(database, backup): backed up at deployprobe.0001, then migrated two further."""
    database = databases.clone()
    run("migrate", "deployprobe", "0001", dbname=database, env=probe.env)
    query(database, "INSERT INTO deployprobe_widget (name) VALUES ('kept'), ('also kept')")
    run("backup", dbname=database, env=probe.env)
    [dump] = backup_dir.glob("*.dump")
    probe.add("0002_add_widget_index", ADD_INDEX)
    probe.add("0003_add_widget_score", ADD_SCORE_SAFELY)
    run("migrate", dbname=database, env=probe.env)
    assert probe_state(database) == [
        "0001_create_widgets",
        "0002_add_widget_index",
        "0003_add_widget_score",
    ]
    return database, dump


def test_rollback_to_a_backup(run, probe, moved_ahead):
    database, dump = moved_ahead
    plan = run("rollback", "--to-backup", str(dump), "--dry-run", dbname=database, env=probe.env)
    assert "1. python manage.py migrate deployprobe 0001_create_widgets" in plan.stdout
    assert "unapplies 0003_add_widget_score, 0002_add_widget_index" in plan.stdout
    assert "Dry run: nothing done." in plan.stdout
    assert len(probe_state(database)) == 3

    out = run("rollback", "--to-backup", str(dump), dbname=database, env=probe.env).stdout

    assert "rollback: at the backup's migration state" in out
    assert probe_state(database) == ["0001_create_widgets"]
    assert query(database, "SELECT to_regclass('idx_widget_name')") == [(None,)]
    columns = query(
        database,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'deployprobe_widget' ORDER BY 1",
    )
    assert columns == [("id",), ("name",)]
    again = run("rollback", "--to-backup", "latest", dbname=database, env=probe.env).stdout
    assert "Nothing to roll back" in again


def test_rollback_by_restoring_the_backup(run, probe, moved_ahead, databases):
    database, dump = moved_ahead
    query(database, "DELETE FROM deployprobe_widget")  # lost after the backup
    target = databases.reserve()
    out = run(
        "rollback",
        "--to-backup",
        str(dump),
        "--restore",
        "--create",
        "--target-db",
        target,
        dbname=database,
        env=probe.env,
    ).stdout
    assert f"1. restore {dump.name} into database {target} (created first)" in out
    assert f"rollback: {target} restored and verified" in out
    assert probe_state(target) == ["0001_create_widgets"]
    assert query(target, "SELECT count(*) FROM deployprobe_widget") == [(2,)]


def test_every_app_goes_to_zero_and_back_with_data_in_it(run, databases, tmp_path):
    database = databases.clone()
    fixtures = sorted(
        path.stem for path in Path(settings.BASE_DIR).glob("*/fixtures/00[123]_*.json")
    )
    if fixtures:
        run("loaddata", *fixtures, dbname=database)
    two_tenants(database)
    assert query(database, "SELECT count(*) > 0 FROM app.generic_data") == [(True,)]
    # A backup taken before anything was migrated: every app's target is zero.
    nothing = tmp_path / "nothing.dump"
    nothing.write_bytes(b"")
    nothing.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": SIDECAR_FORMAT,
                "created_at": "2026-01-01T00:00:00Z",
                "database": database,
                "migration_state": state_hash({}),
                "applied_migrations": {},
            }
        )
    )
    apps = {app for (app,) in query(database, "SELECT DISTINCT app FROM django_migrations")}
    assert apps >= set(MigrationLoader(None, ignore_no_migrations=True).migrated_apps)

    down = run("rollback", "--to-backup", str(nothing), dbname=database).stdout

    assert {app for app in apps if f"python manage.py migrate {app} zero" not in down} == set()
    assert query(database, "SELECT count(*) FROM django_migrations") == [(0,)]
    assert query(database, "SELECT to_regnamespace('core')") == [(None,)]

    run("migrate", "--no-input", dbname=database)
    run("dbdoctor", dbname=database)
    assert query(database, "SELECT count(*) FROM core.users") == [(0,)]  # data goes down
