"""ops.audit_logs under row level security: a tenant reads only its own trail.

Only ops.log_audit() (SECURITY DEFINER, run as the owner) writes the trail; the
runtime role may SELECT and nothing else, so it can neither forge nor alter it.
"""
from django.db import migrations

from hzm.db.operations import CreatePolicy, EnableTenantRLS, GrantTablePrivileges


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial_schema"),
        ("hzm", "0002_runtime_role_and_audit_trail"),
    ]

    operations = [
        EnableTenantRLS("auditlog"),
        # The audit function inserts rows of any tenant (and of none, for platform
        # changes); FORCE would otherwise subject its owner to the tenant check.
        CreatePolicy("auditlog", name="rls_audit_logs_append", command="INSERT", with_check="true"),
        GrantTablePrivileges("auditlog", ["SELECT"]),
    ]
