"""Fewer round trips for a unit of work's own bookkeeping: statements sent with another one.

A tenant context sends statements of its own: the role switch, the signed token and,
inside an outer transaction, the outer values put back when it ends. Sent one by one,
each is a round trip the request waits for, as long as the query it wraps (issue 15:
a context cost a point read a third of its throughput). Two ways of sending one along
with another statement, both in the order written:

- begin_with(): BEGIN and a statement in one simple-protocol message, for a block that
  opens its transaction (psycopg would send BEGIN alone first, a round trip of its own);
- defer(): a statement owed before the next one of the transaction; the execute wrapper
  that every connection of the project's backend has (send_deferred) sends the owed
  statements and the next statement in one psycopg pipeline. Owed statements die with
  the transaction they were owed in (the backend forgets them at commit, rollback and
  close): a block that sends nothing more owes nothing.

Nothing here knows what the statements mean; hzm.db.context decides what is sent when.
traced() counts the round trips a block makes, as libpq sees them (tests, benchmarks).
"""

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors, pq

IDLE = pq.TransactionStatus.IDLE


@dataclass(eq=False)  # owed statements are told apart by identity (discard())
class Deferred:
    """A statement owed before the next one of the transaction."""

    sql: str
    params: Sequence[Any]


def _owed(connection: Any) -> list[Deferred]:
    owed = getattr(connection, "hzm_deferred", None)
    if owed is None:
        owed = connection.hzm_deferred = []
    return owed


def defer(connection: Any, statement: str, params: Sequence[Any]) -> Deferred:
    """Owe `statement` before the next statement this transaction sends on `connection`."""
    deferred = Deferred(statement, params)
    _owed(connection).append(deferred)
    return deferred


def discard(connection: Any, deferred: Deferred) -> bool:
    """Forget `deferred` if it is still owed (True: it was, nothing of it was sent)."""
    owed = _owed(connection)
    if any(item is deferred for item in owed):
        owed[:] = [item for item in owed if item is not deferred]
        return True
    return False


def send_owed(connection: Any) -> None:
    """Send the owed statements now: before work on the psycopg connection itself.

    Django's execute wrappers see only statements sent through Django's cursors; code
    that uses connection.connection (psycopg) or a cursor's copy() inside a tenant
    context calls this first, or its statements run without the context (and see no
    tenant's rows: fail closed).
    """
    owed = getattr(connection, "hzm_deferred", None)
    if not owed:
        return
    statements = list(owed)
    owed.clear()
    raw = connection.connection
    with connection.wrap_database_errors:
        for deferred in statements:
            raw.execute(deferred.sql, deferred.params)


def forget_owed(connection: Any) -> None:
    """Forget every owed statement: their transaction has ended (the backend's commit,
    rollback and close call this) or is just beginning."""
    _owed(connection).clear()


def _pipelines(cursor: Any, sql_text: str, params: Any, many: bool) -> bool:
    """Whether psycopg can send this statement in a pipeline, after the owed ones."""
    if many or isinstance(cursor, psycopg.ServerCursor):
        # executemany pipelines by itself; a server-side cursor refuses pipeline mode.
        return False
    # Without parameters psycopg uses the simple protocol, in which one string may hold
    # several statements; a pipeline (the extended protocol) would refuse those.
    return bool(params) or ";" not in sql_text


def send_deferred(
    execute: Callable[..., Any], sql_text: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Django execute wrapper: the owed statements, then this one, in one round trip."""
    connection = context["connection"]
    owed = getattr(connection, "hzm_deferred", None)
    if not owed:
        return execute(sql_text, params, many, context)
    if not _pipelines(context["cursor"].cursor, sql_text, params, many):
        send_owed(connection)  # on their own, first
        return execute(sql_text, params, many, context)
    raw = connection.connection
    statements = list(owed)
    owed.clear()
    # psycopg sends everything queued in the pipeline with one Sync when it ends and
    # hands each cursor its results; an error of an owed statement aborts the rest and
    # is raised here, as this statement's.
    with connection.wrap_database_errors, raw.pipeline():
        for deferred in statements:
            raw.execute(deferred.sql, deferred.params)
        result = execute(sql_text, params, many, context)
    return result


def _begins_plainly(raw: psycopg.Connection) -> bool:
    # psycopg's own BEGIN would name an isolation level or access mode if one were set;
    # such connections take the ordinary way.
    return (
        not raw.autocommit
        and raw.info.transaction_status == IDLE
        and raw.isolation_level is None
        and raw.read_only is None
        and raw.deferrable is None
    )


def begin_with(connection: Any, statement: str) -> tuple[str | None, ...] | None:
    """BEGIN and `statement` (a SELECT of one row) in one round trip; its row as text.

    For the first statement of a transaction Django has opened (transaction.atomic()) and
    psycopg has not begun yet. `statement` travels by the simple protocol, so its values
    must be in it as literals (psycopg.sql.Literal).
    None when the transaction cannot begin this way (already begun, an isolation level
    set): the caller sends the statement the ordinary way.
    """
    connection.ensure_connection()
    raw = connection.connection
    if not _begins_plainly(raw):
        return None
    forget_owed(connection)
    query = b"BEGIN; " + statement.encode(raw.info.encoding)
    with connection.wrap_database_errors:
        # The libpq call psycopg documents Connection.pgconn for: one message, one wait.
        result = raw.pgconn.exec_(query)
        if result.status != pq.ExecStatus.TUPLES_OK:
            error = errors.error_from_result(result, encoding=raw.info.encoding)
            if raw.info.transaction_status != IDLE:
                raw.pgconn.exec_(b"ROLLBACK")
            raise error
    encoding = raw.info.encoding
    return tuple(
        None if value is None else value.decode(encoding)
        for value in (result.get_value(0, column) for column in range(result.nfields))
    )


# --- Counting ------------------------------------------------------------------------------


@dataclass
class Trace:
    """What libpq's trace of a connection saw: one line per protocol message."""

    lines: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        """How many times the client waited: the server ends each answer (to a simple
        query, or to a pipeline's Sync) with one ReadyForQuery."""
        return sum(1 for line in self.lines if line.startswith("B\t") and "\tReadyForQuery" in line)

    @property
    def sent(self) -> list[str]:
        """The statements the client sent (Query and Parse messages), in order."""
        return [
            line.split("\t", 3)[3].strip()
            for line in self.lines
            if line.startswith("F\t") and ("\tQuery\t" in line or "\tParse\t" in line)
        ]


@contextmanager
def traced(connection: Any) -> Iterator[Trace]:
    """libpq's trace of the Django connection's messages meanwhile (the connection stays open)."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    trace = Trace()
    with tempfile.TemporaryFile("w+") as output:
        pgconn.trace(output.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield trace
        finally:
            pgconn.untrace()
            output.seek(0)
            trace.lines = output.read().splitlines()
