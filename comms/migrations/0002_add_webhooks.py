"""The guide's 008: comms.webhooks and comms.webhook_deliveries (comms.models).

- webhooks is a tenant's configuration: touch, soft-delete and audit triggers (the
  audit trail redacts secret_encrypted), the runtime role's DML; the comms service
  reads it.
- webhook_deliveries is a queue like email_queue: tenant code enqueues (signed),
  reads, and may redeliver or delete its own; the comms service delivers and
  records the outcome. Touch trigger.
- Both under forced row level security; a delivery's webhook is its tenant's.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import hzm.db.expressions
import hzm.db.fields
from django.db import migrations, models

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("comms", "0001_add_notifications"),
    ]

    operations = [
        migrations.CreateModel(
            name="Webhook",
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
                ("name", models.CharField(max_length=100)),
                ("url", models.CharField(max_length=2000)),
                (
                    "events",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.TextField(), size=None
                    ),
                ),
                ("secret_encrypted", models.TextField()),
                ("description", models.TextField(blank=True, null=True)),
                ("is_active", models.BooleanField(db_default=True, null=True)),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
            ],
            options={
                "db_table": 'comms"."webhooks',
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
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
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sending", "Sending"),
                            ("sent", "Sent"),
                            ("failed", "Failed, will be retried"),
                            ("dead", "Dead (gave up)"),
                        ],
                        db_default="pending",
                        max_length=20,
                    ),
                ),
                ("attempts", models.IntegerField(db_default=0)),
                ("max_attempts", models.IntegerField(db_default=5)),
                ("next_attempt_at", models.DateTimeField(db_default=hzm.db.expressions.Now())),
                ("last_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("locked_at", models.DateTimeField(blank=True, null=True)),
                ("locked_by", models.CharField(blank=True, max_length=100, null=True)),
                ("last_error", models.TextField(blank=True, null=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("event", models.CharField(max_length=100)),
                ("payload", models.JSONField()),
                ("signature", models.CharField(max_length=100)),
                ("response_code", models.SmallIntegerField(blank=True, null=True)),
                ("response_body", models.TextField(blank=True, null=True)),
                ("duration_ms", models.IntegerField(blank=True, null=True)),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
                (
                    "webhook",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="deliveries", to="comms.webhook"
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "webhook deliveries",
                "db_table": 'comms"."webhook_deliveries',
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="webhook",
            index=models.Index(fields=["tenant"], name="idx_webhooks_tenant"),
        ),
        migrations.AddIndex(
            model_name="webhook",
            index=models.Index(
                condition=models.Q(
                    models.Q(("is_active", models.Value(True))),
                    models.Q(("is_deleted", models.Value(False))),
                ),
                fields=["tenant"],
                name="idx_webhooks_active",
            ),
        ),
        migrations.AddIndex(
            model_name="webhook",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["events"], name="idx_webhooks_events"
            ),
        ),
        migrations.AddConstraint(
            model_name="webhook",
            constraint=models.UniqueConstraint(
                fields=("tenant", "id"), name="webhooks_tenant_id_id_key"
            ),
        ),
        migrations.AddConstraint(
            model_name="webhook",
            constraint=models.CheckConstraint(
                condition=models.Q(("url__regex", "^https?://")), name="webhooks_url_http"
            ),
        ),
        migrations.AddConstraint(
            model_name="webhook",
            constraint=models.CheckConstraint(
                condition=models.Q(("events", []), _negated=True), name="webhooks_events_not_empty"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(fields=["tenant"], name="idx_webhook_deliveries_tenant"),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                models.F("webhook"),
                models.OrderBy(models.F("created_at"), descending=True),
                name="idx_webhook_deliveries_webhook",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status__in", ("pending", "failed"))),
                fields=["next_attempt_at"],
                name="idx_webhook_deliveries_due",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "sending")),
                fields=["locked_at"],
                name="idx_webhook_deliveries_sending",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["pending", "sending", "sent", "failed", "dead"])
                ),
                name="webhook_deliveries_status_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("attempts__gte", 0),
                    ("attempts__lte", models.F("max_attempts")),
                    ("max_attempts__gte", 1),
                ),
                name="webhook_deliveries_attempts_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "sending"), _negated=True),
                    ("locked_at__isnull", False),
                    _connector="OR",
                ),
                name="webhook_deliveries_sending_locked",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "sent"), _negated=True),
                    ("sent_at__isnull", False),
                    _connector="OR",
                ),
                name="webhook_deliveries_sent_at",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("response_code__isnull", True),
                    models.Q(("response_code__gte", 100), ("response_code__lte", 599)),
                    _connector="OR",
                ),
                name="webhook_deliveries_response_code_range",
            ),
        ),
        hzm_ops.AttachTouchTrigger("webhook"),
        hzm_ops.AttachSoftDeleteTrigger("webhook"),
        hzm_ops.AttachAuditTrigger("webhook"),
        hzm_ops.EnableTenantRLS("webhook"),
        hzm_ops.GrantTablePrivileges("webhook", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.GrantServiceTablePrivileges("webhook", "comms", ["SELECT"]),
        hzm_ops.AttachTouchTrigger("webhookdelivery"),
        hzm_ops.EnableTenantRLS("webhookdelivery"),
        hzm_ops.GrantTablePrivileges("webhookdelivery", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.GrantServiceTablePrivileges(
            "webhookdelivery", "comms", ["SELECT", "INSERT", "UPDATE"]
        ),
        hzm_ops.AddTenantForeignKey(
            "webhookdelivery",
            "fk_webhook_deliveries_tenant_webhook",
            ["tenant_id", "webhook_id"],
            "webhook",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
    ]
