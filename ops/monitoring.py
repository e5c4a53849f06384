"""Schema ops, guide's 010: the platform's system log, partitioned by month.

ops.system_logs is created by ops/migrations/0003_add_monitoring.py with
hzm.db.partitions.CreatePartitionedTable (Django cannot create a partitioned table);
the model below is its state and stays managed, so later column and index changes
are ordinary migrations (PostgreSQL applies them to every partition).
"""

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Q

from hzm.db.columns import jsonb_default
from hzm.db.expressions import Now

LEVELS = [
    ("debug", "Debug"),
    ("info", "Info"),
    ("warning", "Warning"),
    ("error", "Error"),
    ("critical", "Critical"),
]
# Frozen in the migration as the partitioned table's column list; the model must agree
# (tests/ops/test_monitoring.py compares the table with what Django would create).
PARTITION_KEY = "created_at"


class SystemLog(models.Model):
    """ops.system_logs: one event of the platform's own operation (not a tenant's data change).

    Columns: level (debug .. critical), source (the logger or service that wrote it),
    message, context (jsonb: anything structured; ops.write_system_log adds the
    tenant and user of the current context), request_id (to find the request's
    audit rows), created_at (the partition key). Partitioned by month of created_at,
    with a default partition for rows no month partition covers; the primary key is
    (id, created_at), as PostgreSQL requires the partition key in it, and id alone
    is unique (an identity). No tenant column and no grant to the runtime role: only
    platform staff read it; tenant code appends through ops.write_system_log()
    (SECURITY DEFINER). Retention: manage.py prune_system_logs.
    """

    id = models.BigAutoField(primary_key=True)
    level = models.CharField(max_length=10, choices=LEVELS)
    source = models.CharField(max_length=100)
    message = models.TextField()
    context = models.JSONField(db_default=jsonb_default("{}"))
    request_id = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = 'ops"."system_logs'
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(level__in=[value for value, _label in LEVELS]),
                name="system_logs_level_check",
            )
        ]
        indexes = [
            models.Index(fields=["created_at"], name="idx_system_logs_created"),
            models.Index(fields=["level", "created_at"], name="idx_system_logs_level"),
            models.Index(fields=["source", "created_at"], name="idx_system_logs_source"),
            models.Index(
                fields=["request_id"],
                condition=Q(request_id__isnull=False),
                name="idx_system_logs_request",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.source}: {self.message[:80]}"


def write_system_log(
    level: str,
    source: str,
    message: str,
    context: dict[str, Any] | None = None,
    *,
    request_id: str | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Append a line to ops.system_logs through ops.write_system_log(); return its id.

    Works for any role with usage on ops, the runtime role included, which may not
    touch the table itself. The line is part of the current transaction.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT ops.write_system_log(%s, %s, %s, %s::jsonb, %s)",
            [level, source, message, json.dumps(context or {}, cls=DjangoJSONEncoder), request_id],
        )
        return cursor.fetchone()[0]
