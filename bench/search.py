"""Full-text and containment searches through the service, against the best bypass.

    .venv/bin/python -m bench.search [--quick | --full] [--no-write]

Issue 15, "Searches that use their index": every search case, as the runtime role through
services.query_rows(), against the same page (and count) read as the owner with the
tenant filter written out and no row level security: the best bypass, each case written
in the shapes a person tuning it would try (the GIN index alone, the ordered scan of the
table, the GIN index AND-ed with the tenant's rows, and for a unique field's value its
row through app.generic_data_unique), the fastest of them counting, and the naive bypass
(every scope column indexable, the planner's own choice) beside it.

The server is the project's (DATABASE_URL, or the embedded cluster); a scratch database
(hzm_bench_search_<random>) is created there, migrated, and dropped at the end, also on
Ctrl-C or SIGTERM (bench/scratch.py). 100 tenants, each with a table of the same shape;
the rows are generated in the database (INSERT ... SELECT generate_series, the tenants'
rows interleaved as concurrent writers leave them) as the owner with the triggers off and
the GIN indexes built afterwards, app.record_counts and app.generic_data_unique (sku is
unique) filled as their triggers would have, then VACUUM ANALYZE: bulk setup only, never
the path measured. Sizes: 100,000 rows; with --full also 1,000,000; --quick: 100,000 rows
and 5 rounds (a smoke test).

What is timed: for the service, every statement it runs against app.generic_data for the
request (the page, any candidate probe inside it, and the count: Django's execute wrapper
times each, client side, execute and fetch), inside an open tenant context (a request
opens it once); the call end to end (table definition lookup, Python) is shown too. For a
bypass, its statement(s). Each round takes a tenant (rotating) and runs every variant of a
case in an order drawn afresh each round (seeded), each timed run right after WARMUPS untimed ones
(one was not enough at 1M rows: the tenant's 10,000 heap pages were still partly out of
shared buffers after a variant that reads pages all over the table); every variant must
return the same rows as the service. Medians with min-max; ratios of the medians.
Results are printed, and written to bench/RESULTS.md as its section `## search` (other
sections untouched) unless --no-write.
"""

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench import tenant_data  # noqa: E402
from bench.scratch import machine, say, scratch_database, write_section  # noqa: E402
from bench.tenant_data import sql  # noqa: E402

TENANTS = 100
WARMUPS = 2  # untimed runs right before each timed one
VOCABULARY = 2000
FIELDS = [
    {"name": "title", "type": "text"},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal"},
    {"name": "status", "type": "choice", "options": ["new", "active", "sold", "archived", "draft"]},
    {"name": "qty", "type": "integer"},
]
# Six words of a 2,000-word vocabulary per title, 'cotton' in a tenth of them; sku unique
# (declared so, as a product code is: its values in app.generic_data_unique, generic_data 0004);
# status in a fifth each; qty over 97 values; all hashed, not following the row order.
LOAD_SQL = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT s.tenant_id, s.project_id, s.table_id, jsonb_build_object(
  'title', (SELECT string_agg('word' || (abs(hashtext(n || '-' || k)) %% {vocabulary}), ' ')
            FROM generate_series(1, 6) AS k)
           || CASE WHEN n %% 10 = 0 THEN ' cotton' ELSE '' END,
  'sku', 'SKU-' || s.tenant_id || '-' || n,
  'price', (abs(hashtext(n::text)) %% 100000) / 100.0,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'qty', abs(hashtext('q' || n)) %% 97)
FROM generate_series(%s::int, %s::int) AS n,
     unnest(%s::int[], %s::int[], %s::int[]) AS s(tenant_id, project_id, table_id)
ORDER BY n, s.tenant_id
"""
# The unique values of the rows just loaded, as app.sync_unique_values() would have added
# them (the triggers are off); those of earlier loads are there already.
LOAD_UNIQUE = """
INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
SELECT g.table_id, 'sku', g.data ->> 'sku', g.id FROM app.generic_data AS g
ON CONFLICT DO NOTHING
"""
GIN_INDEXES = {
    "idx_generic_data_search": "CREATE INDEX idx_generic_data_search ON app.generic_data "
    "USING gin (to_tsvector('english'::regconfig, search_text))",
    "idx_generic_data_jsonb": "CREATE INDEX idx_generic_data_jsonb ON app.generic_data "
    "USING gin (data)",
}
COLUMNS = "id, data, version, created_at, updated_at"
RANK = (
    "ts_rank(to_tsvector('english'::regconfig, search_text), "
    "websearch_to_tsquery('english'::regconfig, %(q)s))"
)
MATCH = (
    "to_tsvector('english'::regconfig, search_text) "
    "@@ websearch_to_tsquery('english'::regconfig, %(q)s)"
)
# The scope of a bypass, in the shapes tried: every column indexable (the naive query,
# and the ordered scan of the table's rows), only the tenant (so an index of the tenant's
# rows can be AND-ed with the GIN index), none (the GIN index alone), and, for an
# equality on a unique field, its row's id from app.generic_data_unique.
SCOPES = {
    "scan": "tenant_id = %(t)s AND project_id = %(p)s AND table_id = %(x)s",
    "ordered": "tenant_id = %(t)s AND project_id = %(p)s AND table_id = %(x)s",
    "and": "tenant_id = %(t)s AND project_id + 0 = %(p)s AND table_id + 0 = %(x)s",
    "gin": "tenant_id + 0 = %(t)s AND project_id + 0 = %(p)s AND table_id + 0 = %(x)s",
    "unique": "id = (SELECT u.row_id FROM app.generic_data_unique AS u WHERE u.table_id = %(x)s "
    "AND u.field = %(f)s AND u.value = %(v)s) "
    "AND tenant_id + 0 = %(t)s AND project_id + 0 = %(p)s AND table_id + 0 = %(x)s",
}
SHAPES = {
    "scan": "every scope column indexable, the planner's own settings (the naive bypass)",
    "ordered": "the same without plan sorts (enable_sort, enable_incremental_sort off): the "
    "table's rows in id order through unique_generic_data_per_table",
    "and": "the GIN index AND-ed with the tenant's rows (bitmap scans only)",
    "gin": "the GIN index alone (scope compared outside any index)",
    "unique": "the row's id from app.generic_data_unique's primary key (table, field, value), "
    "then the row by generic_data_pkey, the scope compared outside any index (an equality on "
    "a unique field only; with the scope indexable, the planner reads the whole table through "
    "idx_generic_data_composite, the id a filter)",
}
UNIQUE_FIELDS = tuple(f["name"] for f in FIELDS if f.get("unique"))
WITH_UNIQUE = ("scan", "ordered", "and", "gin", "unique")


# --- Loading ----------------------------------------------------------------------------------


def make_tenants(count: int) -> list[dict[str, int]]:
    """Tenants with a user, a project and a table 'items' of this benchmark's fields."""
    return tenant_data.make_tenants(count, fields=FIELDS)


def load_rows(tenants: list[dict[str, int]], first: int, last: int) -> None:
    """Rows first..last of every tenant's table (bulk setup, see the module docstring)."""
    say(f"loading rows {first:,}..{last:,} of {len(tenants)} tenants")
    started = time.perf_counter()
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        for name in GIN_INDEXES:
            sql(f"DROP INDEX app.{name}")
        columns = [[t[key] for t in tenants] for key in ("tenant", "project", "table")]
        sql(LOAD_SQL.format(vocabulary=VOCABULARY), [first, last, *columns])
        sql(LOAD_UNIQUE)
        sql("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in GIN_INDEXES.values():
            sql(statement)
        sql(
            "INSERT INTO app.record_counts (table_id, live_records) "
            "SELECT g.table_id, count(*) FROM app.generic_data AS g WHERE NOT g.is_deleted "
            "GROUP BY 1 ON CONFLICT (table_id) DO UPDATE SET live_records = excluded.live_records"
        )
    sql("VACUUM ANALYZE app.generic_data")
    sql("VACUUM ANALYZE app.generic_data_unique")
    say(f"loaded in {time.perf_counter() - started:.0f} s")


# --- Cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One search: the service's options, and its bypass (the page, and the count when
    the options ask for one) in each scope shape; {scope} is filled in."""

    label: str
    options: Callable[[dict[str, int], Any], dict[str, Any]]
    page: str
    count: str | None = None
    shapes: tuple[str, ...] = ("scan", "ordered", "and", "gin")
    settings: dict[str, str] = field(default_factory=dict)  # for the bypass


def eq(name: str, value: Any) -> dict[str, Any]:
    return {"field": name, "op": "eq", "value": value}


def gt(name: str, value: Any) -> dict[str, Any]:
    return {"field": name, "op": "gt", "value": value}


def cases(rows: int) -> list[Case]:
    def word(tenant: dict[str, int], rng: Any) -> str:
        return f"word{rng.randrange(VOCABULARY)}"

    def sku(tenant: dict[str, int], rng: Any) -> str:
        return f"SKU-{tenant['tenant']}-{rng.randrange(1, rows + 1)}"

    where = "WHERE {scope} AND is_deleted = false"
    contains = f"SELECT {COLUMNS} FROM app.generic_data {where} AND data @> %(d)s::jsonb"
    fts_page = (
        f"SELECT {COLUMNS}, {RANK} AS rank FROM app.generic_data {where} AND {MATCH} "
        "ORDER BY rank DESC, id DESC LIMIT 51"
    )
    fts_count = f"SELECT count(*) FROM app.generic_data {where} AND {MATCH}"
    return [
        Case(
            "full text, one word (0.3% of rows)",
            lambda t, rng: {"search": word(t, rng)},
            fts_page,
            shapes=("scan", "and"),
            settings={"enable_indexscan": "off"},
        ),
        Case(
            "full text, 'cotton' (10% of rows), with count",
            lambda t, rng: {"search": "cotton", "count": True},
            fts_page,
            fts_count,
            shapes=("scan", "and"),
            settings={"enable_indexscan": "off"},
        ),
        Case(
            "containment, a unique value (sku)",
            lambda t, rng: {"filter": eq("sku", sku(t, rng))},
            contains + " ORDER BY id LIMIT 51",
            shapes=WITH_UNIQUE,
        ),
        Case(
            "containment, a unique value, with count",
            lambda t, rng: {"filter": eq("sku", sku(t, rng)), "count": True},
            contains + " ORDER BY id LIMIT 51",
            f"SELECT count(*) FROM app.generic_data {where} AND data @> %(d)s::jsonb",
            shapes=WITH_UNIQUE,
        ),
        Case(
            "containment, a common value (status, 20%), page of 50",
            lambda t, rng: {"filter": eq("status", "active")},
            contains + " ORDER BY id LIMIT 51",
        ),
        Case(
            "containment, a common value, its third page",
            lambda t, rng: {"filter": eq("status", "active"), "page": 3},
            contains + " AND id > %(a)s ORDER BY id LIMIT 51",
        ),
        Case(
            "containment, a common value, with count",
            lambda t, rng: {"filter": eq("status", "active"), "count": True},
            contains + " ORDER BY id LIMIT 51",
            f"SELECT count(*) FROM app.generic_data {where} AND data @> %(d)s::jsonb",
        ),
        Case(
            "containment + comparison (status active, price > 900)",
            lambda t, rng: {"filter": {"and": [eq("status", "active"), gt("price", 900)]}},
            contains + " AND (data ->> 'price')::numeric > 900 ORDER BY id LIMIT 51",
        ),
        Case(
            "containment + comparison (a unique sku, price > 0)",
            lambda t, rng: {"filter": {"and": [eq("sku", sku(t, rng)), gt("price", 0)]}},
            contains + " AND (data ->> 'price')::numeric > 0 ORDER BY id LIMIT 51",
            shapes=WITH_UNIQUE,
        ),
        Case(
            "two equalities rare together (status + qty, 0.2%)",
            lambda t, rng: {
                "filter": {"and": [eq("status", "active"), eq("qty", rng.randrange(97))]}
            },
            contains + " ORDER BY id LIMIT 51",
        ),
    ]


# --- Measuring --------------------------------------------------------------------------------


@contextmanager
def statement_timer() -> Iterator[list[float]]:
    """Seconds of each statement on app.generic_data or its search functions (client side)."""
    times: list[float] = []

    def timer(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
        if "app.generic_data" not in statement and "app.rows_containing" not in statement:
            if "app.search_rows" not in statement:
                return execute(statement, params, many, context)
        started = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            times.append(time.perf_counter() - started)

    with connection.execute_wrapper(timer):
        yield times


def service_call(tenant: dict[str, int], options: dict[str, Any]) -> tuple[float, float, list]:
    """(seconds of its statements, seconds end to end, ids) of one services.query_rows()."""
    from generic_data import services

    options = dict(options)
    pages = options.pop("page", 1)
    after = None
    for _ in range(pages - 1):  # earlier pages, untimed: the cursor of the one measured
        after = services.query_rows(tenant["project"], "items", after=after, **options).next_cursor
    with statement_timer() as times:
        started = time.perf_counter()
        page = services.query_rows(tenant["project"], "items", after=after, **options)
        total = time.perf_counter() - started
    return sum(times), total, [row.id for row in page.rows] + [page.count]


def bypass_params(tenant: dict[str, int], options: dict[str, Any], after: int) -> dict[str, Any]:
    from generic_data.schema import dumps

    params: dict[str, Any] = {"t": tenant["tenant"], "p": tenant["project"], "x": tenant["table"]}
    if "search" in options:
        params["q"] = options["search"]
    else:
        conditions = options["filter"].get("and", [options["filter"]])
        params["d"] = dumps({c["field"]: c["value"] for c in conditions if c["op"] == "eq"})
        for c in conditions:
            if c["op"] == "eq" and c["field"] in UNIQUE_FIELDS:
                params["f"], params["v"] = c["field"], c["value"]
    params["a"] = after
    return params


def bypass_call(case: Case, shape: str, params: dict[str, Any]) -> tuple[float, list]:
    with transaction.atomic():
        # psycopg sends BEGIN, a round trip of its own, before a transaction's first
        # statement: not in the timed one (the service's context has begun its transaction).
        sql("SELECT 1")
        for name, value in case.settings.items():
            sql("SELECT set_config(%s, %s, true)", [name, value])
        if shape == "scan":  # the naive query: the planner's own settings
            for name in case.settings:
                sql(f"RESET {name}")
        elif shape == "and":
            sql("SET LOCAL enable_indexscan = off")
        elif shape == "ordered":
            sql("SET LOCAL enable_sort = off")
            sql("SET LOCAL enable_incremental_sort = off")
        started = time.perf_counter()
        rows = sql(case.page.format(scope=SCOPES[shape]), params)
        total = sql(case.count.format(scope=SCOPES[shape]), params)[0][0] if case.count else None
        return time.perf_counter() - started, [*(row[0] for row in rows[:50]), total]


def measure(case: Case, tenants: list[dict[str, int]], rounds: int, rng: Any) -> dict[str, Any]:
    from hzm.db.context import tenant_context

    keys = ["service", *case.shapes]
    times: dict[str, list[float]] = {key: [] for key in keys}
    ends: list[float] = []
    for round_ in range(rounds):
        tenant = tenants[(round_ * 37) % len(tenants)]
        options = case.options(tenant, rng)
        after = 0
        if options.get("page", 1) > 1:
            with tenant_context(tenant["tenant"], tenant["user"]):
                from generic_data import services

                rest = {k: v for k, v in options.items() if k != "page"}
                cursor = None
                for _ in range(options["page"] - 1):
                    page = services.query_rows(tenant["project"], "items", after=cursor, **rest)
                    cursor, after = page.next_cursor, page.rows[-1].id
        params = bypass_params(tenant, options, after)
        # A fresh order each round: a rotation kept each variant's predecessor, so the one
        # after the GIN-alone bypass (which reads pages all over the table) always ran on
        # a cache it had emptied, and the one after the naive bypass on one it had filled.
        order = random.Random(f"{case.label} {round_}").sample(keys, len(keys))
        results = {}
        for key in order:
            if key == "service":
                with tenant_context(tenant["tenant"], tenant["user"]):
                    for _ in range(WARMUPS):
                        service_call(tenant, options)
                    elapsed, end, found = service_call(tenant, options)
                ends.append(end)
            else:
                for _ in range(WARMUPS):
                    bypass_call(case, key, params)
                elapsed, found = bypass_call(case, key, params)
            times[key].append(elapsed)
            results[key] = found
        if len({repr(found) for found in results.values()}) != 1:
            raise AssertionError(f"{case.label}: the variants disagree: {results}")
    return {"times": times, "ends": ends}


# --- Reporting --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def summary(values: list[float]) -> str:
    return f"{ms(statistics.median(values))} ({ms(min(values))}-{ms(max(values))})"


def bench_size(tenants: list[dict[str, int]], rows: int, rounds: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    measured = []
    for case in cases(rows):
        say(f"{rows * len(tenants):,} rows: {case.label} ({rounds} rounds)")
        result = measure(case, tenants, rounds, rng)
        medians = {key: statistics.median(values) for key, values in result["times"].items()}
        best = min((key for key in case.shapes), key=lambda key: medians[key])
        measured.append({"case": case, "best": best, "medians": medians, **result})
    return measured


def table(measured: list[dict], total_rows: int, rounds: int) -> list[str]:
    lines = [
        f"{total_rows:,} rows ({TENANTS} tenants x {total_rows // TENANTS:,}); {rounds} "
        "interleaved rounds per case. Each cell: median ms (min-max). **service**: the "
        "statements services.query_rows() runs (probe, page, count), as the runtime role; "
        "**end to end**: the whole call; **best bypass**: the fastest shape (named) as the "
        "owner; **naive**: the ordered-scan shape, every scope column indexable.",
        "",
        "| case | service | end to end | best bypass | naive bypass | service / best | "
        "naive / best |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in measured:
        times, medians, best = entry["times"], entry["medians"], entry["best"]
        lines.append(
            f"| {entry['case'].label} | {summary(times['service'])} | {summary(entry['ends'])} "
            f"| {summary(times[best])} ({best}) | {summary(times['scan'])} "
            f"| **{medians['service'] / medians[best]:.2f}x** "
            f"| {medians['scan'] / medians[best]:.2f}x |"
        )
    lines += ["", "Shapes: " + "; ".join(f"**{k}**: {v}" for k, v in SHAPES.items()) + "."]
    return lines


def goals(measured: list[dict], total_rows: int) -> list[str]:
    ratios = [
        (entry["case"].label, entry["medians"]["service"] / entry["medians"][entry["best"]])
        for entry in measured
    ]
    worst = max(ratio for _, ratio in ratios)
    misses = [f"{label} {ratio:.2f}x" for label, ratio in ratios if ratio > 1.5]
    over_moonshot = [f"{label} {ratio:.2f}x" for label, ratio in ratios if ratio > 1.1]
    return [
        f"| goal (at {total_rows:,} rows) | result | status |",
        "|---|---|---|",
        f"| every search case <= 1.5x its best bypass | worst {worst:.2f}x | "
        + ("**met**" if not misses else "**NOT met**: " + ", ".join(misses))
        + " |",
        "| moonshot: every case <= 1.1x | "
        + f"{len(ratios) - len(over_moonshot)} of {len(ratios)} cases | "
        + ("met" if not over_moonshot else "not met: " + ", ".join(over_moonshot))
        + " |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100,000 rows, 5 rounds")
    size.add_argument("--full", action="store_true", help="also at 1,000,000 rows")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args()
    flags = " --quick" if args.quick else " --full" if args.full else ""
    started = time.perf_counter()
    sizes = [1_000, 10_000] if args.full else [1_000]  # rows per tenant
    rounds = 5 if args.quick else 25
    with scratch_database("hzm_bench_search"):
        report = [
            "## search",
            "",
            f"### search ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
            "",
            f"Command: `.venv/bin/python -m bench.search{flags}`",
            *machine(
                (
                    "shared_buffers",
                    "work_mem",
                    "effective_cache_size",
                    "random_page_cost",
                    "jit",
                    "max_parallel_workers_per_gather",
                )
            ),
            "",
        ]
        say("tenants")
        tenants = make_tenants(TENANTS)
        loaded = 0
        last: list[dict] = []
        for per_tenant in sizes:
            load_rows(tenants, loaded + 1, per_tenant)
            loaded = per_tenant
            last = bench_size(tenants, per_tenant, rounds, seed=per_tenant)
            report += [f"#### {per_tenant * TENANTS:,} rows", ""]
            report += [*table(last, per_tenant * TENANTS, rounds), ""]
        report += ["#### Against the goals", "", *goals(last, loaded * TENANTS)]
    report += ["", f"Total run time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if not args.no_write:
        write_section("search", text)
        say("bench/RESULTS.md: section 'search' written")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
