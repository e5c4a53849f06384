"""What SQL injected into one request leaves on a pooled server connection: nothing.

Behind the README's PgBouncer (transaction mode, its lines of pgbouncer.ini as written
there), with ONE server connection, so that the next client surely gets the attacker's.
The attacker holds what an injection holds, the web process's authenticator switched to
the runtime role, and leaves session state behind with plain SETs (which outlive their
transaction): read-only transactions, row level security off (queries would fail),
a setting the audit trail reads, a huge work_mem, the role itself, a session advisory
lock on migrate's key. The next client finds the server connection as new.
"""

from typing import Any

import psycopg
import pytest
from psycopg import sql

from hzm.db.operations import runtime_role
from hzm.deploy.connection import MIGRATE_LOCK_KEY
from tests.production.deployment import Deployment

# What the injection leaves behind: (statement, setting it changed, its value then).
LEFTOVERS = [
    ("SET default_transaction_read_only = on", "default_transaction_read_only", "on"),
    ("SET default_transaction_isolation = 'serializable'", "default_transaction_isolation",
     "serializable"),
    ("SET row_security = off", "row_security", "off"),
    ("SET work_mem = '2GB'", "work_mem", "2GB"),
    ("SET statement_timeout = '47min'", "statement_timeout", "47min"),
    ("SET app.ip_address = '203.0.113.66'", "app.ip_address", "203.0.113.66"),
]  # fmt: skip


@pytest.fixture(scope="module")
def bouncer(deployment: Deployment) -> Any:
    with deployment.pgbouncer(("hzm_web",), pool_size=1) as address:
        yield address


def settings_of(conn: psycopg.Connection) -> dict[str, str]:
    names = [name for _, name, _ in LEFTOVERS]
    values = conn.execute(
        "SELECT " + ", ".join("current_setting(%s, true)" for _ in names), names
    ).fetchone()
    return dict(zip(names, values, strict=True))


def test_the_next_client_of_the_server_connection_finds_none_of_it(deployment, bouncer):
    url = bouncer.url(deployment.login("hzm_web"), deployment.dbname)
    with psycopg.connect(url) as attacker:
        attacker.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(runtime_role())))
        for statement, _, _ in LEFTOVERS:
            attacker.execute(statement)
        attacker.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(runtime_role())))
        attacker.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY)
        server_pid = attacker.execute("SELECT pg_backend_pid()").fetchone()[0]
        # Within its own session all of it holds (so the test would see it left behind).
        assert settings_of(attacker) == {name: value for _, name, value in LEFTOVERS}
    with psycopg.connect(url) as client:
        (pid, user, locks) = client.execute(
            "SELECT pg_backend_pid(), current_user, "
            "(SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
            " AND locktype = 'advisory')"
        ).fetchone()
        assert pid == server_pid  # the attacker's server connection
        assert (user, locks) == (deployment.login("hzm_web"), 0)
        # Each setting as a new session of the server connection has it (whatever the
        # server's configuration), none as the attacker left it.
        found = settings_of(client)
        assert not_reset(client) == [] and found["app.ip_address"] == ""
        assert all(found[name] != left for _, name, left in LEFTOVERS), found
        (read_only,) = client.execute("SHOW transaction_read_only").fetchone()
        assert read_only == "off"


def not_reset(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """The standard settings of LEFTOVERS that differ from what RESET gives the session
    (pg_settings.reset_val, in the same unit as its setting): (name, setting, reset_val)."""
    names = [name for _, name, _ in LEFTOVERS if "." not in name]
    rows = conn.execute(
        "SELECT name, setting, reset_val FROM pg_settings WHERE name = ANY(%s)", [names]
    ).fetchall()
    assert len(rows) == len(names), rows
    return [row for row in rows if row[1] != row[2]]
