"""The guide's 007: comms.notifications and comms.email_queue (comms.models), and comms' access.

- The runtime role may use schema comms and read and write both tables, its own
  tenant's rows only: notifications, and the emails it enqueues (and may cancel,
  requeue or delete); the comms service sends them.
- The comms service role (hzm 0003) reads and writes both tables, and reads the
  columns of core.users and core.tenants it needs to address and word a message,
  never a password hash or a token.
- Both are tenant tables: forced row level security, composite foreign keys to the
  tenant's users. Touch triggers; no audit (see the models' docstrings).
"""

import django.db.models.functions.comparison
import hzm.db.expressions
import hzm.db.fields
from django.conf import settings
from django.db import migrations, models

from hzm.db import operations as hzm_ops

# What the comms service reads of core, under row level security like everything else.
COMMS_READS_USERS = ["id", "tenant_id", "email", "name", "timezone", "is_active", "is_deleted"]
COMMS_READS_TENANTS = ["id", "name", "slug", "domain", "default_language", "timezone", "logo_url"]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("core", "0002_tenant_isolation"),
        ("hzm", "0003_add_microservices"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="EmailQueue",
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
                ("to_email", hzm.db.fields.CIEmailField(max_length=254)),
                ("to_name", models.CharField(blank=True, max_length=200, null=True)),
                ("subject", models.CharField(max_length=998)),
                ("body_text", models.TextField(blank=True, null=True)),
                ("body_html", models.TextField(blank=True, null=True)),
                ("template", models.CharField(blank=True, max_length=100, null=True)),
                (
                    "template_data",
                    models.JSONField(
                        db_default=django.db.models.functions.comparison.Cast(
                            models.Value("{}"), models.JSONField()
                        )
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
                        blank=True,
                        db_on_delete="SET NULL",
                        null=True,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "queued email",
                "db_table": 'comms"."email_queue',
                "ordering": ["next_attempt_at", "id"],
                "indexes": [
                    models.Index(fields=["tenant"], name="idx_email_queue_tenant"),
                    models.Index(fields=["user"], name="idx_email_queue_user"),
                    models.Index(
                        condition=models.Q(("status__in", ("pending", "failed"))),
                        fields=["next_attempt_at"],
                        name="idx_email_queue_due",
                    ),
                    models.Index(
                        condition=models.Q(("status", "sending")),
                        fields=["locked_at"],
                        name="idx_email_queue_sending",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("status__in", ["pending", "sending", "sent", "failed", "dead"])
                        ),
                        name="email_queue_status_check",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("attempts__gte", 0),
                            ("attempts__lte", models.F("max_attempts")),
                            ("max_attempts__gte", 1),
                        ),
                        name="email_queue_attempts_check",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("status", "sending"), _negated=True),
                            ("locked_at__isnull", False),
                            _connector="OR",
                        ),
                        name="email_queue_sending_locked",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("status", "sent"), _negated=True),
                            ("sent_at__isnull", False),
                            _connector="OR",
                        ),
                        name="email_queue_sent_at",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("body_text__isnull", False),
                            ("body_html__isnull", False),
                            ("template__isnull", False),
                            _connector="OR",
                        ),
                        name="email_queue_has_content",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="Notification",
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
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("kind", models.CharField(max_length=100)),
                ("title", models.CharField(max_length=200)),
                ("body", models.TextField(blank=True, null=True)),
                (
                    "data",
                    models.JSONField(
                        db_default=django.db.models.functions.comparison.Cast(
                            models.Value("{}"), models.JSONField()
                        )
                    ),
                ),
                ("link_url", models.CharField(blank=True, max_length=500, null=True)),
                ("read_at", models.DateTimeField(blank=True, null=True)),
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
                        related_name="notifications",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": 'comms"."notifications',
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["tenant"], name="idx_notifications_tenant"),
                    models.Index(
                        models.F("user"),
                        models.OrderBy(models.F("created_at"), descending=True),
                        name="idx_notifications_user",
                    ),
                    models.Index(
                        condition=models.Q(("read_at__isnull", True)),
                        fields=["user"],
                        name="idx_notifications_unread",
                    ),
                ],
            },
        ),
        hzm_ops.GrantSchemaUsage("comms"),
        hzm_ops.AttachTouchTrigger("notification"),
        hzm_ops.EnableTenantRLS("notification"),
        hzm_ops.GrantTablePrivileges("notification", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.GrantServiceTablePrivileges(
            "notification", "comms", ["SELECT", "INSERT", "UPDATE"]
        ),
        hzm_ops.AddTenantForeignKey(
            "notification",
            "fk_notifications_tenant_user",
            ["tenant_id", "user_id"],
            "core.user",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        ),
        hzm_ops.AttachTouchTrigger("emailqueue"),
        hzm_ops.EnableTenantRLS("emailqueue"),
        hzm_ops.GrantTablePrivileges("emailqueue", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
        hzm_ops.GrantServiceTablePrivileges("emailqueue", "comms", ["SELECT", "INSERT", "UPDATE"]),
        hzm_ops.AddTenantForeignKey(
            "emailqueue",
            "fk_email_queue_tenant_user",
            ["tenant_id", "user_id"],
            "core.user",
            ["tenant_id", "id"],
            on_delete="SET NULL",
        ),
        hzm_ops.GrantServiceTablePrivileges(
            "core.user", "comms", ["SELECT"], columns=COMMS_READS_USERS
        ),
        hzm_ops.GrantServiceTablePrivileges(
            "core.tenant", "comms", ["SELECT"], columns=COMMS_READS_TENANTS
        ),
    ]
