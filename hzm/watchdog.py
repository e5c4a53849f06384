"""The watchdog: ends the web process's backends that no request can explain (README, The watchdog).

SQL inside a request (an injection) runs as the runtime role, and every bound the request
sets is a setting that SQL may set again: `SET statement_timeout = 0`, the same for
lock_timeout, idle_in_transaction_session_timeout and client_connection_check_interval.
It may then hold a lock for as long as it likes: `LOCK TABLE core.users IN ACCESS
EXCLUSIVE MODE` (UPDATE on a table allows it), which stops every tenant's sign-in, or a
session-level advisory lock, which outlives its transaction on a connection that outlives
the request (CONN_MAX_AGE above 0, a PgBouncer without the README's reset) and, on
migrate's key (hzm.deploy.connection.MIGRATE_LOCK_KEY), stops every deploy.
PgBouncer's query_timeout drops the client of a statement that runs too long, but the
server notices a dropped client only when the statement ends, so the backend keeps its
locks. No privilege can take those statements from the runtime role.

The bound comes from outside the session: a login that sees every backend's activity
(pg_read_all_stats) and may end a backend (pg_signal_backend and EXECUTE on
pg_terminate_backend), and reads no table, ends the backends of the given logins (the web
process's) that
- have been in one transaction longer than `max_transaction`: longer than a request can
  last (gunicorn ends a worker's request after its `timeout`, 30 s here);
- or hold an advisory lock outside any transaction: a session-level one, which the web
  process never takes.

The SQL is built here (pure) and run by `manage.py watchdog`.
"""

from dataclasses import dataclass
from typing import Any

# pg_terminate_backend(pid, timeout): how long to wait for the backend to exit, in ms.
TERMINATE_WAIT_MS = 5000

# One statement finds and ends them, so that a backend is judged and ended on the same
# reading of pg_stat_activity; each reason is worked out once, in the inner query.
END_RUNAWAY_BACKENDS = """\
SELECT b.pid, b.usename, b.state, b.in_transaction, b.query, b.too_long,
       pg_catalog.pg_terminate_backend(b.pid, %(wait_ms)s) AS ended
FROM (
  SELECT a.pid, a.usename, a.state,
         floor(extract(epoch FROM now() - a.xact_start))::bigint AS in_transaction,
         left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200) AS query,
         coalesce(a.xact_start < now() - make_interval(secs => %(seconds)s), false)
           AS too_long,
         a.state = 'idle' AND EXISTS (
           SELECT FROM pg_catalog.pg_locks AS l
           WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted) AS idle_locking
  FROM pg_catalog.pg_stat_activity AS a
  WHERE a.datname = current_database()
    AND a.backend_type = 'client backend'
    AND a.pid <> pg_catalog.pg_backend_pid()
    AND a.usename = ANY(%(logins)s)
) AS b
WHERE b.too_long OR b.idle_locking
ORDER BY b.pid"""

# What the watchdog's own login may do; checked before the first round.
ITS_PRIVILEGES = """\
SELECT r.rolsuper,
       pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
       pg_catalog.pg_has_role(current_user, 'pg_signal_backend', 'USAGE'),
       pg_catalog.has_function_privilege(
         'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE'),
       current_user
FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user"""

# The watched logins as the server knows them: (name, superuser, login).
WATCHED_LOGINS = """\
SELECT w.name, r.rolsuper, r.rolcanlogin
FROM unnest(%s::text[]) AS w(name) LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = w.name
ORDER BY w.name"""


class WatchdogRefused(Exception):
    """The watchdog cannot do its job as configured (a missing grant, a wrong login)."""


@dataclass(frozen=True)
class EndedBackend:
    pid: int
    login: str
    state: str | None
    in_transaction: int | None  # seconds, None outside a transaction
    query: str | None
    too_long: bool  # else: an advisory lock outside any transaction
    ended: bool  # False: it had not exited after TERMINATE_WAIT_MS

    def describe(self) -> str:
        why = (
            f"in one transaction for {self.in_transaction} s"
            if self.too_long
            else "holding an advisory lock outside any transaction"
        )
        outcome = "ended" if self.ended else f"signalled, not gone after {TERMINATE_WAIT_MS} ms"
        return (
            f"backend {self.pid} of {self.login} {outcome}: {why} "
            f"(state {self.state or 'unknown'}; last statement: {self.query or '-'})"
        )


def check_privileges(cursor: Any, logins: list[str]) -> None:
    """Refuse (WatchdogRefused) unless this login can see and end the watched logins' backends."""
    cursor.execute(ITS_PRIVILEGES)
    superuser, reads_stats, signals, terminates, me = cursor.fetchone()
    if not superuser:
        missing = [
            grant
            for grant, held in (
                ("GRANT pg_read_all_stats TO {me}", reads_stats),
                ("GRANT pg_signal_backend TO {me}", signals),
                (
                    "GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) TO {me} "
                    "(in this database)",
                    terminates,
                ),
            )
            if not held
        ]
        if missing:
            raise WatchdogRefused(
                f"the watchdog's login {me} may not see or end other backends: as a superuser, "
                + "; ".join(grant.format(me=me) for grant in missing)
                + " (README, The watchdog)"
            )
    cursor.execute(WATCHED_LOGINS, [logins])
    for name, is_superuser, can_login in cursor.fetchall():
        if is_superuser is None:
            raise WatchdogRefused(f"--login {name}: no such role")
        if name == me:
            raise WatchdogRefused(f"--login {name} is the watchdog's own login")
        if is_superuser:
            raise WatchdogRefused(
                f"--login {name} is a superuser, whose backends pg_signal_backend cannot end: "
                "the web process must not log in as one (README, Serving in production)"
            )
        if not can_login:
            raise WatchdogRefused(f"--login {name} cannot log in (NOLOGIN): name a login role")


def end_runaway_backends(cursor: Any, logins: list[str], max_seconds: int) -> list[EndedBackend]:
    """End the watched logins' backends that no request explains; what was ended."""
    cursor.execute(
        END_RUNAWAY_BACKENDS,
        {"logins": logins, "seconds": max_seconds, "wait_ms": TERMINATE_WAIT_MS},
    )
    return [EndedBackend(*row) for row in cursor.fetchall()]
