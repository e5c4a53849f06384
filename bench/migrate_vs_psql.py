"""`manage.py migrate` of an empty database against `psql -1 -f` of the schema it builds.

The reference is what a database tool would do: `pg_dump --schema-only` of a migrated
database, loaded with `psql -X -q -1 -v ON_ERROR_STOP=1 -f` into an empty one. Against it,
each in an empty database of its own (all made the same way, CREATE DATABASE from
template1 right before the run, on the same server):

- `manage.py migrate` as it runs by default: from the schema snapshot when it is up to
  date (hzm.deploy.snapshot); the script says which path it took;
- `manage.py migrate --no-snapshot`: the migration history, migration by migration;
- `psql -1 -f` of the snapshot's own SQL (what the first loads, without Python);
- and, fixed costs: `manage.py migrate` with nothing to apply, and the start-up alone
  (`manage.py version`: interpreter, settings, django.setup() with the admin's
  autodiscovery, and the exit).

The runs of a round go in an order that rotates from round to round, so none is always
first or last; medians with min-max over the rounds, and the median of the rounds' own
ratios. The roles the migrations create exist already (the first migrate made them), as
they do for every path after the first.

    .venv/bin/python bench/migrate_vs_psql.py              # ~1-2 minutes on 2 cores
    .venv/bin/python bench/migrate_vs_psql.py --repeat 3 --no-write

Uses DATABASE_URL's server (or the embedded cluster); its role must be able to CREATE
DATABASE. Scratch databases are `hzm_bench_mig_<random>_<n>`, dropped at the end. Writes
its section of bench/RESULTS.md (`## migrate vs psql -f`, the others kept; --no-write:
print only). Not part of the test suite.
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## migrate vs psql -f"
GOAL, TARGET = 5.0, 3.0
SNAPSHOT_LINE = "Loading the schema snapshot of"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds (medians taken)")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    options = parser.parse_args()

    sys.path.insert(0, str(REPO))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    from bench.scratch import write_section
    from hzm.db import snapshot as snapshot_text
    from hzm.db.operations import runtime_role
    from hzm.deploy import snapshot
    from hzm.deploy.backup import client_program

    connection.ensure_connection()
    load_before = os.getloadavg()
    major = connection.pg_version // 10000
    psql, pg_dump = client_program("psql", major), client_program("pg_dump", major)
    prefix = f"hzm_bench_mig_{uuid.uuid4().hex[:8]}"
    created: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="hzm-bench-"))

    def new_database() -> str:
        name = f"{prefix}_{len(created)}"
        admin(connection, f'CREATE DATABASE "{name}"')
        created.append(name)
        return name

    paths: dict[str, Callable[[str], float]] = {}
    times: dict[str, list[float]] = {}
    took_snapshot: list[bool] = []
    try:
        # The reference SQL: the schema dump of a database the history built.
        reference = new_database()
        migrate(connection, reference, "--no-snapshot")
        dump = folder / "schema.sql"
        run([pg_dump, "--schema-only", "-f", str(dump), "-d", conninfo(connection, reference)])
        found = snapshot.read()
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        stale = snapshot.why_not(connection, executor, snapshot.full_plan(executor), found)
        if stale:
            print(f"{stale}: the default path will be the history", file=sys.stderr)
        snapshot_sql = folder / "snapshot.sql"
        if found:
            # As migrate loads it: after the django_migrations table the recorder creates.
            with connection.schema_editor(collect_sql=True, atomic=False) as editor:
                editor.create_model(MigrationRecorder.Migration)
            recorder = "\n".join(editor.collected_sql)
            rendered = snapshot_text.render(found.template, runtime_role())
            snapshot_sql.write_text(recorder + "\n" + rendered)

        def by_default(db: str) -> float:
            seconds, out = migrate(connection, db)
            took_snapshot.append(SNAPSHOT_LINE in out)
            return seconds

        paths = {
            "migrate (default)": by_default,
            "migrate --no-snapshot": lambda db: migrate(connection, db, "--no-snapshot")[0],
            "psql -1 -f schema dump": lambda db: run_psql(connection, psql, db, dump),
        }
        if found:
            paths["psql -1 -f snapshot SQL"] = lambda db: run_psql(
                connection, psql, db, snapshot_sql
            )
        times = {label: [] for label in [*paths, "nothing to apply", "start-up"]}
        labels = list(paths)
        for round_ in range(options.repeat):
            order = labels[round_ % len(labels) :] + labels[: round_ % len(labels)]
            databases = {}
            for label in order:
                # Made right before its run: a CREATE DATABASE leaves work behind (dirty
                # buffers) that slows whatever runs next, and every path gets the same.
                databases[label] = new_database()
                times[label].append(paths[label](databases[label]))
            noop_db = databases["migrate (default)"]
            times["nothing to apply"].append(migrate(connection, noop_db)[0])
            times["start-up"].append(startup())
            for name in databases.values():
                drop(connection, name, created)
            print(
                f"round {round_ + 1}/{options.repeat}: "
                + ", ".join(f"{label} {times[label][-1]:.2f}s" for label in times),
                file=sys.stderr,
            )
    finally:
        for name in list(created):
            drop(connection, name, created)
        shutil.rmtree(folder, ignore_errors=True)

    loads = (load_before, os.getloadavg())
    report = format_report(connection, options.repeat, times, took_snapshot, found, loads)
    print(report)
    if not options.no_write:
        write_section(SECTION.removeprefix("## "), report)
        print(f"wrote its section of {RESULTS.relative_to(REPO)}")


def admin(connection, statement: str) -> None:
    """CREATE/DROP DATABASE, outside any transaction."""
    with connection.cursor() as cursor:
        cursor.execute(statement)


def drop(connection, name: str, created: list[str]) -> None:
    admin(connection, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    created.remove(name)


def conninfo(connection, name: str) -> str:
    from hzm.deploy.connection import libpq_connection

    return libpq_connection(connection, dbname=name)[0]


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def migrate(connection, name: str, *args: str) -> tuple[float, str]:
    from tests.support import database_url

    env = {**os.environ, "DATABASE_URL": database_url(name)}
    env.pop("MIGRATION_DATABASE_URL", None)
    return run([sys.executable, "manage.py", "migrate", "--no-input", *args], env)


def run_psql(connection, psql: str, name: str, sql_file: Path) -> float:
    from hzm.deploy.connection import libpq_connection

    info, env = libpq_connection(connection, dbname=name)
    return run(
        [psql, "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", info, "-f", str(sql_file)], env
    )[0]


def startup() -> float:
    """`manage.py version`: the interpreter, the settings, django.setup() and the exit."""
    return run([sys.executable, "manage.py", "version"])[0]


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


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def format_report(connection, repeat, times, took_snapshot, found, loads) -> str:
    psql = times["psql -1 -f schema dump"]
    reference = statistics.median(psql)
    rounds = [m / p for m, p in zip(times["migrate (default)"], psql, strict=True)]
    load = " and ".join(f"{a:.1f} {b:.1f} {c:.1f}" for a, b, c in loads)

    def ratio(label: str) -> str:
        values = times[label]
        per_round = statistics.median(v / p for v, p in zip(values, psql, strict=True))
        return f"{statistics.median(values) / reference:.1f}x ({per_round:.1f}x)"

    rows = [
        ("`manage.py migrate` (default)", "migrate (default)"),
        ("`manage.py migrate --no-snapshot` (the history)", "migrate --no-snapshot"),
        ("`psql -1 -f` of the schema dump (the reference)", "psql -1 -f schema dump"),
        ("`psql -1 -f` of the snapshot's SQL", "psql -1 -f snapshot SQL"),
        ("`manage.py migrate`, nothing to apply", "nothing to apply"),
        ("start-up alone: `manage.py version`", "start-up"),
    ]
    table = "\n".join(
        f"| {text} | {spread(times[label])} | {ratio(label)} |"
        for text, label in rows
        if label in times
    )
    default = statistics.median(times["migrate (default)"]) / reference
    if default <= TARGET:
        verdict = f"goal (<= {GOAL:g}x) met, target ({TARGET:g}x) met"
    elif default <= GOAL:
        verdict = f"goal (<= {GOAL:g}x) met; target ({TARGET:g}x) not met"
    else:
        verdict = f"goal (<= {GOAL:g}x) NOT met"
    path = (
        "from the schema snapshot in every round"
        if all(took_snapshot)
        else "by the HISTORY in some rounds: the snapshot was stale or missing"
    )
    return (
        f"{SECTION}\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine(connection)}.\n"
        f"Command: `.venv/bin/python bench/migrate_vs_psql.py --repeat {repeat}`; {repeat} "
        "rounds, each path into an empty database of its own (CREATE DATABASE), in an order "
        "rotating from round to round.\n\n"
        "| | seconds: median (min-max) | vs psql -1 -f of the dump: of the medians "
        "(median of the rounds' ratios) |\n|---|---|---|\n"
        f"{table}\n\n"
        f"`migrate` of an empty database: **{default:.1f}x** `psql -1 -f` of the schema it "
        f"builds: {verdict}. It ran {path}"
        f"{f' ({len(found.migrations)} migrations)' if found else ''}; the rounds' own ratios: "
        f"{', '.join(f'{r:.1f}x' for r in rounds)}. Load average (1, 5, 15 min) "
        f"before and after: {load} (the machine is shared).\n"
        "Where the default's time goes: the start-up (interpreter, Django, admin "
        "autodiscovery), then the system checks (the URLconf: the API's pydantic models), "
        "the migration graph, the snapshot's SQL (as psql runs it), and post_migrate "
        "(one render of the final model state, content types, permissions); manage.py "
        "skips the interpreter's garbage collections at exit (gc.freeze(), some 0.2 s of "
        "every command on this machine). The history "
        "spends most of its time re-rendering model states (ProjectState.reload_model after "
        "each AddIndex and AddConstraint on a table related to core.Tenant), not in SQL.\n"
    )


if __name__ == "__main__":
    main()
