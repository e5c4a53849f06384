"""The database context of a unit of work: who acts, for which tenant.

Context lives in transaction-local settings (set_config(..., true)), read by
app.current_tenant() and app.current_user_id(): the row level security policies
and the audit trigger see it, and it ends with the transaction, so nothing leaks
to the next request on a pooled connection.
"""
from django.db import connections, transaction


def set_audit_actor(user_id: int | None, tenant_id: int | None = None, using: str = "default"):
    """Record `user_id` (and optionally the tenant) as the actor of the current transaction.

    Must run inside transaction.atomic(): outside one the setting would end with the
    statement's own implicit transaction and audit nothing.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError(
            "set_audit_actor() must be called inside transaction.atomic()"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT app.set_context(%s, %s)", [tenant_id, user_id])
