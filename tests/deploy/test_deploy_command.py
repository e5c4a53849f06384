"""`manage.py deploy`: the checklist in one command, stopping with the way back."""

import hzm
from tests.deploy.conftest import migration, query
from tests.deploy.test_migrate_command import ADD_INDEX

STEPS = ("[1/5] connection", "[2/5] backup", "[3/5] dry run", "[4/5] migrate", "[5/5] health")


def applied(database: str) -> list[str]:
    rows = query(
        database, "SELECT name FROM django_migrations WHERE app = 'deployprobe' ORDER BY 1"
    )
    return [name for (name,) in rows]


def test_a_deploy_runs_the_checklist(run, probe, databases, backup_dir):
    database = databases.clone()
    probe.add("0002_add_widget_index", ADD_INDEX)

    out = run("deploy", dbname=database, env=probe.env).stdout

    positions = [out.index(step) for step in STEPS]
    assert positions == sorted(positions)
    [dump] = backup_dir.glob("*.dump")
    assert dump.with_suffix(".json").is_file()
    assert "Rolled back: the database is unchanged" in out  # the dry run
    assert "Applying deployprobe.0002_add_widget_index... OK" in out
    health = out[out.index(STEPS[-1]) :].splitlines()[1:5]
    assert health == [
        "  status:     ok",
        f"  version:    {hzm.__version__}",
        "  database:   ok",
        "  migrations: up to date",
    ]
    assert f"To undo the schema change: python manage.py rollback --to-backup {dump}" in out
    assert applied(database) == ["0001_create_widgets", "0002_add_widget_index"]


def test_a_failed_migration_stops_it_with_the_rollback_command(run, probe, databases, backup_dir):
    database = databases.clone()
    probe.add("0002_add_widget_index", ADD_INDEX)
    # Not run by the dry run (atomic = False), so it fails for real, after 0002 applied.
    probe.add(
        "0003_divide_by_zero",
        migration(
            "0002_add_widget_index", 'migrations.RunSQL("SELECT 1/0", "SELECT 1")', atomic=False
        ),
    )

    result = run("deploy", dbname=database, env=probe.env, check=False)

    assert result.returncode != 0
    [dump] = backup_dir.glob("*.dump")
    assert "deploy stopped at step 4/5 (migrate)" in result.stderr
    assert "division by zero" in result.stderr
    assert f"  python manage.py rollback --to-backup {dump}\n" in result.stderr
    assert "[5/5]" not in result.stdout
    assert applied(database) == ["0001_create_widgets", "0002_add_widget_index"]
    # The printed command works: back to the state before the deploy (no probe migration).
    run("rollback", "--to-backup", str(dump), dbname=database, env=probe.env)
    assert applied(database) == []


def test_a_failed_dry_run_stops_it_before_anything_changes(run, probe, databases):
    database = databases.clone()
    failing = migration("0001_create_widgets", 'migrations.RunSQL("SELECT 1/0", "SELECT 1")')
    probe.add("0002_divide_by_zero", failing)

    result = run("deploy", "--skip-backup", dbname=database, env=probe.env, check=False)

    assert result.returncode != 0
    assert "WARNING: --skip-backup: NO BACKUP will be taken" in result.stderr
    assert "deploy stopped at step 3/5 (dry run)" in result.stderr
    assert "migration deployprobe.0002_divide_by_zero failed" in result.stderr
    assert "Nothing was changed: there is nothing to roll back." in result.stderr
    assert "[4/5]" not in result.stdout
    assert applied(database) == []
