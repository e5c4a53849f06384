"""Schema ops: the audit trail."""

from django.db import models

from hzm.db.expressions import Now


class AuditLog(models.Model):
    """ops.audit_logs: one row per INSERT/UPDATE/DELETE on an audited table (ops.log_audit)."""

    id = models.BigAutoField(primary_key=True)
    tenant_id = models.IntegerField(null=True)
    user_id = models.IntegerField(null=True)
    action = models.CharField(max_length=50)
    entity_type = models.CharField(max_length=50)
    entity_id = models.TextField(null=True)
    old_values = models.JSONField(null=True)
    new_values = models.JSONField(null=True)
    ip_address = models.GenericIPAddressField(null=True)
    user_agent = models.TextField(null=True)
    request_id = models.CharField(max_length=100, null=True)
    created_at = models.DateTimeField(null=True, db_default=Now())

    class Meta:
        db_table = 'ops"."audit_logs'
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant_id"], name="idx_audit_tenant"),
            models.Index(fields=["entity_type", "entity_id"], name="idx_audit_entity"),
            models.Index(fields=["created_at"], name="idx_audit_created"),
            # A tenant's newest rows first, whatever its size: under the per-statement
            # tenant policy the planner cannot see the tenant (ops 0005, bench/policies.py).
            models.Index(fields=["tenant_id", "id"], name="idx_audit_tenant_id"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.entity_type}#{self.entity_id}"


# The guide's 010: the system log (ops.monitoring).
from ops import monitoring  # noqa: E402,F401
