"""Tenant isolation for app.generic_data: runtime grants and same-tenant references.

A row's (tenant, project, table) must name a table definition of that same tenant
and project: the composite foreign key refuses anything else, even from the owner.
"""

from django.db import migrations

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("generic_data", "0001_add_generic_data"),
        ("core", "0002_tenant_isolation"),
    ]

    operations = [
        hzm_ops.GrantTablePrivileges("genericdata", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.AddTenantForeignKey(
            "genericdata",
            "fk_generic_data_tenant_project_table",
            ["tenant_id", "project_id", "table_id"],
            "core.tablemetadata",
            ["tenant_id", "project_id", "id"],
            on_delete="CASCADE",
        ),
    ]
