"""The guide's 002: organizations inside a tenant, and their members (core.organizations).

Both tables are tenant tables as the seed's core tables are: touch, soft-delete and
audit triggers, tenant row level security (forced), the runtime role's DML, and
composite foreign keys keeping a membership's organization, user and inviter inside
its tenant. organization_members is shortened to org_members in object names, as the
seed shortens user_sessions to sessions (index names are limited to 30 characters).
"""

import django.db.models.functions.comparison
import hzm.db.expressions
import hzm.db.fields
from django.conf import settings
from django.db import migrations, models

from hzm.db import operations as hzm_ops

TENANT_TABLE_DML = ["SELECT", "INSERT", "UPDATE", "DELETE"]


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_tenant_isolation"),
    ]

    operations = [
        migrations.CreateModel(
            name="Organization",
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
                ("name", models.CharField(max_length=200)),
                ("slug", models.SlugField(db_index=False, max_length=100)),
                ("description", models.TextField(blank=True, null=True)),
                (
                    "settings",
                    models.JSONField(
                        blank=True,
                        db_default=django.db.models.functions.comparison.Cast(
                            models.Value("{}"), models.JSONField()
                        ),
                        null=True,
                    ),
                ),
                ("is_active", models.BooleanField(db_default=True, null=True)),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
            ],
            options={
                "db_table": 'core"."organizations',
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="OrganizationMember",
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
                (
                    "role",
                    models.CharField(
                        choices=[("owner", "Owner"), ("admin", "Admin"), ("member", "Member")],
                        db_default="member",
                        max_length=20,
                    ),
                ),
                ("invited_at", models.DateTimeField(blank=True, null=True)),
                ("joined_at", models.DateTimeField(blank=True, null=True)),
                (
                    "invited_by",
                    hzm.db.fields.ForeignKey(
                        blank=True,
                        db_column="invited_by",
                        db_on_delete="SET NULL",
                        null=True,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "organization",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="members", to="core.organization"
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
                        related_name="organization_memberships",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": 'core"."organization_members',
                "ordering": ["organization", "user"],
            },
        ),
        migrations.AddIndex(
            model_name="organization",
            index=models.Index(fields=["tenant"], name="idx_organizations_tenant"),
        ),
        migrations.AddIndex(
            model_name="organization",
            index=models.Index(
                condition=models.Q(
                    models.Q(("is_active", models.Value(True))),
                    models.Q(("is_deleted", models.Value(False))),
                ),
                fields=["tenant"],
                name="idx_organizations_active",
            ),
        ),
        migrations.AddConstraint(
            model_name="organization",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_deleted", models.Value(False))),
                fields=("tenant", "slug"),
                name="unique_organization_slug_per_tenant",
            ),
        ),
        migrations.AddConstraint(
            model_name="organization",
            constraint=models.UniqueConstraint(
                fields=("tenant", "id"), name="organizations_tenant_id_id_key"
            ),
        ),
        migrations.AddIndex(
            model_name="organizationmember",
            index=models.Index(fields=["tenant"], name="idx_org_members_tenant"),
        ),
        migrations.AddIndex(
            model_name="organizationmember",
            index=models.Index(fields=["organization"], name="idx_org_members_org"),
        ),
        migrations.AddIndex(
            model_name="organizationmember",
            index=models.Index(fields=["user"], name="idx_org_members_user"),
        ),
        migrations.AddConstraint(
            model_name="organizationmember",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_deleted", models.Value(False))),
                fields=("tenant", "organization", "user"),
                name="unique_organization_member",
            ),
        ),
        migrations.AddConstraint(
            model_name="organizationmember",
            constraint=models.CheckConstraint(
                condition=models.Q(("role__in", ["owner", "admin", "member"])),
                name="organization_members_role_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="organizationmember",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("invited_at__isnull", False), ("joined_at__isnull", False), _connector="OR"
                ),
                name="organization_members_invited_or_joined",
            ),
        ),
        migrations.AddConstraint(
            model_name="organizationmember",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("joined_at__isnull", True),
                    ("invited_at__isnull", True),
                    ("joined_at__gte", models.F("invited_at")),
                    _connector="OR",
                ),
                name="organization_members_joined_after_invited",
            ),
        ),
        hzm_ops.AttachTouchTrigger("organization"),
        hzm_ops.AttachSoftDeleteTrigger("organization"),
        hzm_ops.AttachAuditTrigger("organization"),
        hzm_ops.EnableTenantRLS("organization"),
        hzm_ops.GrantTablePrivileges("organization", TENANT_TABLE_DML),
        hzm_ops.AttachTouchTrigger("organizationmember", stem="org_members"),
        hzm_ops.AttachSoftDeleteTrigger("organizationmember", stem="org_members"),
        hzm_ops.AttachAuditTrigger("organizationmember", stem="org_members"),
        hzm_ops.EnableTenantRLS("organizationmember", stem="org_members"),
        hzm_ops.GrantTablePrivileges("organizationmember", TENANT_TABLE_DML),
        hzm_ops.AddTenantForeignKey(
            "organizationmember",
            "fk_org_members_tenant_organization",
            ["tenant_id", "organization_id"],
            "organization",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
        hzm_ops.AddTenantForeignKey(
            "organizationmember",
            "fk_org_members_tenant_user",
            ["tenant_id", "user_id"],
            "user",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
        hzm_ops.AddTenantForeignKey(
            "organizationmember",
            "fk_org_members_tenant_invited_by",
            ["tenant_id", "invited_by"],
            "user",
            ["tenant_id", "id"],
            on_delete="SET NULL",
        ),
    ]
