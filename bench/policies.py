"""The tenant policy's InitPlan and the audit trail's owner-only policies, side by side.

    .venv/bin/python -m bench.policies [--quick] [--output FILE]

What hzm/migrations/0005_security_hardening.py changed, measured before and after in one
run on one scratch database (issue 11, "Performance found by the same audit"):

1. A scan that no tenant index serves: `count(*) ... WHERE payload LIKE '%zz%'` over
   2,000,000 rows of 100 tenants (200,000 with --quick), no index on tenant_id, as a
   NOLOGIN NOBYPASSRLS role with the tenant set, under (a) the per-row policy
   `tenant_id = app.current_tenant()` (before 0005) and (b) the per-statement policy
   `tenant_id = (SELECT app.current_tenant())` (after: an InitPlan, the tenant read once
   per statement), against (c) the same count as the owner with the tenant filter written
   out (no row level security). app.current_tenant() is the project's (LANGUAGE sql STABLE,
   inlined, PARALLEL UNSAFE as created), so no plan under a policy is parallel: a-c and e
   run with max_parallel_workers_per_gather = 0. For reference: (d) the owner's count with
   the server's parallel setting, (e) the owner's count testing the tenant first as a
   policy's condition is (PostgreSQL moves a plain `tenant_id = N` after the LIKE), and,
   not in the project, (f) the per-statement policy with app.current_tenant() made
   PARALLEL SAFE and the server's parallel setting.
2. The runtime role's read of its own audit trail (a page of 50 by id, the model's page
   `ORDER BY created_at DESC, id DESC`, and a count of its rows) at 300,000 rows over 100
   tenants, in ops.audit_logs as Django creates it from ops.models.AuditLog (its columns and
   indexes, idx_audit_tenant (tenant_id) among them) with the policies of the ops
   migrations: the owner-only policies `rls_audit_logs_owner_read` and
   `rls_audit_logs_owner_prune` TO PUBLIC (before 0005: OR-ed into every role's reads)
   against TO the owner (after), each with the per-row and the per-statement tenant
   condition (0005 changed both at once; the four combinations show which change does
   what), and the owner with the tenant filter written out for reference. Measured for an
   active tenant (rows throughout the trail) and a quiet one (rows only in its oldest
   tenth). Then, not in the project, the same after 0005 with two more indexes, on
   (tenant_id, id) and (tenant_id, created_at, id).

The server is the project's (DATABASE_URL, or the embedded cluster); the benchmark
creates its own database there (hzm_bench_pol_<random>) and its own runtime role (the same
name, NOLOGIN NOBYPASSRLS, entered with SET ROLE), and drops both at the end, also on
Ctrl-C or SIGTERM; the development database is never touched. It does not run `migrate`:
the two tables are built in plain SQL (the audit trail's DDL is what Django's schema editor
generates for ops.models.AuditLog; app.current_tenant() and the policy conditions are
frozen copies of the migrations' SQL), filled as the owner with INSERT ... SELECT
generate_series (the tables have no triggers), then VACUUM ANALYZEd. A policy's variants
are made with ALTER POLICY, as the owner, between the runs.

Each measurement is one statement, the client's wall time of execute and fetch, after an
untimed run of the same statement in the same state; the variants of a query are measured
in interleaved rounds, their order rotating each round, over rotating tenants, and the
results of all variants are checked to be equal. Medians are printed with min-max, the
ratios are of the medians (for the scan also the median of the rounds' ratios, and the
ratio of the minima, the runs least disturbed by other work on the machine). EXPLAIN
(ANALYZE, BUFFERS) of one run of each variant follows. --quick: the scan at a tenth of the
rows, fewer rounds everywhere (a smoke test of the benchmark; ~35 s on 2 busy cores).
The login role must be able to create databases and roles. Results are printed as a
Markdown section for bench/RESULTS.md.
"""

import argparse
import os
import platform
import re
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.db import connection  # noqa: E402
from psycopg import sql as pgsql  # noqa: E402

from tests.support import server_params  # noqa: E402

TENANTS = 100
ACTIVE = 90  # of the audit trail's tenants, see AUDIT_LOAD

# Frozen copies of the project's SQL (hzm/migrations/0001_foundation.py, 0005's per_row()
# and per_statement(), ops/migrations/0003_add_monitoring.py's AUDIT_LOGS_OWNER).
CURRENT_TENANT = """
CREATE FUNCTION app.current_tenant() RETURNS integer LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('app.tenant_id', true), '')::int
$$"""
PER_ROW = '"tenant_id" = app.current_tenant()'
PER_STATEMENT = '"tenant_id" = (SELECT app.current_tenant())'
AUDIT_LOGS_OWNER = (
    "pg_catalog.pg_has_role(CURRENT_USER, (SELECT c.relowner FROM pg_catalog.pg_class c "
    "WHERE c.oid = 'ops.audit_logs'::pg_catalog.regclass), 'USAGE')"
)
OWNER_POLICIES = ("rls_audit_logs_owner_read", "rls_audit_logs_owner_prune")

# --- 1. The scan ------------------------------------------------------------------------------

SCAN_TABLE = """
CREATE TABLE bench.scan_rows (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  tenant_id integer NOT NULL,
  payload text NOT NULL
)"""
# Tenants interleaved; one row in 997 matches the pattern (every tenant has some). No index
# on tenant_id: the scan stands for every plan that does not filter by a tenant index first.
SCAN_LOAD = """
INSERT INTO bench.scan_rows (tenant_id, payload)
SELECT 1 + n % {tenants}, 'order ' || n || ' ' || md5(n::text)
       || CASE WHEN n % 997 = 0 THEN ' zz' ELSE '' END
FROM generate_series(1, {rows}) AS n
"""
SCAN_RLS = "SELECT count(*) FROM bench.scan_rows WHERE payload LIKE '%zz%'"
SCAN_OWNER = (
    "SELECT count(*) FROM bench.scan_rows WHERE tenant_id = {tenant} AND payload LIKE '%zz%'"
)
# PostgreSQL tests `tenant_id = N` after the LIKE, wherever it is written (an equivalence
# class's clause, made again after the others), where a policy's condition always goes
# first; `(tenant_id = N) IS TRUE` is no equivalence and keeps its place: the bypass with
# the policy's order of tests.
SCAN_OWNER_FIRST = (
    "SELECT count(*) FROM bench.scan_rows WHERE (tenant_id = {tenant}) IS TRUE "
    "AND payload LIKE '%zz%'"
)

# --- 2. The audit trail -----------------------------------------------------------------------

# 2% platform rows (no tenant); the first tenth of the trail interleaved over all tenants,
# the rest over the active ones only (1..ACTIVE): the others have been quiet since, their
# rows all old. created_at grows with id, a row every 10 s; old/new values the size of a
# small row's to_jsonb().
AUDIT_LOAD = """
INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id, old_values,
                            new_values, ip_address, user_agent, request_id, created_at)
SELECT CASE WHEN n % 53 = 0 THEN NULL
            WHEN n <= {rows} / 10 THEN 1 + n % {tenants}
            ELSE 1 + n % {active} END,
       1000 + n % 997,
       (ARRAY['INSERT', 'UPDATE', 'UPDATE', 'DELETE'])[1 + n % 4],
       (ARRAY['generic_data', 'projects', 'users', 'files', 'api_keys'])[1 + n % 5],
       (n / 7)::text,
       CASE WHEN n % 4 <> 0 THEN jsonb_build_object(
         'id', n / 7, 'name', 'item ' || n, 'status', 'active', 'version', n % 9,
         'data', jsonb_build_object('title', md5(n::text), 'qty', n % 97)) END,
       CASE WHEN n % 4 <> 3 THEN jsonb_build_object(
         'id', n / 7, 'name', 'item ' || n, 'status', 'sold', 'version', n % 9 + 1,
         'data', jsonb_build_object('title', md5(n::text), 'qty', n % 89)) END,
       '10.0.0.1'::inet + n % 250,
       'Mozilla/5.0 (X11; Linux x86_64) bench',
       md5('r' || n),
       timestamptz '2026-01-01' + n * interval '10 seconds'
FROM generate_series(1, {rows}) AS n
"""
AUDIT_QUERIES = {
    "page of 50 by id": (
        "SELECT id, action, entity_type, entity_id, created_at FROM ops.audit_logs "
        "{where}ORDER BY id DESC LIMIT 50"
    ),
    "the model's page (created_at, id)": (
        "SELECT id, action, entity_type, entity_id, created_at FROM ops.audit_logs "
        "{where}ORDER BY created_at DESC, id DESC LIMIT 50"
    ),
    "count of its rows": "SELECT count(*) FROM ops.audit_logs {where}",
}


# --- Plumbing ---------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"-- {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def scratch() -> Iterator[tuple[psycopg.Connection, str]]:
    """A new database and a NOLOGIN NOBYPASSRLS role on the project's server, both dropped
    on exit; yields an autocommit connection to the database (as the login, the owner)."""
    name = f"hzm_bench_pol_{secrets.token_hex(4)}"
    signal.signal(signal.SIGTERM, _terminate)
    admin = psycopg.connect(**server_params("postgres"), autocommit=True)
    role = pgsql.Identifier(name)
    bench = None
    try:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(role))
        admin.execute(pgsql.SQL("CREATE ROLE {} NOLOGIN NOBYPASSRLS").format(role))
        admin.execute(pgsql.SQL("GRANT {} TO CURRENT_USER").format(role))  # for SET ROLE
        say(f"scratch database and role {name}")
        bench = psycopg.connect(**server_params(name), autocommit=True, prepare_threshold=None)
        yield bench, name
    finally:
        if bench is not None:
            bench.close()
        admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(role))
        admin.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))
        admin.close()
        say(f"scratch database and role {name} dropped")


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def machine(conn: psycopg.Connection) -> list[str]:
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
    (version,) = conn.execute("SHOW server_version").fetchone()
    (settings,) = conn.execute(
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) "
        "FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'jit', "
        "'max_parallel_workers_per_gather', 'random_page_cost', 'effective_cache_size')"
    ).fetchone()
    return [
        f"- machine: {os.cpu_count()} CPUs (nproc; {cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"- PostgreSQL {version} (the project's server, scratch database; {settings})",
    ]


# --- Variants and rounds ----------------------------------------------------------------------


@dataclass
class Variant:
    """One way of running a query: the state of the schema it needs (for each thing it
    sets, a statement run as the owner when the state differs: ALTER POLICY, ALTER
    FUNCTION), as the runtime role with the tenant set or as the owner, and settings."""

    key: str
    label: str
    state: dict[str, str] = field(default_factory=dict)
    runtime: bool = True
    settings: dict[str, str] = field(default_factory=dict)


class Runner:
    def __init__(self, conn: psycopg.Connection, role: str) -> None:
        self.conn = conn
        self.role = pgsql.Identifier(role)
        self.state: dict[str, str] = {}

    def _enter(self, variant: Variant, tenant: int) -> None:
        for thing, statement in variant.state.items():
            if self.state.get(thing) != statement:
                self.conn.execute(statement)
                self.state[thing] = statement
        for name, value in variant.settings.items():
            self.conn.execute("SELECT set_config(%s, %s, false)", [name, value])
        if variant.runtime:
            self.conn.execute(pgsql.SQL("SET ROLE {}").format(self.role))
            self.conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant)])

    def _leave(self, variant: Variant) -> None:
        self.conn.execute("RESET ROLE")
        self.conn.execute("SELECT set_config('app.tenant_id', '', false)")
        for name in variant.settings:
            self.conn.execute(pgsql.SQL("RESET {}").format(pgsql.Identifier(name)))

    def run(self, variant: Variant, query: str, tenant: int) -> tuple[float, list[tuple]]:
        """One timed run of `query` as `variant`, after an untimed one."""
        self._enter(variant, tenant)
        try:
            self.conn.execute(query).fetchall()
            started = time.perf_counter()
            rows = self.conn.execute(query).fetchall()
            return time.perf_counter() - started, rows
        finally:
            self._leave(variant)

    def explain(self, variant: Variant, query: str, tenant: int) -> str:
        self._enter(variant, tenant)
        try:
            plan = self.conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}").fetchall()
            return "\n".join(line for (line,) in plan)
        finally:
            self._leave(variant)


def measure(
    runner: Runner,
    variants: list[Variant],
    queries: dict[str, str],
    rounds: int,
    tenants: list[int],
) -> dict[str, list[float]]:
    """Interleaved rounds, the order of the variants rotating each round; `queries` maps a
    variant's key to its SQL ({tenant} filled in). Checks that all variants agree."""
    times: dict[str, list[float]] = {v.key: [] for v in variants}
    for round_ in range(rounds):
        tenant = tenants[round_ % len(tenants)]
        shift = round_ % len(variants)
        results = {}
        for variant in variants[shift:] + variants[:shift]:
            elapsed, rows = runner.run(variant, queries[variant.key].format(tenant=tenant), tenant)
            times[variant.key].append(elapsed)
            results[variant.key] = rows
        if len({repr(rows) for rows in results.values()}) != 1:
            raise AssertionError(f"the variants disagree for tenant {tenant}: {results}")
    return times


def ratio(slow: float, fast: float) -> str:
    value = slow / fast
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x"


def summary(times: list[float]) -> str:
    return f"{ms(statistics.median(times))} ({ms(min(times))}-{ms(max(times))})"


def plans(runner: Runner, variants: list[Variant], queries: dict[str, str], tenant: int) -> list:
    lines = []
    for variant in variants:
        plan = runner.explain(variant, queries[variant.key].format(tenant=tenant), tenant)
        lines += [f"{variant.key}) {variant.label}:", "", "```", plan, "```", ""]
    return lines


# --- 1. The scan ------------------------------------------------------------------------------


def load_scan(conn: psycopg.Connection, role: str, rows: int) -> None:
    say(f"loading {rows:,} rows into bench.scan_rows")
    started = time.perf_counter()
    conn.execute(SCAN_TABLE)
    conn.execute(SCAN_LOAD.format(tenants=TENANTS, rows=rows))
    # ENABLE without FORCE: the owner reads past the policy (the bypass); the runtime role
    # never does. The policy is rewritten per variant.
    conn.execute("ALTER TABLE bench.scan_rows ENABLE ROW LEVEL SECURITY")
    conn.execute(
        f"CREATE POLICY rls_scan_rows_tenant ON bench.scan_rows USING ({PER_ROW}) "
        f"WITH CHECK ({PER_ROW})"
    )
    conn.execute(pgsql.SQL("GRANT SELECT ON bench.scan_rows TO {}").format(pgsql.Identifier(role)))
    conn.execute("VACUUM ANALYZE bench.scan_rows")
    (size,) = conn.execute("SELECT pg_size_pretty(pg_table_size('bench.scan_rows'))").fetchone()
    say(f"loaded in {time.perf_counter() - started:.0f} s ({size})")


def bench_scan(conn: psycopg.Connection, role: str, rows: int, rounds: int) -> list[str]:
    load_scan(conn, role, rows)
    serial = {"max_parallel_workers_per_gather": "0"}

    def policy(predicate: str, parallel: str = "UNSAFE") -> dict[str, str]:
        return {
            "policy": f"ALTER POLICY rls_scan_rows_tenant ON bench.scan_rows "
            f"USING ({predicate}) WITH CHECK ({predicate})",
            "function": f"ALTER FUNCTION app.current_tenant() PARALLEL {parallel}",
        }

    variants = [
        Variant(
            "a",
            "runtime role, per-row policy `tenant_id = app.current_tenant()` (before 0005)",
            policy(PER_ROW),
            settings=serial,
        ),
        Variant(
            "b",
            "runtime role, per-statement policy `tenant_id = (SELECT app.current_tenant())` "
            "(after 0005)",
            policy(PER_STATEMENT),
            settings=serial,
        ),
        Variant(
            "c",
            "owner, `WHERE tenant_id = N AND payload LIKE ...` (the bypass)",
            runtime=False,
            settings=serial,
        ),
        Variant(
            "d",
            "owner, the bypass with the server's parallel setting (reference only)",
            runtime=False,
        ),
        Variant(
            "e",
            "owner, `WHERE (tenant_id = N) IS TRUE AND payload LIKE ...`: the bypass testing "
            "the tenant first, as a policy does (reference only)",
            runtime=False,
            settings=serial,
        ),
        Variant(
            "f",
            "runtime role, per-statement policy, app.current_tenant() made PARALLEL SAFE, the "
            "server's parallel setting (not in the project)",
            policy(PER_STATEMENT, "SAFE"),
        ),
    ]
    queries = {"a": SCAN_RLS, "b": SCAN_RLS, "c": SCAN_OWNER, "d": SCAN_OWNER}
    queries.update(e=SCAN_OWNER_FIRST, f=SCAN_RLS)
    runner = Runner(conn, role)
    tenants = [1 + (7 * n) % TENANTS for n in range(rounds)]
    say(f"1. scan: {rounds} rounds")
    times = measure(runner, variants, queries, rounds, tenants)
    med = {key: statistics.median(values) for key, values in times.items()}
    (matched,) = runner.run(variants[2], SCAN_OWNER.format(tenant=tenants[0]), tenants[0])[1][0]
    lines = [
        f"`{SCAN_RLS}` over {rows:,} rows of {TENANTS} tenants (interleaved; no index on "
        f"tenant_id; {matched:,} rows of tenant {tenants[0]} match), as the runtime role with the "
        f"tenant set or as the owner; {rounds} interleaved rounds in rotating order over rotating "
        "tenants, each timed run after an untimed one. All but d and f serial "
        "(max_parallel_workers_per_gather = 0): app.current_tenant() is PARALLEL UNSAFE (as "
        "CREATE FUNCTION makes it), so no plan under a policy is parallel.",
        "",
        "| variant | median ms (min-max) |",
        "|---|---:|",
    ]
    for variant in variants:
        lines.append(f"| {variant.key}) {variant.label} | {summary(times[variant.key])} |")
    lines += [
        "",
        "| ratio | of the medians | median of the rounds' | of the minima |",
        "|---|---:|---:|---:|",
    ]
    for label, slow, fast in [
        ("**per-row / per-statement (a/b)**", "a", "b"),
        ("**per-statement / bypass (b/c)**", "b", "c"),
        ("per-row / bypass (a/c)", "a", "c"),
        ("per-statement / bypass testing the tenant first (b/e)", "b", "e"),
        ("serial / parallel bypass (c/d)", "c", "d"),
        ("per-statement, serial / parallel (b/f)", "b", "f"),
    ]:
        x, y = times[slow], times[fast]
        paired = statistics.median(a / b for a, b in zip(x, y, strict=True))
        lines.append(
            f"| {label} | {med[slow] / med[fast]:.2f}x | {paired:.2f}x | {min(x) / min(y):.2f}x |"
        )
    lines += [
        "",
        "<details><summary>EXPLAIN (ANALYZE, BUFFERS), one run of each</summary>",
        "",
        *plans(runner, variants, queries, tenants[0]),
        "</details>",
    ]
    conn.execute("DROP TABLE bench.scan_rows")  # its pages out of the way of the next part
    conn.execute("ALTER FUNCTION app.current_tenant() PARALLEL UNSAFE")  # as it was
    return lines


# --- 2. The audit trail -----------------------------------------------------------------------


def audit_ddl(database: str) -> list[str]:
    """CREATE TABLE and CREATE INDEX of ops.audit_logs as Django makes them from the model
    (Django's connection pointed at the scratch database, should it connect)."""
    from ops.models import AuditLog

    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = database
    try:
        with connection.schema_editor(collect_sql=True) as editor:
            editor.create_model(AuditLog)
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original
    return [statement.rstrip(";") for statement in editor.collected_sql]


def load_audit(conn: psycopg.Connection, role: str, rows: int) -> list[str]:
    say(f"loading {rows:,} rows into ops.audit_logs")
    started = time.perf_counter()
    ddl = audit_ddl(conn.info.dbname)
    for statement in ddl:
        conn.execute(statement)
    conn.execute(AUDIT_LOAD.format(tenants=TENANTS, active=ACTIVE, rows=rows))
    # As the ops migrations leave it (0002, 0003), the tenant policy as 0005 made it.
    for statement in [
        "ALTER TABLE ops.audit_logs ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE ops.audit_logs FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY rls_audit_logs_tenant ON ops.audit_logs USING ({PER_STATEMENT}) "
        f"WITH CHECK ({PER_STATEMENT})",
        "CREATE POLICY rls_audit_logs_append ON ops.audit_logs FOR INSERT WITH CHECK (true)",
        "CREATE POLICY rls_audit_logs_owner_read ON ops.audit_logs FOR SELECT TO CURRENT_USER "
        f"USING ({AUDIT_LOGS_OWNER})",
        "CREATE POLICY rls_audit_logs_owner_prune ON ops.audit_logs FOR DELETE TO CURRENT_USER "
        f"USING ({AUDIT_LOGS_OWNER})",
    ]:
        conn.execute(statement)
    conn.execute(pgsql.SQL("GRANT SELECT ON ops.audit_logs TO {}").format(pgsql.Identifier(role)))
    conn.execute("VACUUM ANALYZE ops.audit_logs")
    (size,) = conn.execute("SELECT pg_size_pretty(pg_table_size('ops.audit_logs'))").fetchone()
    say(f"loaded in {time.perf_counter() - started:.0f} s ({size})")
    indexes = []
    for statement in ddl:
        found = re.match(r'CREATE INDEX "(\w+)" ON \S+ \((.*)\)$', statement)
        if found:
            indexes.append(f"{found[1]} ({found[2].replace(chr(34), '')})")
    return indexes


def audit_policies(tenant: str, owner_to: str) -> dict[str, str]:
    return {
        "rls_audit_logs_tenant": "ALTER POLICY rls_audit_logs_tenant ON ops.audit_logs "
        f"USING ({tenant}) WITH CHECK ({tenant})",
        **{name: f"ALTER POLICY {name} ON ops.audit_logs TO {owner_to}" for name in OWNER_POLICIES},
        "function": "ALTER FUNCTION app.current_tenant() PARALLEL UNSAFE",  # as the project has
    }


AUDIT_VARIANTS = [
    Variant(
        "a",
        "before 0005: per-row tenant, owner-only policies TO PUBLIC",
        audit_policies(PER_ROW, "PUBLIC"),
    ),
    Variant(
        "b",
        "per-statement tenant, owner-only policies TO PUBLIC",
        audit_policies(PER_STATEMENT, "PUBLIC"),
    ),
    Variant(
        "c",
        "per-row tenant, owner-only policies TO the owner",
        audit_policies(PER_ROW, "CURRENT_USER"),
    ),
    Variant(
        "d",
        "after 0005: per-statement tenant, owner-only policies TO the owner",
        audit_policies(PER_STATEMENT, "CURRENT_USER"),
    ),
    Variant("e", "owner, `WHERE tenant_id = N` written out (reference)", runtime=False),
]
# Not in the project: what an index led by tenant_id and ending in the page's order does.
WHAT_IF_INDEXES = {
    "idx_bench_audit_tenant_id": "CREATE INDEX idx_bench_audit_tenant_id "
    "ON ops.audit_logs (tenant_id, id)",
    "idx_bench_audit_tenant_created": "CREATE INDEX idx_bench_audit_tenant_created "
    "ON ops.audit_logs (tenant_id, created_at, id)",
}


def audit_rounds(
    runner: Runner,
    variants: list[Variant],
    rounds: int,
    kinds: dict[str, list[int]],
    explain: set[str],
) -> tuple[list[tuple[str, str, dict[str, list[float]]]], list[str]]:
    """Every query for every kind of tenant; EXPLAIN of the queries in `explain`."""
    measured, explained = [], []
    for label, template in AUDIT_QUERIES.items():
        queries = {v.key: template.format(where="") for v in variants}
        queries["e"] = template.format(where="WHERE tenant_id = {tenant} ")
        for kind, tenants in kinds.items():
            say(f"2. audit trail, {label}, {kind} tenant: {rounds} rounds")
            times = measure(runner, variants, queries, rounds, tenants)
            measured.append((label, kind, times))
            if label in explain:
                explained += [
                    f"**{label}, {kind} tenant ({tenants[0]})**",
                    "",
                    *plans(runner, variants, queries, tenants[0]),
                ]
    return measured, explained


def bench_audit(conn: psycopg.Connection, role: str, rows: int, rounds: int) -> list[str]:
    indexes = load_audit(conn, role, rows)
    runner = Runner(conn, role)
    kinds = {
        "an active": [1 + (13 * n) % ACTIVE for n in range(rounds)],
        "a quiet": [ACTIVE + 1 + (3 * n) % (TENANTS - ACTIVE) for n in range(rounds)],
    }
    sizes = {
        kind: conn.execute(
            "SELECT count(*) FROM ops.audit_logs WHERE tenant_id = %s", [tenants[0]]
        ).fetchone()[0]
        for kind, tenants in kinds.items()
    }
    variants = AUDIT_VARIANTS
    lines = [
        "ops.audit_logs as Django creates it from ops.models.AuditLog (its columns; indexes "
        f"{', '.join(indexes)} and the primary key), FORCE ROW LEVEL SECURITY and the "
        f"policies of the ops migrations, {rows:,} rows: 2% platform rows (no tenant), "
        f"{TENANTS} tenants, of which {ACTIVE} active throughout the trail "
        f"({sizes['an active']:,} rows each) and {TENANTS - ACTIVE} quiet since the first "
        f"tenth of it ({sizes['a quiet']:,} rows each, all old). The runtime role, its tenant "
        f"set, reads its own trail; {rounds} interleaved rounds per query and kind of tenant, "
        "in rotating order over rotating tenants, each timed run after an untimed one. "
        "Variants:",
        "",
        *[f"- {v.key}) {v.label}" for v in variants],
        "",
        "| query | tenant | "
        + " | ".join(f"{v.key}) ms" for v in variants)
        + " | a/d | b/d | d/c |",
        "|---|---|" + "---:|" * (len(variants) + 3),
    ]
    measured, explained = audit_rounds(
        runner, variants, rounds, kinds, {"page of 50 by id", "count of its rows"}
    )
    for label, kind, times in measured:
        med = {key: statistics.median(values) for key, values in times.items()}
        lines.append(
            f"| {label} | {kind} | "
            + " | ".join(summary(times[v.key]) for v in variants)
            + f" | **{ratio(med['a'], med['d'])}** | {ratio(med['b'], med['d'])} "
            f"| {ratio(med['d'], med['c'])} |"
        )
    lines += [
        "",
        "Each cell: median ms (min-max); ratios of the medians. a/d: before 0005 against "
        "after; b/d: the owner-only policies' TO alone, against after; d/c: the tenant read "
        "once per statement against once per row, both with the owner-only policies TO the "
        "owner.",
        "",
        "<details><summary>EXPLAIN (ANALYZE, BUFFERS), one run of each (the page by id and "
        "the count)</summary>",
        "",
        *explained,
        "</details>",
    ]

    say("2. audit trail, with indexes on (tenant_id, id) and (tenant_id, created_at, id)")
    for statement in WHAT_IF_INDEXES.values():
        conn.execute(statement)
    conn.execute("ANALYZE ops.audit_logs")
    after = [v for v in variants if v.key in ("d", "e")]
    measured, explained = audit_rounds(runner, after, rounds, kinds, {"page of 50 by id"})
    lines += [
        "",
        "Not in the project, for comparison: the same after 0005 (d) and as the owner (e) "
        "with two more indexes, `(tenant_id, id)` and `(tenant_id, created_at, id)`, measured "
        "after the rounds above:",
        "",
        "| query | tenant | d) ms | e) ms |",
        "|---|---|---:|---:|",
    ]
    for label, kind, times in measured:
        lines.append(f"| {label} | {kind} | {summary(times['d'])} | {summary(times['e'])} |")
    lines += [
        "",
        "<details><summary>EXPLAIN (ANALYZE, BUFFERS) with those indexes (the page by id)"
        "</summary>",
        "",
        *explained,
        "</details>",
    ]
    for name in WHAT_IF_INDEXES:
        conn.execute(f"DROP INDEX ops.{name}")
    return lines


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the scan's rows")
    parser.add_argument("--output", type=Path, help="also write the Markdown section here")
    args = parser.parse_args()
    scan_rows = 200_000 if args.quick else 2_000_000
    audit_rows = 300_000
    started = time.perf_counter()
    with scratch() as (conn, name):
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE SCHEMA ops")
        conn.execute("CREATE SCHEMA bench")
        conn.execute(CURRENT_TENANT)
        conn.execute(
            pgsql.SQL("GRANT USAGE ON SCHEMA app, ops, bench TO {}").format(pgsql.Identifier(name))
        )
        report = [
            f"### policies ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
            "",
            f"Command: `.venv/bin/python -m bench.policies{' --quick' if args.quick else ''}`",
            *machine(conn),
            "",
            "#### 1. A scan no tenant index serves: per-row policy, per-statement policy, bypass",
            "",
        ]
        report += bench_scan(conn, name, scan_rows, 5 if args.quick else 15)
        report += [
            "",
            "#### 2. The runtime role's own audit trail: owner-only policies TO PUBLIC "
            "against TO the owner",
            "",
        ]
        report += bench_audit(conn, name, audit_rows, 3 if args.quick else 11)
    report += ["", f"Total run time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
