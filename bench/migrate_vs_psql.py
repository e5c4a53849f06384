"""`manage.py migrate` from an empty database against `psql -f` of the same SQL, side by side.

The raw SQL is what sqlmigrate prints for every migration, in plan order, each generated
against a database migrated up to the one before it (so introspecting operations see
what they would see in a real run); atomic migrations are wrapped in BEGIN/COMMIT as
sqlmigrate shows them. Each repetition creates two fresh databases on the server of
DATABASE_URL and times, in alternating order, `python manage.py migrate --no-input` on one
and `psql -X -q -v ON_ERROR_STOP=1 -f <sql>` on the other. Also timed: migrate with nothing
to apply (interpreter start, Django setup, system checks, loading the migration graph).

    DATABASE_URL=postgresql://postgres@/hzm?host=/tmp/devpg \
        .venv/bin/python bench/migrate_vs_psql.py

Needs a role that may CREATE DATABASE. Prints the numbers and appends a section to
bench/RESULTS.md (--no-write: print only). Not part of the test suite.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
HEADER = "# Benchmark results\n\nNumbers measured by the scripts in bench/ (see bench/README.md).\n"
GOAL = 5.0
PROFILE_NOTE = (
    "Where migrate's time goes (cProfile of an in-process migrate of an empty database): "
    "about three quarters is Django re-rendering model states (ProjectState.reload_model "
    "after each CreateModel, AddIndex and AddConstraint), a tenth executing the SQL; the "
    "rest, with the fixed start above, is Python. So the gap is Django's migration "
    "executor, not the toolkit's operations (their SQL is the same in both runs), and "
    "it grows with the number of separate AddIndex/AddConstraint operations.\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (median taken)")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    options = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("set DATABASE_URL (the server to benchmark on; scratch databases are made there)")

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
    import django

    django.setup()
    from django.db import connection

    from hzm.deploy.backup import client_program

    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    created: list[str] = []

    def new_database() -> str:
        name = f"{prefix}_{len(created)}"
        admin(connection, f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    try:
        sql_file = Path(tempfile.mkdtemp(prefix="hzm-bench-")) / "migrations.sql"
        statements = generate_sql(connection, new_database(), sql_file)
        psql = client_program("psql", connection.pg_version // 10000)
        migrate_times, psql_times, noop_times = [], [], []
        for repetition in range(options.repeat):
            django_db, psql_db = new_database(), new_database()
            runs = [
                ("migrate", lambda db=django_db: migrate(connection, db)),
                ("psql", lambda db=psql_db: run_psql(connection, psql, db, sql_file)),
            ]
            for label, run in runs if repetition % 2 == 0 else reversed(runs):
                (migrate_times if label == "migrate" else psql_times).append(run())
            noop_times.append(migrate(connection, django_db))
            for name in (django_db, psql_db):
                drop(connection, name, created)
    finally:
        for name in list(created):
            drop(connection, name, created)
        if "sql_file" in locals():
            shutil.rmtree(sql_file.parent, ignore_errors=True)

    result = {
        "migrate": statistics.median(migrate_times),
        "psql": statistics.median(psql_times),
        "noop": statistics.median(noop_times),
    }
    report = format_report(
        connection, options.repeat, statements, result, migrate_times, psql_times
    )
    print(report)
    if not options.no_write:
        existing = RESULTS.read_text() if RESULTS.exists() else HEADER
        RESULTS.write_text(existing.rstrip("\n") + "\n\n" + report)
        print(f"appended to {RESULTS.relative_to(REPO)}")


def admin(connection, statement: str) -> None:
    """Run a statement that cannot run in a transaction (CREATE/DROP DATABASE)."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(statement)


def drop(connection, name: str, created: list[str]) -> None:
    admin(connection, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    created.remove(name)


def database_url(connection, name: str) -> str:
    from tests.support import database_url as url

    return url(name)


def generate_sql(connection, scratch: str, path: Path) -> int:
    """Write every migration's SQL, in plan order, to `path`; return the statement count."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    from hzm.deploy.connection import use_database

    lines, count = [], 0
    with use_database("default", {**connection.settings_dict, "NAME": scratch}):
        executor = MigrationExecutor(connections["default"])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        state = executor._create_project_state(with_applied_migrations=True)
        for migration, _ in plan:
            collected = executor.loader.collect_sql([(migration, False)])
            body = [s for s in collected if not s.startswith("--")]
            count += len(body)
            lines.append(f"-- {migration.app_label}.{migration.name}")
            lines += ["BEGIN;", *body, "COMMIT;"] if migration.atomic else body
            state = executor.apply_migration(state, migration)
    path.write_text("\n".join(lines) + "\n")
    return count


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def migrate(connection, name: str) -> float:
    env = {**os.environ, "DATABASE_URL": database_url(connection, name)}
    env.pop("MIGRATION_DATABASE_URL", None)
    return timed([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env)


def run_psql(connection, psql: str, name: str, sql_file: Path) -> float:
    from hzm.deploy.connection import libpq_connection

    conninfo, env = libpq_connection(connection, dbname=name)
    return timed(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", str(sql_file)], env
    )


def machine(connection) -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} CPU(s) (nproc), {cpu}; PostgreSQL {version}; "
        f"Python {platform.python_version()}; {platform.system()} {platform.release()}"
    )


def format_report(connection, repeat, statements, result, migrate_times, psql_times) -> str:
    ratio = result["migrate"] / result["psql"]
    per_run = statistics.median(m / p for m, p in zip(migrate_times, psql_times, strict=True))
    without_start = (result["migrate"] - result["noop"]) / result["psql"]
    verdict = "met" if ratio <= GOAL else "NOT met"
    seconds = ", ".join(f"{m:.2f}/{p:.2f}" for m, p in zip(migrate_times, psql_times, strict=True))
    return (
        "## migrate vs psql -f\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine(connection)}.\n"
        "Command: `DATABASE_URL=... .venv/bin/python bench/migrate_vs_psql.py "
        f"--repeat {repeat}` ({statements} SQL statements from sqlmigrate, every migration).\n\n"
        "| | median seconds |\n|---|---|\n"
        f"| `manage.py migrate` (empty database) | {result['migrate']:.3f} |\n"
        f"| `psql -f` (the same SQL) | {result['psql']:.3f} |\n"
        f"| `manage.py migrate` with nothing to apply | {result['noop']:.3f} |\n\n"
        f"Ratio migrate / psql -f: **{ratio:.1f}x** of the medians, {per_run:.1f}x the median "
        f"of the runs' ratios (goal <= {GOAL:g}x: {verdict}). Without "
        f"the fixed cost of starting (interpreter, Django, checks, migration graph): "
        f"{without_start:.1f}x.\n"
        f"Each run, migrate/psql seconds: {seconds}.\n"
        "migrate also does what psql -f does not: records django_migrations, renders model "
        "states, and creates content types and permissions (post_migrate).\n"
        f"{PROFILE_NOTE}"
    )


if __name__ == "__main__":
    main()
