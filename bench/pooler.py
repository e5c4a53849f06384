"""What PgBouncer's reset after every transaction costs (README, The role migrations run as).

    .venv/bin/python -m bench.pooler [--rounds N] [--no-write]

The README's PgBouncer runs `DISCARD ALL` on a server connection after every transaction
(server_reset_query_always = 1), so that a plain SET injected into one request never
reaches the next client. Two PgBouncers in transaction mode with the README's lines, one
with the reset switched off (server_reset_query_always = 0), each in front of the same
empty scratch database (hzm_bench_pool_<random>, dropped at the end), each with a pool of
2 server connections; 4 client threads run short transactions through one and then the
other, the order alternating round by round:

- one `SELECT 1` per transaction (the reset's whole cost shows);
- five `SELECT 1`s per transaction (a little more like a request).

Throughput is transactions per second summed over the clients; medians with min-max
over the rounds, and the ratio of the medians (with the reset over without). Needs
PgBouncer (as the tests do: tests/production/servers.py starts it) and a role that may
create databases. Writes its section of bench/RESULTS.md (`## pooler`; --no-write:
print only). Not part of the test suite.
"""

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402

from bench.scratch import say, write_section  # noqa: E402
from tests.production.servers import pgbouncer, readme_pgbouncer_settings  # noqa: E402
from tests.support import server_params  # noqa: E402

CLIENTS = 4
POOL_SIZE = 2
TRANSACTIONS_PER_CLIENT = 1000
WORKLOADS = {"one SELECT 1 per transaction": 1, "five SELECT 1s per transaction": 5}
VARIANTS = {"the README's reset": {}, "no reset": {"server_reset_query_always": "0"}}


def throughput(url: str, statements: int) -> float:
    """Transactions per second of CLIENTS threads through `url`, summed."""
    rates: list[float] = []
    failures: list[BaseException] = []

    def client() -> None:
        try:
            # No prepared statements, as Django (they do not survive transaction pooling).
            with psycopg.connect(url, prepare_threshold=None) as conn:
                started = time.perf_counter()
                for _ in range(TRANSACTIONS_PER_CLIENT):
                    with conn.transaction():
                        for _ in range(statements):
                            conn.execute("SELECT 1")
                rates.append(TRANSACTIONS_PER_CLIENT / (time.perf_counter() - started))
        except BaseException as error:  # reported after the threads end
            failures.append(error)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (10)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md")
    args = parser.parse_args()
    started = time.perf_counter()
    params = server_params("postgres")
    host, port, user = str(params.get("host", "")), int(params.get("port") or 5432), params["user"]
    name = f"hzm_bench_pool_{secrets.token_hex(4)}"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        version = admin.execute("SHOW server_version").fetchone()[0]
    results: dict[tuple[str, str], list[float]] = {}
    try:
        with (
            pgbouncer(host, port, name, [user], pool_size=POOL_SIZE) as with_reset,
            pgbouncer(
                host, port, name, [user], pool_size=POOL_SIZE, overrides=VARIANTS["no reset"]
            ) as without,
        ):
            urls = {
                "the README's reset": with_reset.url(user, name),
                "no reset": without.url(user, name),
            }
            for workload, statements in WORKLOADS.items():
                for url in urls.values():  # warm-up: connections, caches
                    throughput(url, statements)
                for round_ in range(args.rounds):
                    order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
                    for variant in order:
                        rate = throughput(urls[variant], statements)
                        results.setdefault((workload, variant), []).append(rate)
                say(f"{workload}: done")
    finally:
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    lines = [
        "## pooler",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/pooler.py`. "
        f"Command: `.venv/bin/python -m bench.pooler --rounds {args.rounds}`",
        "",
        f"- machine: {os.cpu_count()} CPUs (nproc); PostgreSQL {version}; PgBouncer in "
        f"transaction mode with the README's lines ({'; '.join(readme_pgbouncer_settings())})",
        f"- {CLIENTS} client threads x {TRANSACTIONS_PER_CLIENT} transactions per round, a "
        f"pool of {POOL_SIZE} server connections, {args.rounds} rounds alternating the order",
        "",
        "| workload | the README's reset, tx/s | no reset, tx/s | with / without |",
        "|---|---:|---:|---:|",
    ]
    for workload in WORKLOADS:
        cells = []
        medians = {}
        for variant in VARIANTS:
            rates = results[workload, variant]
            medians[variant] = statistics.median(rates)
            cells.append(f"{medians[variant]:,.0f} ({min(rates):,.0f}-{max(rates):,.0f})")
        ratio = medians["the README's reset"] / medians["no reset"]
        lines.append(f"| {workload} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")
    lines += ["", f"Run time: {time.perf_counter() - started:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("pooler", text)
        say("bench/RESULTS.md: section 'pooler' written")


if __name__ == "__main__":
    main()
