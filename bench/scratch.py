"""What the benchmarks share: a scratch database on the project's server, the machine's
description, and writing a benchmark's section of bench/RESULTS.md.

The harness once in bench/generic_data.py (retired) and bench/policies.py, kept in one
place for the benchmarks written since (bench/writes.py, search.py, context.py).
"""

import os
import platform
import re
import secrets
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADER = "# Benchmark results\n\nNumbers measured by the scripts in bench/ (see bench/README.md).\n"


def say(message: str) -> None:
    print(f"-- {message}", file=sys.stderr, flush=True)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A new database `<prefix>_<random>` on the project's server, migrated, Django's
    default connection pointed at it; dropped on exit, also on Ctrl-C or SIGTERM."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections

    from tests.support import server_params

    name = f"{prefix}_{secrets.token_hex(4)}"
    signal.signal(signal.SIGTERM, _terminate)
    admin = psycopg.connect(**server_params("postgres"), autocommit=True)
    default = connections["default"]
    original = default.settings_dict["NAME"]
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        default.close()
        default.settings_dict["NAME"] = name
        say(f"scratch database {name}: migrating")
        call_command("migrate", verbosity=0)
        yield name
    finally:
        connections.close_all()
        default.settings_dict["NAME"] = original
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        say(f"scratch database {name} dropped")


def machine(settings: tuple[str, ...]) -> list[str]:
    """The machine and the server (version and the `settings` named), as Markdown items."""
    from django.db import connection

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
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.1f} {:.1f} {:.1f} at the start".format(*os.getloadavg())
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
        cursor.execute(
            "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) "
            "FROM pg_settings WHERE name = ANY(%s)",
            [list(settings)],
        )
        (shown,) = cursor.fetchone()
    return [
        f"- machine: {os.cpu_count()} CPUs (nproc; {cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}{load}",
        f"- PostgreSQL {version} (the project's server, a scratch database; {shown})",
    ]


def write_section(title: str, text: str) -> None:
    """Replace the section `## <title>` of RESULTS.md (up to the next `## `) with `text`,
    which starts with that heading; appended when there is none."""
    existing = RESULTS.read_text() if RESULTS.exists() else HEADER
    heading = re.compile(rf"^## {re.escape(title)}[ \t]*$", re.MULTILINE)
    found = heading.search(existing)
    body = text.rstrip("\n") + "\n"
    if found is None:
        RESULTS.write_text(existing.rstrip("\n") + "\n\n\n" + body)
        return
    following = re.compile(r"^## ", re.MULTILINE).search(existing, found.end())
    tail = existing[following.start() :] if following else ""
    RESULTS.write_text(existing[: found.start()] + body + ("\n\n" + tail if tail else ""))
