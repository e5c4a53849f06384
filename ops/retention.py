"""Retention of ops' logs: the prune_system_logs and prune_audit_logs commands' work.

Both are platform staff's work: they run as the owner of the tables (the role
`migrate` runs as), outside any tenant context, and refuse anything else. Pruning
the audit trail is itself audited: a PRUNE row records what was deleted, by which
database role, even when the run stops half-way.
"""

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from hzm.db import partitions
from hzm.db.context import current_tenant
from hzm.db.operations import runtime_role
from hzm.db.sql import table_ref
from ops.monitoring import PARTITION_KEY, write_system_log

SYSTEM_LOGS = ("ops", "system_logs")
AUDIT_LOGS = ("ops", "audit_logs")
DEFAULT_MONTHS_AHEAD = 2
DEFAULT_BATCH_SIZE = 5000


class RetentionRefused(PermissionError):
    """A prune was asked for by a role, or in a context, that may not do it."""


def require_table_owner(schema: str, table: str, using: str = DEFAULT_DB_ALIAS) -> str:
    """The current database role, if it owns `schema.table` and no tenant context is active."""
    if current_tenant(using) is not None:
        raise RetentionRefused(
            f"refusing to prune {schema}.{table} inside the tenant context of tenant "
            f"{current_tenant(using)}: retention is platform staff's work"
        )
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT current_user, app.current_tenant(), "
            "pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') "
            "FROM pg_catalog.pg_class c WHERE c.oid = %s::regclass",
            [table_ref(schema, table)],
        )
        role, tenant, owner = cursor.fetchone()
    if tenant is not None:
        raise RetentionRefused(
            f"refusing to prune {schema}.{table}: the transaction is in the context of "
            f"tenant {tenant}"
        )
    if role == runtime_role():
        raise RetentionRefused(
            f"refusing to prune {schema}.{table} as the runtime role {role}: run it as "
            "the tables' owner (the role migrate runs as)"
        )
    if not owner:
        raise RetentionRefused(
            f"refusing to prune {schema}.{table} as role {role}, which does not own it: "
            "run it as the tables' owner (the role migrate runs as)"
        )
    return role


# --- ops.system_logs ----------------------------------------------------------------------


@dataclass
class SystemLogsPruned:
    cutoff: datetime.date
    dropped: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    deleted_from_default: int = 0


def existing_partitions(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    with connections[using].cursor() as cursor:
        cursor.execute(partitions.LIST_PARTITIONS, [table_ref(*SYSTEM_LOGS)])
        return [name for name, _bound in cursor.fetchall()]


def prune_system_logs(
    older_than_months: int,
    *,
    months_ahead: int = DEFAULT_MONTHS_AHEAD,
    today: datetime.date | None = None,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    on_step: Callable[[str], None] | None = None,
) -> SystemLogsPruned:
    """Drop the month partitions older than `older_than_months`, create the coming ones.

    Keeps the current month and the `older_than_months` before it; makes sure the
    current month and `months_ahead` after it have partitions; deletes rows older
    than the cutoff from the default partition too. Each step commits on its own, so
    a drop holds its lock on the table only briefly; `on_step` is told of each one
    when it has committed ("created ops.system_logs_2027_01").
    """
    done = on_step or (lambda message: None)
    schema, table = SYSTEM_LOGS
    require_table_owner(schema, table, using)
    today = today or datetime.datetime.now(datetime.UTC).date()
    cutoff, drop, create = partitions.retention_plan(
        table, existing_partitions(using), today, older_than_months, months_ahead
    )
    result = SystemLogsPruned(cutoff=cutoff)
    result.created = [partitions.month_partition_name(table, month) for month in create]
    result.dropped = drop
    connection = connections[using]
    cutoff_instant = datetime.datetime.combine(cutoff, datetime.time(), datetime.UTC)
    if dry_run:
        with connection.cursor() as cursor:
            cursor.execute(
                partitions.count_default_before(schema, table, PARTITION_KEY), [cutoff_instant]
            )
            result.deleted_from_default = cursor.fetchone()[0]
        return result
    for month, name in zip(create, result.created, strict=True):
        with transaction.atomic(using=using), connection.cursor() as cursor:
            for statement in partitions.create_month_partition(schema, table, PARTITION_KEY, month):
                cursor.execute(statement)
        done(f"created {schema}.{name}")
    for name in drop:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(partitions.drop_table(schema, name))
        done(f"dropped {schema}.{name}")
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            partitions.delete_from_default_before(schema, table, PARTITION_KEY), [cutoff_instant]
        )
        result.deleted_from_default = cursor.rowcount
        write_system_log(
            "info",
            "ops.retention",
            f"pruned {schema}.{table}: kept from {cutoff.isoformat()}",
            {
                "dropped": result.dropped,
                "created": result.created,
                "deleted_from_default": result.deleted_from_default,
            },
            using=using,
        )
    done(f"deleted {result.deleted_from_default:,} rows before {cutoff} from the default partition")
    return result


# --- ops.audit_logs -----------------------------------------------------------------------------

DELETE_AUDIT_BATCH = (
    "DELETE FROM ops.audit_logs WHERE id IN ("
    "SELECT id FROM ops.audit_logs WHERE created_at < %s ORDER BY id LIMIT %s)"
)
# No RETURNING: the owner may append to the trail, and reads it only through the
# owner policy; a plain INSERT needs nothing more.
RECORD_PRUNE = (
    "INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id, "
    "new_values, request_id) "
    "VALUES (NULL, app.current_user_id(), 'PRUNE', 'ops.audit_logs', NULL, %s::jsonb, "
    "nullif(current_setting('app.request_id', true), ''))"
)


@dataclass
class AuditLogsPruned:
    cutoff: datetime.datetime
    deleted: int
    batches: int


def prune_audit_logs(
    older_than_days: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    on_batch: Callable[[int], None] | None = None,
) -> AuditLogsPruned:
    """Delete audit rows older than `older_than_days` days, `batch_size` rows per transaction.

    Bounded batches keep each transaction's locks and WAL small on a large trail;
    `on_batch` is told the rows deleted so far after each one has committed.
    Whatever happens, a PRUNE row is added to the trail afterwards recording the
    cutoff, the rows deleted, the role, and whether the run completed.
    """
    if older_than_days < 1:
        raise ValueError(f"older_than_days must be at least 1, got {older_than_days}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    role = require_table_owner(*AUDIT_LOGS, using)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT now() - make_interval(days => %s)", [older_than_days])
        cutoff = cursor.fetchone()[0]
        if dry_run:
            cursor.execute("SELECT count(*) FROM ops.audit_logs WHERE created_at < %s", [cutoff])
            return AuditLogsPruned(cutoff=cutoff, deleted=cursor.fetchone()[0], batches=0)
    deleted = batches = 0
    completed = False
    try:
        while True:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                cursor.execute(DELETE_AUDIT_BATCH, [cutoff, batch_size])
                count = cursor.rowcount
            deleted += count
            batches += 1
            if on_batch is not None:
                on_batch(deleted)
            if count < batch_size:
                break
        completed = True
    finally:
        record = {
            "older_than_days": older_than_days,
            "cutoff": cutoff.isoformat(),
            "deleted": deleted,
            "batch_size": batch_size,
            "batches": batches,
            "database_role": role,
            "completed": completed,
        }
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(RECORD_PRUNE, [json.dumps(record)])
    return AuditLogsPruned(cutoff=cutoff, deleted=deleted, batches=batches)
