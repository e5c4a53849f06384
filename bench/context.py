"""The verified tenant context against the forgeable one it replaced, and against no context.

    .venv/bin/python -m bench.context [--quick] [--rounds N] [--output FILE]

Issue 12 asks what the unforgeable context (hzm/migrations/0006_verified_tenant_context.py)
costs; issue 15 what a context costs a request. One scratch database (migrated, so the
project's own functions, triggers and policies), tenants each with a generic-data table of
rows, and three ways of running the same work through the project's code:

- **verified**: the project as it is: tenant_context() signs a token for the transaction
  (the role switch returns the backend and the transaction's start), app.current_tenant()
  and app.current_user_id() verify it (HMAC with the owner-only keys) once per statement;
- **forgeable**: the context before hzm 0006, put back for the measurement: the three
  functions with their previous bodies (app.current_tenant() a plain, inlined read of the
  setting), entered as the previous tenant_context() did (the role switch, then
  app.set_context() and app.set_request_context() in one statement);
- **bypass**: no context at all: the login (the owner, a superuser here, to whom row level
  security does not apply) runs the same ORM query with the tenant filter written out.

Statement-level (one context open, each operation timed on its own): a point read by id,
a page of 50 by id, a one-row insert, a one-row update and a full-text search through the
generic-data service (writes and searches have no bypass: the service refuses to run
without a context). Per request: the same point read and page with a context opened and
closed around each (BEGIN, the role switch, the context, the read, COMMIT), against the
bypass in a transaction of its own (BEGIN, the read, COMMIT), as a request pays it. The
statements a context adds are counted too.

The results go to bench/RESULTS.md as its section `## context` (the others kept;
--no-write: print only). Every comparison runs in interleaved rounds, the order of the
variants rotating each round, over rotating tenants; the functions are swapped (CREATE OR
REPLACE, as the owner) when a round changes variant. Medians with min-max; ratios of the
medians (time of the verified way over the forgeable one), so up to 1.05 means "within
5%". --quick: fewer tenants, rows and rounds (a smoke test of the benchmark).
"""

import argparse
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from bench.scratch import machine, say, scratch_database, write_section  # noqa: E402
from bench.tenant_data import load_rows, make_tenants, rows_for, sql  # noqa: E402
from generic_data import services  # noqa: E402
from generic_data.models import GenericData  # noqa: E402
from hzm.db import context_tokens  # noqa: E402
from hzm.db import sql as hzm_sql  # noqa: E402
from hzm.db.context import as_runtime_role, context_token, tenant_context, timeouts  # noqa: E402
from hzm.db.context_tokens import Backend  # noqa: E402
from hzm.db.operations import runtime_role  # noqa: E402
from hzm.db.round_trips import traced  # noqa: E402

VERIFIED, FORGEABLE, BYPASS = "verified", "forgeable", "bypass"
# Per request only: the verified context sent one statement at a time, as before
# hzm.db.round_trips (BEGIN, the switch, the token: a round trip each).
STEPWISE = "verified, one statement at a time"
MIGRATION = importlib.import_module("hzm.migrations.0006_verified_tenant_context")
DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}
FUNCTIONS = {
    VERIFIED: [
        ("app.current_tenant", "", "int", MIGRATION.CURRENT_TENANT, "plpgsql", DEFINER),
        ("app.current_user_id", "", "int", MIGRATION.CURRENT_USER_ID, "plpgsql", DEFINER),
        ("app.set_context", "p_tenant_id int, p_user_id int", "void", MIGRATION.SET_CONTEXT,
         "plpgsql", {}),
    ],
    FORGEABLE: [
        ("app.current_tenant", "", "int", MIGRATION.PREVIOUS_CURRENT_TENANT, "sql", {}),
        ("app.current_user_id", "", "int", MIGRATION.PREVIOUS_CURRENT_USER_ID, "sql", {}),
        ("app.set_context", "p_tenant_id int, p_user_id int", "void",
         MIGRATION.PREVIOUS_SET_CONTEXT, "plpgsql", {}),
    ],
}  # fmt: skip


class Functions:
    """Which context functions the database holds now; swapped only when a variant needs."""

    def __init__(self) -> None:
        self.installed = VERIFIED

    def use(self, variant: str) -> None:
        wanted = FORGEABLE if variant == FORGEABLE else VERIFIED
        if wanted == self.installed:
            return
        with connection.cursor() as cursor:
            for name, arguments, returns, body, language, options in FUNCTIONS[wanted]:
                # CREATE OR REPLACE sets every attribute anew (definer or not, its SET).
                volatility = "VOLATILE" if name == "app.set_context" else "STABLE"
                cursor.execute(
                    hzm_sql.create_function(
                        name, arguments, returns, body, language=language,
                        volatility=volatility, **options,
                    )
                )  # fmt: skip
        self.installed = wanted


@contextmanager
def forgeable_context(tenant: int, user: int) -> Iterator[None]:
    """tenant_context() as it was before hzm 0006: the role, then app.set_context()."""
    with as_runtime_role(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT app.set_context(%s, %s), app.set_request_context(%s, %s, %s)",
            [tenant, user, None, None, None],
        )
        connection.hzm_tenant_id = tenant  # what tenant_context() tells the service
        try:
            yield
        finally:
            connection.hzm_tenant_id = None


@contextmanager
def stepwise_context(tenant: int, user: int) -> Iterator[None]:
    """tenant_context() as it was before hzm.db.round_trips, for the per-request comparison."""
    values = {"role": runtime_role(), **timeouts()}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT "
            + ", ".join("set_config(%s, %s, true)" for _ in values)
            + f", {context_tokens.BACKEND_COLUMNS}",
            [item for pair in values.items() for item in pair],
        )
        *_, pid, start = cursor.fetchone()
        cursor.execute(
            "SELECT set_config(%s, %s, true), app.set_request_context(%s, %s, %s)",
            [context_tokens.SETTING, context_token(tenant, user, Backend(pid, start)), None,
             None, None],
        )  # fmt: skip
        connection.hzm_tenant_id = tenant
        try:
            yield
        finally:
            connection.hzm_tenant_id = None


@contextmanager
def context(variant: str, tenant: dict[str, int]) -> Iterator[None]:
    if variant == STEPWISE:
        with stepwise_context(tenant["tenant"], tenant["user"]):
            yield
    elif variant == VERIFIED:
        with tenant_context(tenant["tenant"], tenant["user"]):
            yield
    elif variant == FORGEABLE:
        with forgeable_context(tenant["tenant"], tenant["user"]):
            yield
    else:
        with transaction.atomic():
            yield


# --- The work ------------------------------------------------------------------------------


def point_read(variant: str, tenant: dict[str, int], row: int) -> Any:
    rows = GenericData.objects.filter(pk=row)
    if variant == BYPASS:
        rows = rows.filter(tenant_id=tenant["tenant"])
    return rows.values_list("data", flat=True).first()


def page(variant: str, tenant: dict[str, int], row: int) -> Any:
    rows = GenericData.objects.filter(table_id=tenant["table"], is_deleted=False)
    if variant == BYPASS:
        rows = rows.filter(tenant_id=tenant["tenant"])
    return list(rows.order_by("id").values_list("id", "data")[:50])


def insert(variant: str, tenant: dict[str, int], row: int) -> Any:
    (data,) = rows_for(f"b{row}-{time.perf_counter_ns()}", 1)
    return services.create_rows(tenant["project"], "items", [data])


def update(variant: str, tenant: dict[str, int], row: int) -> Any:
    return services.update_row(tenant["project"], "items", row, {"qty": row % 97})


def search(variant: str, tenant: dict[str, int], row: int) -> Any:
    return services.search_rows(tenant["project"], "items", f"word{row % 2000}").rows


STATEMENT_CASES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "point read by id": (point_read, (VERIFIED, FORGEABLE, BYPASS)),
    "page of 50 by id": (page, (VERIFIED, FORGEABLE, BYPASS)),
    "one-row insert (service)": (insert, (VERIFIED, FORGEABLE)),
    "one-row update (service)": (update, (VERIFIED, FORGEABLE)),
    "full-text search (service)": (search, (VERIFIED, FORGEABLE)),
}
REQUEST_VARIANTS = (VERIFIED, STEPWISE, FORGEABLE, BYPASS)
REQUEST_CASES: dict[str, Callable[..., Any]] = {
    "point read by id, a context per read": point_read,
    "page of 50 by id, a context per page": page,
}


# --- Measuring -----------------------------------------------------------------------------


def row_ids(tenant: dict[str, int], count: int) -> list[int]:
    return [
        r
        for (r,) in sql(
            "SELECT id FROM app.generic_data WHERE table_id = %s ORDER BY random() LIMIT %s",
            [tenant["table"], count],
        )
    ]


def statement_level(
    tenants: list[dict[str, int]], rounds: int, per_round: int, functions: Functions
) -> dict[str, dict[str, list[float]]]:
    """Inside one open context per variant and round: each operation timed alone."""
    times = {case: {v: [] for v in variants} for case, (_, variants) in STATEMENT_CASES.items()}
    for round_ in range(rounds):
        tenant = tenants[round_ % len(tenants)]
        ids = row_ids(tenant, per_round)
        order = [VERIFIED, FORGEABLE, BYPASS]
        shift = round_ % len(order)
        for variant in order[shift:] + order[:shift]:
            functions.use(variant)
            with context(variant, tenant):
                for case, (work, variants) in STATEMENT_CASES.items():
                    if variant not in variants:
                        continue
                    work(variant, tenant, ids[0])  # untimed: plans and caches warm
                    for row in ids:
                        started = time.perf_counter()
                        work(variant, tenant, row)
                        times[case][variant].append(time.perf_counter() - started)
                transaction.set_rollback(True)  # every round starts from the same rows
    return times


def request_level(
    tenants: list[dict[str, int]], rounds: int, per_round: int, functions: Functions
) -> dict[str, dict[str, list[float]]]:
    """A context (or, for the bypass, a transaction) opened and closed around each read."""
    times = {case: {v: [] for v in REQUEST_VARIANTS} for case in REQUEST_CASES}
    for round_ in range(rounds):
        tenant = tenants[round_ % len(tenants)]
        ids = row_ids(tenant, per_round)
        order = list(REQUEST_VARIANTS)
        shift = round_ % len(order)
        for variant in order[shift:] + order[:shift]:
            functions.use(variant)
            for case, work in REQUEST_CASES.items():
                with context(variant, tenant):
                    work(variant, tenant, ids[0])
                for row in ids:
                    started = time.perf_counter()
                    with context(variant, tenant):
                        work(variant, tenant, row)
                    times[case][variant].append(time.perf_counter() - started)
    return times


def round_trips_per_context(tenant: dict[str, int], functions: Functions) -> dict[str, int]:
    """How many round trips a unit of work of one point read makes (BEGIN and COMMIT too)."""
    counted: dict[str, int] = {}
    for variant in REQUEST_VARIANTS:
        functions.use(variant)
        with traced(connection) as trace:
            with context(variant, tenant):
                point_read(variant, tenant, 1)
        counted[variant] = trace.round_trips
    return counted


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}" if seconds < 0.01 else f"{seconds * 1000:.2f}"


def row(label: str, samples: dict[str, list[float]], variants: tuple[str, ...]) -> str:
    medians = {v: statistics.median(samples[v]) for v in variants}
    cells = [
        f"{ms(medians[v])} ({ms(min(samples[v]))}-{ms(max(samples[v]))})"
        for v in (VERIFIED, FORGEABLE, BYPASS)
        if v in variants
    ]
    cells += [""] * (3 - len(cells))
    versus_forgeable = medians[VERIFIED] / medians[FORGEABLE]
    versus_bypass = (
        f"{medians[BYPASS] / medians[VERIFIED]:.2f}x / {medians[BYPASS] / medians[FORGEABLE]:.2f}x"
        if BYPASS in variants
        else "-"
    )
    return f"| {label} | {' | '.join(cells)} | {versus_forgeable:.3f} | {versus_bypass} |"


HEADER = [
    "| work | verified, ms | forgeable, ms | bypass, ms | verified / forgeable (time) | "
    "throughput vs bypass (verified / forgeable) |",
    "|---|---:|---:|---:|---:|---:|",
]


REQUEST_HEADER = [
    "| work | "
    + " | ".join(f"{v}, ms" for v in REQUEST_VARIANTS)
    + " | throughput vs bypass: "
    + " / ".join(v for v in REQUEST_VARIANTS if v != BYPASS)
    + " |",
    "|---|" + "---:|" * (len(REQUEST_VARIANTS) + 1),
]


def request_row(label: str, samples: dict[str, list[float]]) -> str:
    medians = {v: statistics.median(samples[v]) for v in REQUEST_VARIANTS}
    cells = [
        f"{ms(medians[v])} ({ms(min(samples[v]))}-{ms(max(samples[v]))})" for v in REQUEST_VARIANTS
    ]
    versus_bypass = " / ".join(
        f"{medians[BYPASS] / medians[v]:.2f}x" for v in REQUEST_VARIANTS if v != BYPASS
    )
    return f"| {label} | {' | '.join(cells)} | {versus_bypass} |"


def main() -> None:
    # As production runs (DEBUG off): no query log, whose cost per statement would be
    # counted against every statement a context adds.
    settings.DEBUG = False
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tenants, rows and rounds")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 30, quick 6)")
    parser.add_argument("--output", type=Path, help="also write the Markdown section here")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args()
    tenant_count, rows, per_round = (4, 2_000, 20) if args.quick else (10, 20_000, 40)
    rounds = args.rounds or (6 if args.quick else 30)
    started = time.perf_counter()
    command = "python -m bench.context" + (" --quick" if args.quick else "")
    command += f" --rounds {args.rounds}" if args.rounds else ""
    with scratch_database("hzm_bench_ctx"):
        report = [
            "## context",
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            f"Command: `.venv/bin/{command}`",
            *machine(("shared_buffers", "work_mem", "synchronous_commit", "jit")),
            f"- {tenant_count} tenants x {rows:,} rows of generic data; {rounds} interleaved "
            f"rounds (variant order rotating), {per_round} operations per case, variant and "
            "round",
            "",
        ]
        say("tenants and rows")
        tenants = make_tenants(tenant_count)
        load_rows(tenants, 1, rows)
        functions = Functions()
        try:
            counted = round_trips_per_context(tenants[0], functions)
            say("statement-level")
            level = statement_level(tenants, rounds, per_round, functions)
            say("per request")
            requests = request_level(tenants, rounds, per_round, functions)
        finally:
            functions.use(VERIFIED)
        report += [
            "Statement-level: one context open, each operation timed on its own.",
            "",
            *HEADER,
            *[row(case, level[case], STATEMENT_CASES[case][1]) for case in STATEMENT_CASES],
            "",
            "Per request: a context opened and closed around each read (the bypass: a "
            "transaction of its own).",
            "",
            *REQUEST_HEADER,
            *[request_row(case, requests[case]) for case in REQUEST_CASES],
            "",
            "Round trips of a one-read unit of work (BEGIN and COMMIT included; counted in "
            "libpq's trace, hzm.db.round_trips.traced): "
            + ", ".join(f"{v} {n}" for v, n in counted.items())
            + ".",
            "",
        ]
        report += goals(level, requests, counted)
    report += ["", f"Run time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    if not args.no_write:
        write_section("context", text)
        say("bench/RESULTS.md: section 'context' written")


def goals(level: dict[str, Any], requests: dict[str, Any], counted: dict[str, int]) -> list[str]:
    def median_ratio(samples: dict[str, list[float]], slow: str, fast: str) -> float:
        return statistics.median(samples[slow]) / statistics.median(samples[fast])

    lines = ["Goals:"]
    worst = max(median_ratio(level[case], VERIFIED, FORGEABLE) for case in STATEMENT_CASES)
    lines.append(
        f"- issue 12, verified within 5% of the forgeable context on reads, writes and "
        f"searches: worst case {worst:.3f}x the time: {'met' if worst <= 1.05 else 'NOT met'}."
    )
    beyond = counted[VERIFIED] - counted[BYPASS]
    lines.append(
        f"- issue 15, entering a context costs at most one round trip beyond the transaction's "
        f"own: {beyond} beyond ({counted[VERIFIED]} against {counted[BYPASS]}): "
        f"{'met' if beyond <= 1 else 'NOT met'}."
    )
    point = requests["point read by id, a context per read"]
    throughput = statistics.median(point[BYPASS]) / statistics.median(point[VERIFIED])
    lines.append(
        f"- issue 15, per-request point reads at least 0.85x the bypass's throughput: "
        f"{throughput:.2f}x: {'met' if throughput >= 0.85 else 'NOT met'}."
    )
    return lines


if __name__ == "__main__":
    if "--help" not in sys.argv and "-h" not in sys.argv:
        say("bench.context: verified vs forgeable vs bypass")
    main()
