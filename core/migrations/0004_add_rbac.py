"""The guide's 003: role-based access control (core.rbac) and app.has_permission().

- core.permissions is global: the runtime role reads it.
- core.roles and core.role_permissions hold global rows (tenant_id NULL: the default
  roles) and tenants' own. The tenant policy (ALL) covers a tenant's own rows, and a
  second, SELECT-only policy shows the global ones: a tenant reads both and writes,
  updates and deletes only its own. (EnableTenantRLS's shared_rows would put the
  global rows under the ALL policy's USING, which also governs DELETE: a tenant could
  delete them.)
- core.user_roles is a tenant table; composite foreign keys keep its user,
  organization and granter inside the tenant. A role may be global, so it cannot be
  a composite key: core.check_role_tenant() (an AFTER trigger on user_roles and
  role_permissions, so that row level security refuses another tenant's row first)
  checks that the role is global or the row's tenant's; a role_permissions row has
  exactly its role's tenant.
- app.has_permission() answers "may this user do this (in this organization)?". It
  runs as the caller (SECURITY INVOKER), so row level security limits it to the
  tenant of the context.
"""

import hzm.db.expressions
import hzm.db.fields
from django.conf import settings
from django.db import migrations, models

from hzm.db import operations as hzm_ops

TENANT_TABLE_DML = ["SELECT", "INSERT", "UPDATE", "DELETE"]

CHECK_ROLE_TENANT = """
DECLARE
  v_found boolean;
  v_role_tenant int;
BEGIN
  SELECT true, r.tenant_id INTO v_found, v_role_tenant FROM core.roles r WHERE r.id = NEW.role_id;
  IF v_found IS NULL THEN
    -- Absent, or another tenant's: row level security hides those from tenant code.
    RAISE EXCEPTION '%.%: role % does not exist', TG_TABLE_SCHEMA, TG_TABLE_NAME, NEW.role_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  -- role_permissions rows have exactly their role's tenant (NULL for a global role);
  -- user_roles rows may also be granted a global role.
  IF v_role_tenant IS DISTINCT FROM NEW.tenant_id
     AND NOT (TG_TABLE_NAME = 'user_roles' AND v_role_tenant IS NULL) THEN
    RAISE EXCEPTION '%.%: role % belongs to %, the row to %',
      TG_TABLE_SCHEMA, TG_TABLE_NAME, NEW.role_id,
      coalesce('tenant ' || v_role_tenant, 'no tenant (a global role)'),
      coalesce('tenant ' || NEW.tenant_id, 'no tenant')
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END"""

HAS_PERMISSION = """
  SELECT EXISTS (
    SELECT 1
    FROM core.user_roles ur
    JOIN core.users u ON u.id = ur.user_id
    JOIN core.roles r ON r.id = ur.role_id
    JOIN core.role_permissions rp ON rp.role_id = ur.role_id
    JOIN core.permissions p ON p.id = rp.permission_id
    WHERE ur.user_id = p_user_id
      AND p.code = p_permission
      AND u.is_active IS NOT FALSE AND u.is_deleted IS NOT TRUE
      AND r.is_deleted IS NOT TRUE
      AND (ur.expires_at IS NULL OR ur.expires_at > now())
      -- The organization asked about must be a live, active one of the user's tenant.
      AND (p_organization_id IS NULL OR EXISTS (
            SELECT 1 FROM core.organizations o
            WHERE o.id = p_organization_id AND o.tenant_id = ur.tenant_id
              AND o.is_deleted IS NOT TRUE AND o.is_active IS NOT FALSE))
      -- A tenant-wide grant counts everywhere in the tenant; an organization's grant
      -- only for that organization, and only while the user is a joined member of it.
      AND (ur.organization_id IS NULL OR (
            ur.organization_id = p_organization_id AND EXISTS (
              SELECT 1 FROM core.organization_members m
              WHERE m.organization_id = ur.organization_id AND m.user_id = ur.user_id
                AND m.joined_at IS NOT NULL AND m.is_deleted IS NOT TRUE)))
  )
"""


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_add_organizations"),
    ]

    operations = [
        migrations.CreateModel(
            name="Permission",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.IntegerField(db_default=1, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "updated_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                ("code", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True, null=True)),
            ],
            options={
                "db_table": 'core"."permissions',
                "ordering": ["code"],
                "constraints": [
                    models.UniqueConstraint(fields=("code",), name="permissions_code_key"),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("code__regex", "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+\\Z")
                        ),
                        name="permissions_code_format",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="Role",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.IntegerField(db_default=1, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "updated_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                ("is_deleted", models.BooleanField(db_default=False, null=True)),
                ("deleted_at", models.DateTimeField(blank=True, null=True)),
                ("deleted_by", models.IntegerField(blank=True, null=True)),
                ("created_by", models.IntegerField(blank=True, null=True)),
                ("updated_by", models.IntegerField(blank=True, null=True)),
                ("code", models.CharField(max_length=50)),
                ("name", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True, null=True)),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        blank=True,
                        db_on_delete="CASCADE",
                        null=True,
                        related_name="+",
                        to="core.tenant",
                    ),
                ),
            ],
            options={
                "db_table": 'core"."roles',
                "ordering": ["code"],
            },
        ),
        migrations.CreateModel(
            name="RolePermission",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.IntegerField(db_default=1, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "updated_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "permission",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.permission"
                    ),
                ),
                (
                    "role",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.role"
                    ),
                ),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        blank=True,
                        db_on_delete="CASCADE",
                        null=True,
                        related_name="+",
                        to="core.tenant",
                    ),
                ),
            ],
            options={
                "db_table": 'core"."role_permissions',
            },
        ),
        migrations.AddField(
            model_name="role",
            name="permissions",
            field=models.ManyToManyField(
                blank=True,
                related_name="roles",
                through="core.RolePermission",
                to="core.permission",
            ),
        ),
        migrations.CreateModel(
            name="UserRole",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.IntegerField(db_default=1, null=True)),
                (
                    "created_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                (
                    "updated_at",
                    models.DateTimeField(db_default=hzm.db.expressions.Now(), null=True),
                ),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "granted_by",
                    hzm.db.fields.ForeignKey(
                        blank=True,
                        db_column="granted_by",
                        db_on_delete="SET NULL",
                        null=True,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "organization",
                    hzm.db.fields.ForeignKey(
                        blank=True,
                        db_on_delete="CASCADE",
                        null=True,
                        related_name="user_roles",
                        to="core.organization",
                    ),
                ),
                (
                    "role",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="user_roles", to="core.role"
                    ),
                ),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
                (
                    "user",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE",
                        related_name="user_roles",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": 'core"."user_roles',
            },
        ),
        migrations.AddIndex(
            model_name="rolepermission",
            index=models.Index(fields=["tenant"], name="idx_role_permissions_tenant"),
        ),
        migrations.AddIndex(
            model_name="rolepermission",
            index=models.Index(fields=["permission"], name="idx_role_permissions_perm"),
        ),
        migrations.AddConstraint(
            model_name="rolepermission",
            constraint=models.UniqueConstraint(
                fields=("tenant", "role", "permission"),
                name="unique_role_permission",
                nulls_distinct=False,
            ),
        ),
        migrations.AddIndex(
            model_name="rolepermission",
            index=models.Index(fields=["role"], name="idx_role_permissions_role"),
        ),
        migrations.AddIndex(
            model_name="role",
            index=models.Index(fields=["tenant"], name="idx_roles_tenant"),
        ),
        migrations.AddConstraint(
            model_name="role",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_deleted", models.Value(False))),
                fields=("tenant", "code"),
                name="unique_role_code_per_tenant",
                nulls_distinct=False,
            ),
        ),
        migrations.AddConstraint(
            model_name="role",
            constraint=models.CheckConstraint(
                condition=models.Q(("code__regex", "^[a-z][a-z0-9_]*\\Z")), name="roles_code_format"
            ),
        ),
        migrations.AddIndex(
            model_name="userrole",
            index=models.Index(fields=["tenant"], name="idx_user_roles_tenant"),
        ),
        migrations.AddIndex(
            model_name="userrole",
            index=models.Index(fields=["user"], name="idx_user_roles_user"),
        ),
        migrations.AddIndex(
            model_name="userrole",
            index=models.Index(fields=["role"], name="idx_user_roles_role"),
        ),
        migrations.AddIndex(
            model_name="userrole",
            index=models.Index(fields=["organization"], name="idx_user_roles_organization"),
        ),
        migrations.AddConstraint(
            model_name="userrole",
            constraint=models.UniqueConstraint(
                fields=("tenant", "user", "role", "organization"),
                name="unique_user_role",
                nulls_distinct=False,
            ),
        ),
        hzm_ops.InstallFunction(
            name="core.check_role_tenant",
            arguments="",
            returns="trigger",
            body=CHECK_ROLE_TENANT,
            search_path="pg_catalog, pg_temp",
        ),
        hzm_ops.InstallFunction(
            name="app.has_permission",
            arguments="p_user_id int, p_permission text, p_organization_id int DEFAULT NULL",
            returns="boolean",
            body=HAS_PERMISSION,
            language="sql",
            volatility="STABLE",
            search_path="pg_catalog, pg_temp",
        ),
        hzm_ops.AttachTouchTrigger("permission"),
        hzm_ops.AttachAuditTrigger("permission"),
        hzm_ops.GrantTablePrivileges("permission", ["SELECT"]),
        hzm_ops.AttachTouchTrigger("role"),
        hzm_ops.AttachSoftDeleteTrigger("role"),
        hzm_ops.AttachAuditTrigger("role"),
        hzm_ops.EnableTenantRLS("role"),
        hzm_ops.CreatePolicy(
            "role", name="rls_roles_shared", command="SELECT", using="tenant_id IS NULL"
        ),
        hzm_ops.GrantTablePrivileges("role", TENANT_TABLE_DML),
        hzm_ops.AttachFunctionTrigger(
            "rolepermission",
            kind="role_tenant",
            function="core.check_role_tenant",
            timing="AFTER",
            events=["INSERT", "UPDATE"],
        ),
        hzm_ops.AttachTouchTrigger("rolepermission"),
        hzm_ops.AttachAuditTrigger("rolepermission"),
        hzm_ops.EnableTenantRLS("rolepermission"),
        hzm_ops.CreatePolicy(
            "rolepermission",
            name="rls_role_permissions_shared",
            command="SELECT",
            using="tenant_id IS NULL",
        ),
        hzm_ops.GrantTablePrivileges("rolepermission", TENANT_TABLE_DML),
        hzm_ops.AttachFunctionTrigger(
            "userrole",
            kind="role_tenant",
            function="core.check_role_tenant",
            timing="AFTER",
            events=["INSERT", "UPDATE"],
        ),
        hzm_ops.AttachTouchTrigger("userrole"),
        hzm_ops.AttachAuditTrigger("userrole"),
        hzm_ops.EnableTenantRLS("userrole"),
        hzm_ops.GrantTablePrivileges("userrole", TENANT_TABLE_DML),
        hzm_ops.AddTenantForeignKey(
            "userrole",
            "fk_user_roles_tenant_user",
            ["tenant_id", "user_id"],
            "user",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
        hzm_ops.AddTenantForeignKey(
            "userrole",
            "fk_user_roles_tenant_organization",
            ["tenant_id", "organization_id"],
            "organization",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
        hzm_ops.AddTenantForeignKey(
            "userrole",
            "fk_user_roles_tenant_granted_by",
            ["tenant_id", "granted_by"],
            "user",
            ["tenant_id", "id"],
            on_delete="SET NULL",
        ),
    ]
