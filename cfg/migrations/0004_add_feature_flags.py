"""The guide's 011: feature flags and their per-tenant overrides (cfg.flags).

- cfg.feature_flags is global: the runtime role reads it, platform staff write it.
- cfg.feature_flag_overrides is per tenant (a plain tenant id: cfg keeps no foreign
  keys into core, which migrates after it): row level security, and the runtime
  role only reads, so a tenant sees its own overrides and can change none.
  feature_flag_overrides is shortened to flag_overrides in object names.
- Both have touch and audit triggers: who switched what, and when, is on record.
"""

import hzm.db.expressions
import hzm.db.fields
from django.db import migrations, models

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("cfg", "0003_audit_triggers"),
        # The audit triggers' function writes ops.audit_logs.
        ("ops", "0002_audit_trail_rls"),
    ]

    operations = [
        migrations.CreateModel(
            name="FeatureFlag",
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
                ("created_by", models.IntegerField(blank=True, null=True)),
                ("updated_by", models.IntegerField(blank=True, null=True)),
                ("key", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True, null=True)),
                ("default_enabled", models.BooleanField(db_default=False)),
                ("rollout_percentage", models.SmallIntegerField(blank=True, null=True)),
            ],
            options={
                "db_table": 'cfg"."feature_flags',
                "ordering": ["key"],
                "constraints": [
                    models.UniqueConstraint(fields=("key",), name="feature_flags_key_key"),
                    models.CheckConstraint(
                        condition=models.Q(("key__regex", "^[a-z][a-z0-9_.-]*\\Z")),
                        name="feature_flags_key_format",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("rollout_percentage__isnull", True),
                            models.Q(
                                ("rollout_percentage__gte", 0), ("rollout_percentage__lte", 100)
                            ),
                            _connector="OR",
                        ),
                        name="feature_flags_rollout_percentage_range",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="FeatureFlagOverride",
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
                ("created_by", models.IntegerField(blank=True, null=True)),
                ("updated_by", models.IntegerField(blank=True, null=True)),
                ("tenant_id", models.IntegerField()),
                ("enabled", models.BooleanField()),
                ("reason", models.TextField(blank=True, null=True)),
                (
                    "flag",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="overrides", to="cfg.featureflag"
                    ),
                ),
            ],
            options={
                "db_table": 'cfg"."feature_flag_overrides',
                "indexes": [models.Index(fields=["tenant_id"], name="idx_flag_overrides_tenant")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("flag", "tenant_id"), name="unique_flag_override"
                    )
                ],
            },
        ),
        hzm_ops.AttachTouchTrigger("featureflag"),
        hzm_ops.AttachAuditTrigger("featureflag"),
        hzm_ops.GrantTablePrivileges("featureflag", ["SELECT"]),
        hzm_ops.AttachTouchTrigger("featureflagoverride", stem="flag_overrides"),
        hzm_ops.AttachAuditTrigger("featureflagoverride", stem="flag_overrides"),
        hzm_ops.EnableTenantRLS("featureflagoverride", stem="flag_overrides"),
        hzm_ops.GrantTablePrivileges("featureflagoverride", ["SELECT"]),
    ]
