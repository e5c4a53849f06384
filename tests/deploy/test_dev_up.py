"""`./dev up`, for real, on a scratch database: the reference data is loaded when missing
only, so an edit made between two starts survives, and a start writes no audit row;
`--reload-reference-data` puts the fixtures' values back, writing only what differs.

Each run is stopped once it says it starts the development server (runserver is killed
with the rest of its process group before it serves anything).
"""

import os
import signal
import subprocess
import threading

from tests.deploy.conftest import environment, query
from tests.support import REPO_ROOT

SERVER_STARTS = "starting the development server"
TIMEOUT_SECONDS = 300


def dev_up(dbname: str, *flags: str) -> str:
    """The output of `./dev up FLAGS` on `dbname` until it starts the server."""
    process = subprocess.Popen(
        ["./dev", "up", *flags],
        cwd=REPO_ROOT,
        env=environment(dbname),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: runserver is stopped with it
    )

    def stop() -> None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    watchdog = threading.Timer(TIMEOUT_SECONDS, stop)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if SERVER_STARTS in line:
                break
    finally:
        stop()
        watchdog.cancel()
        process.wait(timeout=60)
        process.stdout.close()
    output = "".join(lines)
    assert SERVER_STARTS in output, output
    return output


def platform_tenant(dbname: str) -> tuple:
    return query(
        dbname,
        "SELECT domain, primary_color, timezone, max_projects, created_at, version "
        "FROM core.tenants WHERE slug = 'platform'",
    )[0]


def audit_rows_after(dbname: str, last: int) -> list[tuple]:
    return query(
        dbname, "SELECT action, entity_type FROM ops.audit_logs WHERE id > %s ORDER BY id", [last]
    )


def last_audit_id(dbname: str) -> int:
    return query(dbname, "SELECT coalesce(max(id), 0) FROM ops.audit_logs")[0][0]


def test_dev_up_keeps_edits_between_starts_and_reloads_on_request(databases):
    database = databases.clone()
    first = dev_up(database)
    assert "loading missing reference data" in first
    assert query(database, "SELECT count(*) FROM billing.plans") == [(3,)]

    # What an admin might change on the platform tenant between two starts.
    query(
        database,
        "UPDATE core.tenants SET domain = 'hzm.example.com', primary_color = '#1A73E8', "
        "timezone = 'Europe/Istanbul', max_projects = 50 WHERE slug = 'platform'",
    )
    edited, last = platform_tenant(database), last_audit_id(database)

    dev_up(database)
    assert platform_tenant(database) == edited  # the edit, created_at and version as they were
    assert audit_rows_after(database, last) == []

    reloaded = dev_up(database, "--reload-reference-data")
    assert "reloading reference data" in reloaded
    domain, colour, timezone, max_projects, created_at, version = platform_tenant(database)
    # The fixture's values are back; what it does not name (domain, colour) is kept.
    assert (domain, colour, timezone, max_projects) == ("hzm.example.com", "#1A73E8", "UTC", 3)
    assert (created_at, version) == (edited[4], edited[5] + 1)
    assert audit_rows_after(database, last) == [("UPDATE", "core.tenants")]
