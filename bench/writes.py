"""Writes of generic data (issue 15): what the triggers cost a one-row write, whether a
tenant's size changes it, and the service's bulk load against the ORM and COPY.

    .venv/bin/python -m bench.writes [--quick] [--no-write] [--output FILE]

The server is the project's (DATABASE_URL, or the embedded cluster); the benchmark creates
its own database there (hzm_bench_wr_<random>), migrates it, and drops it at the end, also
on Ctrl-C or SIGTERM (bench/scratch.py). The development database is never touched. The
login role must be able to create databases and to switch to the runtime role.

1. One-row INSERT and UPDATE through the runtime path: the service's own statements
   (generic_data.services.INSERT_ROWS and UPDATE_ROW) inside an open tenant context, as the
   runtime role, with every trigger (touch, audit, record counts, unique values; row level
   security and the foreign keys always apply), against the same statements with the
   table's triggers disabled (DISABLE TRIGGER USER: the foreign keys stay), as the runtime
   role and as the owner (a superuser here: no row level security either, the bare
   write). Each statement is timed alone, from the client (Django's cursor, as the
   service runs it); a round is one transaction of each variant, rolled back afterwards,
   so every variant writes into the same table of the same size; the variants' order
   rotates every round. The table is the 1k-row tenant's of 2.
2. One-row insert throughput, services.create_row() each in a tenant context (a
   transaction of its own, committed, as a request does), for a tenant whose table holds
   1,000 rows and one whose table holds 1,000,000 (100,000 with --quick), both with a
   record limit (max_records), their calls alternating one by one, each timed (rows/s:
   one over the median call, robust to the machine's other work). Their rows were loaded as
   the owner with triggers off (INSERT ... SELECT generate_series, the GIN indexes rebuilt,
   the unique values and record counts filled in, VACUUM ANALYZE): setup, not measured.
3. A bulk load of 100,000 rows (10,000 with --quick) into one table: one
   services.create_rows() call (validation, JSON, every trigger, as the runtime role)
   against Django's bulk_create (batches of 5,000, as the runtime role, every trigger; no
   validation, and prices as floats, as JSONField cannot store a Decimal) and COPY as the
   owner into the table with its indexes but without triggers or foreign keys
   (session_replication_role = replica), and, for reference, COPY as the owner with every
   trigger. Each path starts from an empty table (TRUNCATE app.generic_data and its unique
   values, ops.audit_logs; record counts to 0); rounds in rotating order.

Medians are printed with the range over the rounds, and the ratios of the medians; then
the goals of issue 15 and whether each is met. Written as the section `## writes` of
bench/RESULTS.md (only that section is replaced; --no-write: print only).
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench.scratch import machine as machine_lines  # noqa: E402
from bench.scratch import say, scratch_database, write_section  # noqa: E402
from bench.tenant_data import FIELDS, rows_for  # noqa: E402

G = "app.generic_data"
MAX_RECORDS = 100_000_000  # a limit, so that the limit's check runs, never reached
GOALS = {"one_row": 0.7, "tenant_size": 0.10, "bulk_create": 2.5, "copy": 0.3, "round_trips": 4}

# The rows of the tenants' tables (setup only), as the service would store them.
LOAD_ROWS = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data, created_by, updated_by)
SELECT %(tenant)s, %(project)s, %(table)s, jsonb_build_object(
  'title', 'word' || n %% 2000 || ' word' || (n * 7) %% 2000 || ' cotton shirt',
  'sku', 'L-' || n,
  'price', n %% 1000 + 0.99,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'qty', n %% 97,
  'day', (date '2024-01-01' + n %% 365)::text), %(user)s, %(user)s
FROM generate_series(1, %(rows)s) AS n
"""
LOAD_UNIQUE = """
INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
SELECT table_id, 'sku', data ->> 'sku', id FROM app.generic_data WHERE table_id = %s
"""
LOAD_COUNT = """
INSERT INTO app.record_counts AS c (table_id, live_records)
SELECT %s, count(*) FROM app.generic_data WHERE table_id = %s AND is_deleted = false
ON CONFLICT (table_id) DO UPDATE SET live_records = excluded.live_records
"""
GIN_INDEXES = {
    "idx_generic_data_search": "CREATE INDEX idx_generic_data_search ON app.generic_data "
    "USING gin (to_tsvector('english'::regconfig, search_text))",
    "idx_generic_data_jsonb": "CREATE INDEX idx_generic_data_jsonb ON app.generic_data "
    "USING gin (data)",
}


# --- Plumbing ------------------------------------------------------------------------------------


def sql(statement: str, params: Any = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}" if seconds < 0.001 else f"{seconds * 1000:.2f}"


def spread(values: list[float], show: Callable[[float], str]) -> str:
    return f"{show(statistics.median(values))} ({show(min(values))}-{show(max(values))})"


def rotated(items: list[Any], round_: int) -> list[Any]:
    shift = round_ % len(items)
    return items[shift:] + items[:shift]


@dataclass
class Tenant:
    tenant: int
    user: int
    project: int
    table: int


def make_tenant(n: int) -> Tenant:
    """A tenant with a user, a project and a table 'items' defined through the service."""
    from core.models import Project, User
    from core.models import Tenant as TenantModel
    from generic_data import services
    from hzm.db.context import tenant_context
    from tests.factories import ensure_tenant_defaults

    ensure_tenant_defaults()
    tenant = TenantModel.objects.create(
        name=f"Writes {n}", slug=f"writes-{n}", max_records=MAX_RECORDS, max_tables_per_project=None
    )
    user = User.objects.create(tenant=tenant, email=f"writes{n}@example.com", password="!")
    project = Project.objects.create(
        tenant=tenant, user=user, name=f"Writes {n}", api_key=f"writes-{n}"
    )
    with tenant_context(tenant.pk, user.pk):
        table = services.define_table(project.pk, "items", FIELDS)
    return Tenant(tenant.pk, user.pk, project.pk, table.id)


def stored(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the service stores it (the decimal a number)."""
    return {**row, "price": Decimal(row["price"])}


def load(tenant: Tenant, rows: int) -> None:
    """`rows` rows in the tenant's table, as the owner with the triggers off (setup)."""
    say(f"loading {rows:,} rows for tenant {tenant.tenant}")
    started = time.perf_counter()
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        sql("SET LOCAL maintenance_work_mem = '256MB'")
        for name in GIN_INDEXES:
            sql(f"DROP INDEX app.{name}")
        sql(
            LOAD_ROWS,
            {
                "tenant": tenant.tenant,
                "project": tenant.project,
                "table": tenant.table,
                "user": tenant.user,
                "rows": rows,
            },
        )
        sql(LOAD_UNIQUE, [tenant.table])
        sql(LOAD_COUNT, [tenant.table, tenant.table])
        for statement in GIN_INDEXES.values():
            sql(statement)
    vacuum()
    say(f"loaded in {time.perf_counter() - started:.0f} s")


def vacuum() -> None:
    connection.ensure_connection()
    raw = connection.connection
    autocommit = raw.autocommit
    raw.autocommit = True
    try:
        raw.execute(f"VACUUM ANALYZE {G}, app.generic_data_unique, app.record_counts")
    finally:
        raw.autocommit = autocommit


# --- Round trips ---------------------------------------------------------------------------------


@contextmanager
def round_trips() -> Iterator[list[str]]:
    sent: list[str] = []

    def record(execute: Callable[..., Any], statement: str, *args: Any) -> Any:
        sent.append(statement)
        return execute(statement, *args)

    with connection.execute_wrapper(record):
        yield sent


def count_round_trips(tenant: Tenant) -> dict[str, int]:
    """Statements services.create_row() and update_row() send inside an open context."""
    from generic_data import services
    from hzm.db.context import tenant_context

    with transaction.atomic():
        with tenant_context(tenant.tenant, tenant.user):
            with round_trips() as insert:
                row = services.create_row(tenant.project, "items", rows_for("rt", 1)[0])
            with round_trips() as update:
                services.update_row(tenant.project, "items", row.id, {"qty": 1000})
        transaction.set_rollback(True)
    return {"create_row": len(insert), "update_row": len(update)}


# --- 1. One-row writes: every trigger against none -----------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    runtime: bool
    triggers: bool


VARIANTS = [
    Variant("all", "runtime role, every trigger", True, True),
    Variant("off", "runtime role, triggers disabled", True, False),
    Variant("bare", "owner (superuser), triggers disabled", False, False),
]


def one_row_round(
    tenant: Tenant, kind: str, variant: Variant, count: int, ids: list[int], tag: str
) -> list[float]:
    """The times of `count` one-row statements of `kind`, in a transaction rolled back."""
    from generic_data import services
    from generic_data.schema import dumps
    from hzm.db.context import sign_context, tenant_context

    rows = [stored(row) for row in rows_for(tag, count)]
    if kind == "insert":
        statement = services.INSERT_ROWS.format(returning="id")
        params = [[tenant.project, tenant.table, dumps([row])] for row in rows]
    else:
        statement = services.UPDATE_ROW
        params = [[dumps(row), row_id] for row, row_id in zip(rows, ids, strict=False)]
    times = []
    with transaction.atomic():
        if not variant.triggers:
            sql(f"ALTER TABLE {G} DISABLE TRIGGER USER")
        context = tenant_context(tenant.tenant, tenant.user) if variant.runtime else nullcontext()
        with context:
            with connection.cursor() as cursor:
                if not variant.runtime:
                    # The owner's own signed context (hzm 0006): app.set_context() names none.
                    sign_context(cursor, tenant.tenant, tenant.user)
                for values in params:
                    started = time.perf_counter()
                    cursor.execute(statement, values)
                    cursor.fetchall()
                    times.append(time.perf_counter() - started)
        transaction.set_rollback(True)
    return times


def bench_one_row(tenant: Tenant, rounds: int, count: int) -> tuple[list[str], dict[str, float]]:
    ids = [
        row_id
        for (row_id,) in sql(
            f"SELECT id FROM {G} WHERE table_id = %s ORDER BY id LIMIT %s", [tenant.table, count]
        )
    ]
    pooled: dict[tuple[str, str], list[float]] = {}
    per_round: dict[tuple[str, str], list[float]] = {}
    for kind in ("insert", "update"):
        for variant in VARIANTS:  # warm-up: plans, caches
            one_row_round(tenant, kind, variant, min(count, 20), ids, "warm")
        for round_ in range(rounds):
            for variant in rotated(VARIANTS, round_):
                times = one_row_round(tenant, kind, variant, count, ids, f"r{round_}")
                pooled.setdefault((kind, variant.key), []).extend(times)
                per_round.setdefault((kind, variant.key), []).append(statistics.median(times))
    lines = [
        f"{rounds} rounds of {count} one-row statements per variant and kind, each statement "
        "timed from the client; the median of all of a variant's statements, and in brackets "
        "the range of the rounds' medians. Ratios: of the medians (of the rounds' ratios). "
        "The table: the 1k-row tenant's.",
        "",
        "| statement | "
        + " | ".join(v.label for v in VARIANTS)
        + " | every trigger vs triggers disabled (runtime) | vs the bare owner |",
        "|---|" + "---:|" * (len(VARIANTS) + 2),
    ]
    ratios = {}
    for kind in ("insert", "update"):
        med = {v.key: statistics.median(pooled[kind, v.key]) for v in VARIANTS}
        cells = []
        for base in ("off", "bare"):
            ratios[f"{kind}_{base}"] = med[base] / med["all"]
            of_rounds = statistics.median(
                b / a for a, b in zip(per_round[kind, "all"], per_round[kind, base], strict=True)
            )
            cells.append(f"{ratios[f'{kind}_{base}']:.2f}x ({of_rounds:.2f}x)")
        times = " | ".join(
            f"{ms(med[v.key])} ({ms(min(per_round[kind, v.key]))}-"
            f"{ms(max(per_round[kind, v.key]))}) ms"
            for v in VARIANTS
        )
        lines.append(f"| one-row {kind.upper()} | {times} | {' | '.join(cells)} |")
    return lines, ratios


# --- 2. A tenant of 1k rows against one of 1M ----------------------------------------------------


def bench_tenant_size(
    small: Tenant, large: Tenant, sizes: tuple[int, int], rounds: int, count: int
) -> tuple[list[str], float]:
    """create_row() for the two tenants in turn, call by call, each call timed."""
    from generic_data import services
    from hzm.db.context import tenant_context

    def create(tenant: Tenant, row: dict[str, Any]) -> float:
        started = time.perf_counter()
        with tenant_context(tenant.tenant, tenant.user):
            services.create_row(tenant.project, "items", row)
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"small": [], "large": []}
    per_round: dict[str, list[float]] = {"small": [], "large": []}
    for key, tenant in (("small", small), ("large", large)):  # warm-up
        for row in rows_for(f"warm-{key}", 20):
            create(tenant, row)
    for round_ in range(rounds):
        order = rotated([("small", small), ("large", large)], round_)
        rows = {key: rows_for(f"{key}{round_}", count) for key in times}
        this_round: dict[str, list[float]] = {"small": [], "large": []}
        for n in range(count):
            for key, tenant in order:
                this_round[key].append(create(tenant, rows[key][n]))
        for key, values in this_round.items():
            times[key] += values
            per_round[key].append(1 / statistics.median(values))
    rate = {key: 1 / statistics.median(values) for key, values in times.items()}
    difference = abs(rate["large"] - rate["small"]) / rate["small"]

    def shown(key: str) -> str:
        return (
            f"{rate[key]:,.0f} ({min(per_round[key]):,.0f}-{max(per_round[key]):,.0f}); "
            f"{len(times[key]) / sum(times[key]):,.0f}"
        )

    lines = [
        f"{rounds} rounds of {count} services.create_row() calls per tenant, each in a tenant "
        "context of its own (a transaction, committed), the two tenants' calls alternating "
        "one by one; each call timed. Rows/s: one over the median call (in brackets the "
        "range of the rounds'); after the semicolon calls over total time (outliers "
        "included).",
        "",
        "| tenant | rows in its table at the start | rows/s | vs the 1k-row tenant |",
        "|---|---:|---:|---:|",
        f"| small | {sizes[0]:,} | {shown('small')} | 1.00x |",
        f"| large | {sizes[1]:,} | {shown('large')} | {rate['large'] / rate['small']:.2f}x |",
    ]
    return lines, difference


# --- 3. Bulk load --------------------------------------------------------------------------------


def empty_table(tenant: Tenant) -> None:
    """Every path starts from the same, empty table (and trail)."""
    with transaction.atomic():
        sql(f"TRUNCATE {G}, ops.audit_logs CASCADE")
        sql("UPDATE app.record_counts SET live_records = 0")
    vacuum()


def bulk_service(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    from generic_data import services
    from hzm.db.context import tenant_context

    with tenant_context(tenant.tenant, tenant.user, statement_timeout="10min"):
        services.create_rows(tenant.project, "items", rows)


def bulk_orm(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
    from generic_data.models import GenericData
    from hzm.db.context import tenant_context

    # JSONField cannot write a Decimal: the price goes as a float here.
    objects = [
        GenericData(
            tenant_id=tenant.tenant,
            project_id=tenant.project,
            table_id=tenant.table,
            data={**row, "price": float(row["price"])},
        )
        for row in rows
    ]
    with tenant_context(tenant.tenant, tenant.user, statement_timeout="10min"):
        GenericData.objects.bulk_create(objects, batch_size=5000)


def bulk_copy(triggers: bool) -> Callable[[Tenant, list[dict[str, Any]]], None]:
    from generic_data.schema import dumps

    def run(tenant: Tenant, rows: list[dict[str, Any]]) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            if not triggers:
                cursor.execute("SET LOCAL session_replication_role = replica")
            with cursor.cursor.copy(
                f"COPY {G} (tenant_id, project_id, table_id, data) FROM STDIN"
            ) as stream:
                for row in rows:
                    stream.write_row(
                        (tenant.tenant, tenant.project, tenant.table, dumps(stored(row)))
                    )

    return run


BULK_PATHS = [
    ("service", "services.create_rows(), one call, every trigger (runtime role)", bulk_service),
    ("orm", "Django bulk_create, batches of 5,000, every trigger (runtime role)", bulk_orm),
    ("copy", "COPY as the owner, the indexes, no triggers or foreign keys", bulk_copy(False)),
    ("copy_triggers", "COPY as the owner, every trigger (reference)", bulk_copy(True)),
]


def bench_bulk(tenant: Tenant, total: int, rounds: int) -> tuple[list[str], dict[str, float]]:
    rates: dict[str, list[float]] = {}
    for round_ in range(rounds):
        for key, _label, path in rotated(BULK_PATHS, round_):
            rows = rows_for(f"{key}{round_}", total)
            empty_table(tenant)
            say(f"3. bulk, round {round_ + 1}/{rounds}: {key}")
            started = time.perf_counter()
            path(tenant, rows)
            rates.setdefault(key, []).append(total / (time.perf_counter() - started))
            (loaded,) = sql(f"SELECT count(*) FROM {G}")[0]
            assert loaded == total, f"{key} loaded {loaded} rows, not {total}"
    med = {key: statistics.median(values) for key, values in rates.items()}
    lines = [
        f"{total:,} rows into one empty table per path; {rounds} rounds in rotating order; "
        "rows/s, median (min-max).",
        "",
        "| path | rows/s | the service vs it |",
        "|---|---:|---:|",
    ]
    for key, label, _path in BULK_PATHS:
        shown = spread(rates[key], lambda r: f"{r:,.0f}")
        lines.append(f"| {label} | {shown} | {med['service'] / med[key]:.2f}x |")
    ratios = {key: med["service"] / med[key] for key in med}
    return lines, ratios


# --- Main ----------------------------------------------------------------------------------------


def size(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def status(met: bool) -> str:
    return "met" if met else "**not met**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    parser.add_argument("--output", type=Path, help="also write the section to this file")
    args = parser.parse_args()
    quick = args.quick
    small_rows, large_rows = 1_000, 100_000 if quick else 1_000_000
    bulk_rows = 10_000 if quick else 100_000
    command = ".venv/bin/python -m bench.writes" + (" --quick" if quick else "")
    started = time.perf_counter()
    with scratch_database("hzm_bench_wr"):
        header = [
            "## writes",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
            "`bench/writes.py` (bench/README.md). Command:",
            "",
            f"    {command}",
            "",
            *machine_lines(
                (
                    "shared_buffers",
                    "work_mem",
                    "maintenance_work_mem",
                    "synchronous_commit",
                    "fsync",
                    "jit",
                )
            ),
            "",
        ]
        say("tenants")
        bulk_tenant, small, large = make_tenant(1), make_tenant(2), make_tenant(3)

        say("3. bulk load")
        bulk_lines, bulk = bench_bulk(bulk_tenant, bulk_rows, 3)
        empty_table(bulk_tenant)

        load(small, small_rows)
        load(large, large_rows)
        trips = count_round_trips(small)

        say("1. one-row writes")
        one_lines, one = bench_one_row(small, 5 if quick else 21, 50 if quick else 100)
        say("2. 1k-row against 1M-row tenant")
        size_lines, difference = bench_tenant_size(
            small, large, (small_rows, large_rows), 3 if quick else 5, 100 if quick else 300
        )
    one_row_met = min(one.values()) >= GOALS["one_row"]
    report = [
        *header,
        "### 1. One-row INSERT and UPDATE: every trigger against none",
        "",
        *one_lines,
        "",
        f"### 2. One-row inserts: a tenant of 1k rows against one of {size(large_rows)}",
        "",
        *size_lines,
        "",
        "### 3. Bulk load",
        "",
        *bulk_lines,
        "",
        "### Round trips",
        "",
        f"services.create_row(): {trips['create_row']} statements; services.update_row(): "
        f"{trips['update_row']} (inside an open tenant context, savepoints included; counted "
        "with `connection.execute_wrapper`).",
        "",
        "### Against the goals",
        "",
        "| goal | result | |",
        "|---|---|---|",
        f"| one-row INSERT and UPDATE, runtime path, >= {GOALS['one_row']}x of triggers off "
        f"| INSERT {one['insert_off']:.2f}x, UPDATE {one['update_off']:.2f}x of the runtime "
        f"role with triggers disabled; {one['insert_bare']:.2f}x and {one['update_bare']:.2f}x "
        f"of the bare owner | {status(one_row_met)} |",
        f"| one-row insert, 1k-row and {size(large_rows)}-row tenant within "
        f"{GOALS['tenant_size']:.0%} | {difference:.1%} apart "
        f"| {status(difference <= GOALS['tenant_size'])} |",
        f"| bulk load >= {GOALS['bulk_create']}x bulk_create | {bulk['orm']:.2f}x "
        f"| {status(bulk['orm'] >= GOALS['bulk_create'])} |",
        f"| bulk load >= {GOALS['copy']}x COPY with the indexes | {bulk['copy']:.2f}x "
        f"| {status(bulk['copy'] >= GOALS['copy'])} |",
        f"| a one-row insert through the service in <= {GOALS['round_trips']} round trips "
        f"| {trips['create_row']} | {status(trips['create_row'] <= GOALS['round_trips'])} |",
        "",
        f"Total run time: {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    if not args.no_write:
        write_section("writes", text)
        say("bench/RESULTS.md: section 'writes' written")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
