"""Tenant isolation for core: grants to the runtime role, RLS on tenants, same-tenant references.

- Unique names a user sees (project per tenant, table per project) ignore
  soft-deleted rows, so a deleted name can be used again.
- The runtime role may read and write the tenant tables (RLS decides which rows)
  and only read core.tenants, where it sees its own tenant's row alone.
- Composite foreign keys (tenant_id, x_id) -> x (tenant_id, id) make the database
  refuse a row that points at another tenant's user, project or table: foreign key
  checks ignore RLS, so the single-column keys alone would let it through.
"""

from django.db import migrations, models

from hzm.db import operations as hzm_ops

TENANT_TABLE_DML = ["SELECT", "INSERT", "UPDATE", "DELETE"]


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial_schema'),
        ('hzm', '0002_runtime_role_and_audit_trail'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='project',
            name='unique_project_name_per_tenant',
        ),
        migrations.RemoveConstraint(
            model_name='tablemetadata',
            name='unique_table_per_project',
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.UniqueConstraint(condition=models.Q(('is_deleted', models.Value(False))), fields=('tenant', 'name'), name='unique_project_name_per_tenant'),
        ),
        migrations.AddConstraint(
            model_name='project',
            constraint=models.UniqueConstraint(fields=('tenant', 'id'), name='projects_tenant_id_id_key'),
        ),
        migrations.AddConstraint(
            model_name='tablemetadata',
            constraint=models.UniqueConstraint(condition=models.Q(('is_deleted', models.Value(False))), fields=('tenant', 'project', 'table_name'), name='unique_table_per_project'),
        ),
        migrations.AddConstraint(
            model_name='tablemetadata',
            constraint=models.UniqueConstraint(fields=('tenant', 'project', 'id'), name='table_metadata_tenant_project_id_key'),
        ),
        migrations.AddConstraint(
            model_name='user',
            constraint=models.UniqueConstraint(fields=('tenant', 'id'), name='users_tenant_id_id_key'),
        ),
        # The runtime role's privileges: exactly what tenant-facing code needs.
        hzm_ops.GrantTablePrivileges("tenant", ["SELECT"]),
        hzm_ops.EnableTenantRLS("tenant", column="id"),
        hzm_ops.GrantTablePrivileges("user", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("usersession", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("usertwofactor", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("project", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("tablemetadata", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("apikey", TENANT_TABLE_DML),
        hzm_ops.GrantTablePrivileges("file", TENANT_TABLE_DML),
        # References stay inside the tenant, whoever writes the row. Each follows the ON
        # DELETE rule of its column's own key (see AddTenantForeignKey).
        hzm_ops.AddTenantForeignKey("usersession", "fk_user_sessions_tenant_user", ["tenant_id", "user_id"], "user", ["tenant_id", "id"]),
        hzm_ops.AddTenantForeignKey("usertwofactor", "fk_user_2fa_tenant_user", ["tenant_id", "user_id"], "user", ["tenant_id", "id"]),
        hzm_ops.AddTenantForeignKey("project", "fk_projects_tenant_user", ["tenant_id", "user_id"], "user", ["tenant_id", "id"], on_delete="CASCADE"),
        hzm_ops.AddTenantForeignKey("tablemetadata", "fk_table_metadata_tenant_project", ["tenant_id", "project_id"], "project", ["tenant_id", "id"], on_delete="CASCADE"),
        hzm_ops.AddTenantForeignKey("apikey", "fk_api_keys_tenant_project", ["tenant_id", "project_id"], "project", ["tenant_id", "id"], on_delete="CASCADE"),
        hzm_ops.AddTenantForeignKey("apikey", "fk_api_keys_tenant_user", ["tenant_id", "user_id"], "user", ["tenant_id", "id"], on_delete="CASCADE"),
        hzm_ops.AddTenantForeignKey("file", "fk_files_tenant_uploaded_by", ["tenant_id", "uploaded_by"], "user", ["tenant_id", "id"]),
    ]
