"""Runtime access to cfg: reference data is read-only; translations are per tenant.

cfg.translations holds platform-wide rows (tenant_id NULL) and tenant overrides:
under row level security a tenant reads the global rows and its own, never another
tenant's, and writes none of them (the runtime role only has SELECT).
"""

from django.db import migrations

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("cfg", "0001_initial_schema"),
        ("hzm", "0002_runtime_role_and_audit_trail"),
    ]

    operations = [
        hzm_ops.GrantTablePrivileges("language", ["SELECT"]),
        hzm_ops.GrantTablePrivileges("currency", ["SELECT"]),
        hzm_ops.GrantTablePrivileges("exchangerate", ["SELECT"]),
        hzm_ops.GrantTablePrivileges("translation", ["SELECT"]),
        hzm_ops.EnableTenantRLS("translation", shared_rows=True),
    ]
