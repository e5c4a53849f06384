"""Benchmarks of generic data, each a ratio measured side by side on one scratch database.

    .venv/bin/python -m bench.generic_data [--quick] [--output FILE]

The server is the project's (DATABASE_URL, or the embedded cluster); the benchmark
creates its own database on it (hzm_bench_gd_<random>), migrates it, and drops it at
the end, whatever happens. It never touches the development database. --quick runs
everything at a tenth of the size (a smoke test of the benchmark itself).

1. Insert throughput: the service (validation, all triggers: touch, audit, unique
   values, foreign keys, row level security) against raw multi-row INSERTs into the
   same table with its triggers disabled.
2. Bulk create of 100k rows: the service against Django's bulk_create (as the
   runtime role) and against COPY into the same table (as the owner).
3. A tenant-scoped query under row level security against the same query as the owner
   with an explicit tenant_id filter, 1M rows over 100 tenants.
4. Full-text search and containment latency (p50/p95) at 100k and 1M rows, as the
   runtime role through the service, against the same search bypassing row level
   security (the owner, tenant filter written out).
Results are printed as a Markdown section for bench/RESULTS.md.
"""

import argparse
import dataclasses
import os
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402

from tests.support import server_params  # noqa: E402

TENANTS = 100
VOCABULARY = 2000  # words word0..word1999, six per title
FIELDS = [
    {"name": "title", "type": "text"},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal", "min": 0},
    {"name": "status", "type": "choice", "options": ["new", "active", "sold", "archived", "draft"]},
    {"name": "qty", "type": "integer"},
    {"name": "day", "type": "date"},
]
STATUSES = ["new", "active", "sold", "archived", "draft"]
G = "app.generic_data"

# The rows of the query benchmarks, generated in the database (bulk setup only).
LOAD_SQL = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT s.tenant_id, s.project_id, s.table_id, jsonb_build_object(
  'title', (SELECT string_agg('word' || (abs(hashtext(n || '-' || k)) %% {vocabulary}), ' ')
            FROM generate_series(1, 6) AS k)
           || CASE WHEN n %% 10 = 0 THEN ' cotton' ELSE '' END,
  'sku', 'SKU-' || s.tenant_id || '-' || n,
  'price', (abs(hashtext(n::text)) %% 100000) / 100.0,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'qty', n %% 97,
  'day', (date '2020-01-01' + n %% 1500)::text)
FROM unnest(%s::int[], %s::int[], %s::int[]) AS s(tenant_id, project_id, table_id),
     generate_series(%s::int, %s::int) AS n
"""
GIN_INDEXES = {
    "idx_generic_data_search": "CREATE INDEX idx_generic_data_search ON app.generic_data "
    "USING gin (to_tsvector('english'::regconfig, search_text))",
    "idx_generic_data_jsonb": "CREATE INDEX idx_generic_data_jsonb ON app.generic_data "
    "USING gin (data)",
}


# --- Plumbing ---------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"-- {message}", file=sys.stderr, flush=True)


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new database on the project's server, Django pointed at it, dropped on exit."""
    name = f"hzm_bench_gd_{secrets.token_hex(4)}"
    admin = psycopg.connect(**server_params("postgres"), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    default = connections["default"]
    original = default.settings_dict["NAME"]
    default.close()
    default.settings_dict["NAME"] = name
    try:
        say(f"scratch database {name}: migrating")
        call_command("migrate", verbosity=0)
        yield name
    finally:
        connections.close_all()
        default.settings_dict["NAME"] = original
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        say(f"scratch database {name} dropped")


def sql(statement: str, params: list[Any] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def timed(work: Callable[..., Any], *args: Any) -> float:
    start = time.perf_counter()
    work(*args)
    return time.perf_counter() - start


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def machine() -> list[str]:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    if Path("/proc/meminfo").exists():
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    (version,) = sql("SHOW server_version")[0]
    settings = sql(
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) "
        "FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'maintenance_work_mem', "
        "'max_parallel_workers_per_gather', 'synchronous_commit')"
    )[0][0]
    return [
        f"- machine: {os.cpu_count()} CPUs ({cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"- PostgreSQL {version} (same server, scratch database; {settings})",
    ]


# --- Tenants ----------------------------------------------------------------------------------


def make_tenants(count: int, first: int = 1) -> list[dict[str, int]]:
    """Tenants with a user, a project and a table 'items' defined through the service."""
    from core.models import Project, Tenant, User
    from generic_data import services
    from hzm.db.context import tenant_context
    from tests.factories import ensure_tenant_defaults

    ensure_tenant_defaults()
    made = []
    for n in range(first, first + count):
        tenant = Tenant.objects.create(
            name=f"Bench {n}", slug=f"bench-{n}", max_records=None, max_tables_per_project=None
        )
        user = User.objects.create(tenant=tenant, email=f"bench{n}@example.com", password="!")
        project = Project.objects.create(
            tenant=tenant, user=user, name=f"Bench {n}", api_key=f"bench-{n}"
        )
        with tenant_context(tenant.pk, user.pk):
            table = services.define_table(project.pk, "items", FIELDS)
        made.append(
            {"tenant": tenant.pk, "user": user.pk, "project": project.pk, "table": table.id}
        )
    return made


def rows_for(tag: str, count: int) -> list[dict[str, Any]]:
    """Rows as a client sends them (strings for decimals and dates)."""
    return [
        {
            "title": f"word{n % VOCABULARY} word{(n * 7) % VOCABULARY} cotton shirt {tag}",
            "sku": f"{tag}-{n}",
            "price": f"{n % 1000}.99",
            "status": STATUSES[n % 5],
            "qty": n % 97,
            "day": f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
        }
        for n in range(count)
    ]


# --- 1. Insert throughput ----------------------------------------------------------------------


def bench_insert(tenant: dict[str, int], total: int, batch: int) -> list[str]:
    from generic_data import services
    from generic_data.schema import dumps
    from hzm.db.context import tenant_context

    def service(tag: str) -> float:
        rows = rows_for(tag, total)

        def run() -> None:
            for start in range(0, total, batch):
                with tenant_context(tenant["tenant"], tenant["user"]):
                    services.create_rows(tenant["project"], "items", rows[start : start + batch])

        return total / timed(run)

    def raw(tag: str, setup: list[str]) -> float:
        table = tenant["table"]
        cleaned = [
            {**row, "price": Decimal(row["price"])} for row in rows_for(tag, total)
        ]  # what the service stores
        values = ", ".join(["(%s, %s, %s, %s::jsonb)"] * batch)

        def run() -> None:
            for start in range(0, total, batch):
                chunk = cleaned[start : start + batch]
                params: list[Any] = []
                for row in chunk:
                    params += [tenant["tenant"], tenant["project"], table, dumps(row)]
                with transaction.atomic():
                    for statement in setup:
                        sql(statement)
                    sql(
                        f"INSERT INTO {G} (tenant_id, project_id, table_id, data) VALUES {values}",
                        params,
                    )
                    for statement in setup:
                        sql(statement.replace("DISABLE", "ENABLE"))

        return total / timed(run)

    disabled = [f"ALTER TABLE {G} DISABLE TRIGGER USER"]
    results: dict[str, list[float]] = {}
    for round_ in range(3):  # interleaved, best of three each
        for label, run in [
            ("service (all triggers)", lambda r=round_: service(f"svc{r}")),
            ("raw INSERT, triggers disabled", lambda r=round_: raw(f"raw{r}", disabled)),
            ("raw INSERT, all triggers", lambda r=round_: raw(f"all{r}", [])),
            (
                "raw INSERT, triggers but the audit disabled",
                lambda r=round_: raw(
                    f"noaudit{r}", [f"ALTER TABLE {G} DISABLE TRIGGER trg_generic_data_audit"]
                ),
            ),
        ]:
            results.setdefault(label, []).append(run())
    best = {label: max(rates) for label, rates in results.items()}
    base = best["raw INSERT, triggers disabled"]
    lines = [
        f"{total:,} rows in batches of {batch} (a batch per service call and transaction, "
        "as a bulk API request; raw: one multi-row INSERT per batch); best of 3, interleaved.",
        "",
        "| path | rows/s | vs raw, triggers disabled |",
        "|---|---:|---:|",
    ]
    for label, rate in best.items():
        lines.append(f"| {label} | {rate:,.0f} | {rate / base:.2f}x |")
    return lines


# --- 2. Bulk create of 100k rows ---------------------------------------------------------------


def bench_bulk(tenant: dict[str, int], total: int) -> list[str]:
    from generic_data import services
    from generic_data.models import GenericData
    from generic_data.schema import dumps
    from hzm.db.context import tenant_context

    def service() -> None:
        with tenant_context(tenant["tenant"], tenant["user"]):
            services.create_rows(tenant["project"], "items", rows_for("bulk-svc", total))

    def orm() -> None:
        # JSONField cannot write a Decimal: the price goes as a float here.
        objects = [
            GenericData(
                tenant_id=tenant["tenant"],
                project_id=tenant["project"],
                table_id=tenant["table"],
                data={**row, "price": float(row["price"])},
            )
            for row in rows_for("bulk-orm", total)
        ]
        with tenant_context(tenant["tenant"], tenant["user"]):
            GenericData.objects.bulk_create(objects, batch_size=5000)

    def copy(tag: str, triggers: bool) -> Callable[[], None]:
        def run() -> None:
            rows = [{**row, "price": Decimal(row["price"])} for row in rows_for(tag, total)]
            with transaction.atomic(), connection.cursor() as cursor:
                if not triggers:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                with cursor.cursor.copy(
                    f"COPY {G} (tenant_id, project_id, table_id, data) FROM STDIN"
                ) as stream:
                    for row in rows:
                        stream.write_row(
                            (tenant["tenant"], tenant["project"], tenant["table"], dumps(row))
                        )

        return run

    def copy_as_runtime_role() -> str:
        try:
            with tenant_context(tenant["tenant"], tenant["user"]), connection.cursor() as cursor:
                with cursor.cursor.copy(f"COPY {G} (tenant_id, data) FROM STDIN") as stream:
                    stream.write_row((tenant["tenant"], "{}"))
        except Exception as error:  # the point: PostgreSQL refuses it
            return str(error).splitlines()[0]
        return "accepted"

    measured = [
        ("service create_rows (one call, all triggers)", total / timed(service)),
        ("Django bulk_create, runtime role (all triggers)", total / timed(orm)),
        ("COPY as the owner, all triggers", total / timed(copy("bulk-copy", True))),
        (
            "COPY as the owner, no triggers nor FKs (replica)",
            total / timed(copy("bulk-raw", False)),
        ),
    ]
    service_rate = measured[0][1]
    lines = [
        f"{total:,} rows into one table (one unique field); one run each.",
        "",
        "| path | rows/s | service vs it |",
        "|---|---:|---:|",
    ]
    for label, rate in measured:
        lines.append(f"| {label} | {rate:,.0f} | {service_rate / rate:.2f}x |")
    lines += [
        "",
        f"COPY as the runtime role (under row level security): `{copy_as_runtime_role()}`",
    ]
    return lines


# --- Loading the query data set ------------------------------------------------------------------


def load_rows(tenants: list[dict[str, int]], first: int, last: int) -> None:
    """Rows first..last of every tenant's table, as the owner with triggers off and the GIN
    indexes rebuilt afterwards (bulk setup only), then VACUUM ANALYZE."""
    say(f"loading rows {first:,}..{last:,} for {len(tenants)} tenants")
    started = time.perf_counter()
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        for name in GIN_INDEXES:
            sql(f"DROP INDEX app.{name}")
        per_statement = max(1, 200_000 // max(1, last - first + 1))
        for start in range(0, len(tenants), per_statement):
            group = tenants[start : start + per_statement]
            sql(
                LOAD_SQL.format(vocabulary=VOCABULARY),
                [
                    [t["tenant"] for t in group],
                    [t["project"] for t in group],
                    [t["table"] for t in group],
                    first,
                    last,
                ],
            )
        sql("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in GIN_INDEXES.values():
            sql(statement)
    connection.close()
    with psycopg.connect(**server_params(connection.settings_dict["NAME"]), autocommit=True) as c:
        c.execute(f"VACUUM ANALYZE {G}")
    say(f"loaded in {time.perf_counter() - started:.0f} s")


# --- 3. Row level security against the owner ------------------------------------------------------

RLS_QUERIES = {
    "page of a comparison, by id": (
        "SELECT id, data FROM app.generic_data WHERE project_id = %s AND table_id = %s "
        "AND is_deleted = false AND (data ->> 'price')::numeric > 500 {tenant}"
        "ORDER BY id LIMIT 50"
    ),
    "top 50 by a field": (
        "SELECT id, data FROM app.generic_data WHERE project_id = %s AND table_id = %s "
        "AND is_deleted = false {tenant}ORDER BY (data ->> 'price')::numeric DESC NULLS FIRST, "
        "id DESC LIMIT 50"
    ),
    "count of a comparison": (
        "SELECT count(*) FROM app.generic_data WHERE project_id = %s AND table_id = %s "
        "AND is_deleted = false AND (data ->> 'qty')::numeric < 10 {tenant}"
    ),
}


def bench_rls(tenants: list[dict[str, int]], repeats: int) -> list[str]:
    from hzm.db.context import tenant_context

    sample = tenants[:: max(1, len(tenants) // 20)]
    lines = [
        f"{len(sample)} tenants x {repeats} runs of each query; each pair after an untimed "
        "warm-up run, in alternating order (the 1M rows do not fit shared_buffers, and "
        "whichever runs second would find the pages cached); the statement alone is timed "
        "(a request opens its tenant context once).",
        "",
        "| query | runtime role, RLS (p50) | owner + tenant_id (p50) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, template in RLS_QUERIES.items():
        under_rls, as_owner = [], []
        rls_sql = template.format(tenant="")
        owner_sql = template.format(tenant="AND tenant_id = %s ")
        for repeat in range(repeats):
            for t in sample:
                params = [t["project"], t["table"]]

                sql(owner_sql, [*params, t["tenant"]])  # warm-up
                for which in ("rls", "owner") if repeat % 2 == 0 else ("owner", "rls"):
                    if which == "rls":
                        with tenant_context(t["tenant"], t["user"]):
                            under_rls.append(timed(sql, rls_sql, params))
                    else:
                        as_owner.append(timed(sql, owner_sql, [*params, t["tenant"]]))
        rls_p50, owner_p50 = statistics.median(under_rls), statistics.median(as_owner)
        lines.append(f"| {label} | {ms(rls_p50)} | {ms(owner_p50)} | {rls_p50 / owner_p50:.2f}x |")
    return lines


# --- 4. Search latency ---------------------------------------------------------------------------

# The page the service returns, as the owner: no row level security, no function, the
# tenant filter written out, and the plan the service's app.search_rows() gets (table
# matched as table_id + 0, no plain index scans; see migration 0003).
BYPASS_SEARCH = (
    "SELECT id, data, version, created_at, updated_at, ts_rank(to_tsvector('english'::regconfig, "
    "search_text), websearch_to_tsquery('english'::regconfig, %s)) AS rank "
    "FROM app.generic_data WHERE tenant_id = %s AND table_id + 0 = %s "
    "AND is_deleted = false AND to_tsvector('english'::regconfig, search_text) "
    "@@ websearch_to_tsquery('english'::regconfig, %s) ORDER BY rank DESC, id DESC LIMIT 51"
)
# The same written naively: every scope column indexable, the planner's own choice.
NAIVE_SEARCH = (
    "SELECT id, data, version, created_at, updated_at, ts_rank(to_tsvector('english'::regconfig, "
    "search_text), websearch_to_tsquery('english'::regconfig, %s)) AS rank "
    "FROM app.generic_data WHERE tenant_id = %s AND project_id = %s AND table_id = %s "
    "AND is_deleted = false AND to_tsvector('english'::regconfig, search_text) "
    "@@ websearch_to_tsquery('english'::regconfig, %s) ORDER BY rank DESC, id DESC LIMIT 51"
)
BYPASS_CONTAINS = (
    "SELECT id, data, version, created_at, updated_at FROM app.generic_data "
    "WHERE tenant_id = %s AND project_id = %s AND table_id = %s AND is_deleted = false "
    "AND data @> %s::jsonb {extra}ORDER BY id LIMIT 51"
)


def search_cases(rows_per_tenant: int, rng: Any) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each case makes the options of one query (services.query_rows keywords); '{tenant}'
    in a filter value is replaced by the tenant's id."""

    def word() -> str:
        return f"word{rng.randrange(VOCABULARY)}"

    def eq(field: str, value: Any) -> dict[str, Any]:
        return {"field": field, "op": "eq", "value": value}

    return {
        "FTS, one word": lambda: {"search": word()},
        "FTS, two words": lambda: {"search": f"{word()} {word()}"},
        "FTS, a word in 10% of rows": lambda: {"search": "cotton"},
        "containment, unique sku": lambda: {
            "filter": eq("sku", f"SKU-{{tenant}}-{rng.randrange(1, rows_per_tenant + 1)}")
        },
        "containment, status=active (20%), page of 50": lambda: {"filter": eq("status", "active")},
        "containment, status + qty (0.2%)": lambda: {
            "filter": {"and": [eq("status", "active"), eq("qty", rng.randrange(97))]}
        },
        "containment + comparison (active, price > 900)": lambda: {
            "filter": {
                "and": [eq("status", "active"), {"field": "price", "op": "gt", "value": 900}]
            }
        },
    }


def bench_search(tenants: list[dict[str, int]], rows_per_tenant: int, samples: int) -> list[str]:
    import random

    from generic_data import query as q
    from generic_data import services
    from generic_data.schema import dumps
    from hzm.db.context import tenant_context

    rng = random.Random(42)
    cases = search_cases(rows_per_tenant, rng)
    lines = [
        f"{len(tenants) * rows_per_tenant:,} rows ({len(tenants)} tenants x {rows_per_tenant:,});"
        f" {samples} queries per case over random tenants and words, a page of 50. "
        "**service**: services.query_rows() as the runtime role, end to end (table lookup, "
        "query, rows decoded), inside an open tenant context. **SQL**: the statement the "
        "service runs, alone, as the runtime role. **bypass**: the same page as the owner "
        "(no row level security), tenant filter written out, GIN-servable SQL, no function.",
        "",
        "| case | service p50 / p95 | SQL p50 / p95 | bypass p50 / p95 | SQL / bypass (p95) "
        "| rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    naive: dict[str, list[float]] = {}
    for label, case in cases.items():
        service_times, sql_times, bypass_times, found = [], [], [], []
        for _ in range(samples):
            t = rng.choice(tenants)
            options = case()
            if "filter" in options:
                options = {"filter": _with_tenant(options["filter"], t["tenant"])}
            search = options.get("search")
            with tenant_context(t["tenant"], t["user"]):
                services.query_rows(t["project"], "items", **options)  # warm-up
                started = time.perf_counter()
                page = services.query_rows(t["project"], "items", **options)
                service_times.append(time.perf_counter() - started)
                schema = services.get_table(t["project"], "items").schema
                query = q.Query(
                    t["project"],
                    t["table"],
                    q.parse_filter(schema, options.get("filter")),
                    q.parse_sort(schema, None, search=search is not None),
                    51,
                    None,
                    search,
                )
                probe = query.probe()
                if probe is not None:
                    ids = [row[0] for row in sql(*probe)]
                    if len(ids) <= q.MAX_CANDIDATES:
                        query = dataclasses.replace(query, candidate_ids=tuple(ids))
                sql_times.append(timed(sql, *query.select()))
            found.append(len(page.rows))
            if search is not None:
                with transaction.atomic():
                    sql("SET LOCAL enable_indexscan = off")
                    params = [search, t["tenant"], t["table"], search]
                    bypass_times.append(timed(sql, BYPASS_SEARCH, params))
                params = [search, t["tenant"], t["project"], t["table"], search]
                naive.setdefault(label, []).append(timed(sql, NAIVE_SEARCH, params))
            else:
                document, extra = _containment(options["filter"])
                statement = BYPASS_CONTAINS.format(extra=extra)
                params = [t["tenant"], t["project"], t["table"], dumps(document)]
                bypass_times.append(timed(sql, statement, params))

        ratio = percentile(sql_times, 95) / percentile(bypass_times, 95)
        lines.append(
            f"| {label} | {both(service_times)} | {both(sql_times)} | {both(bypass_times)} "
            f"| {ratio:.2f}x | {statistics.mean(found):.1f} |"
        )
    lines += [
        "",
        "The full-text bypass written naively (every scope column indexable, default planner "
        "settings), same queries: "
        + "; ".join(f"{label}: {both(times)}" for label, times in naive.items())
        + ".",
    ]
    return lines


def both(times: list[float]) -> str:
    return f"{ms(percentile(times, 50))} / {ms(percentile(times, 95))}"


def _with_tenant(filter_: dict[str, Any], tenant: int) -> dict[str, Any]:
    if "value" in filter_ and isinstance(filter_["value"], str):
        return {**filter_, "value": filter_["value"].replace("{tenant}", str(tenant))}
    if "and" in filter_:
        return {"and": [_with_tenant(child, tenant) for child in filter_["and"]]}
    return filter_


def _containment(filter_: dict[str, Any]) -> tuple[dict[str, Any], str]:
    conditions = filter_.get("and", [filter_])
    document = {c["field"]: c["value"] for c in conditions if c["op"] == "eq"}
    extra = "".join(
        f"AND (data ->> '{c['field']}')::numeric > {int(c['value'])} "
        for c in conditions
        if c["op"] == "gt"
    )
    return document, extra


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--output", type=Path, help="also write the Markdown section here")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    started = time.perf_counter()
    with scratch_database():
        report = [
            f"### generic_data ({time.strftime('%Y-%m-%d')})",
            "",
            f"Command: `.venv/bin/python -m bench.generic_data{' --quick' if args.quick else ''}`",
            *machine(),
            "",
        ]
        say("tenants")
        tenants = make_tenants(TENANTS)
        writer = make_tenants(1, first=TENANTS + 1)[0]
        say("1. insert throughput")
        report += ["#### 1. Insert throughput", ""]
        report += bench_insert(writer, 20_000 // scale, 1000)
        say("2. bulk create")
        report += ["", "#### 2. Bulk create", ""]
        report += bench_bulk(make_tenants(1, first=TENANTS + 2)[0], 100_000 // scale)
        sql(f"TRUNCATE {G}, ops.audit_logs CASCADE")

        small = 1000 // scale
        load_rows(tenants, 1, small)
        say("4. search at 100k")
        report += ["", "#### 4a. Search latency at 100k rows", ""]
        report += bench_search(tenants, small, 200 // scale)

        large = 10_000 // scale
        load_rows(tenants, small + 1, large)
        say("3. RLS against the owner at 1M")
        report += ["", "#### 3. Tenant-scoped query: RLS against the owner, 1M rows", ""]
        report += bench_rls(tenants, 3 if args.quick else 10)
        say("4. search at 1M")
        report += ["", "#### 4b. Search latency at 1M rows", ""]
        report += bench_search(tenants, large, 200 // scale)
    report += ["", f"Total run time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
