"""The guide's 009: billing.plans and billing.subscriptions, kept in step with core.tenants.

- plans is global reference data: tenants and the billing service read it; platform
  staff write it (touch and audit triggers).
- subscriptions is a tenant table (forced row level security). Tenant code reads its
  own; the billing service (hzm 0003) creates and updates them.
- trg_subscriptions_tenant_sync copies a tenant's current subscription to its
  core.tenants row: subscription_status, trial_ends_at, subscription_ends_at (when
  it ends: ended_at once over, the period's end when cancelled at period end, NULL
  while it renews), and, when the plan changes, plan, the max_* limits, limits and
  features from billing.plans. Neither the runtime role nor the billing service may
  update core.tenants, so billing.sync_tenant_subscription() is SECURITY DEFINER with
  a pinned search_path. It runs as the owner, whom FORCE ROW LEVEL SECURITY holds to
  the tenant policies, so it works in the subscription's tenant context and puts
  the caller's back. A change to a past subscription while another is current
  leaves the tenant alone.
"""

import django.db.models.functions.comparison
import hzm.db.expressions
import hzm.db.fields
from django.db import migrations, models

from hzm.db import operations as hzm_ops

# What the billing service reads of core, under row level security like everything else.
BILLING_READS_TENANTS = [
    "id",
    "name",
    "slug",
    "default_currency",
    "plan",
    "subscription_status",
    "trial_ends_at",
    "subscription_ends_at",
]

SYNC_TENANT_SUBSCRIPTION = """
DECLARE
  v_caller_tenant text := current_setting('app.tenant_id', true);
  v_plan_changed boolean;
  v_plan billing.plans%ROWTYPE;
  v_ends timestamptz;
BEGIN
  PERFORM set_config('app.tenant_id', NEW.tenant_id::text, true);
  IF NEW.status NOT IN ('trialing', 'active', 'past_due') AND EXISTS (
       SELECT 1 FROM billing.subscriptions s
       WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
         AND s.status IN ('trialing', 'active', 'past_due')) THEN
    PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_plan_changed := true;
  ELSE
    v_plan_changed := NEW.plan_id IS DISTINCT FROM OLD.plan_id;
  END IF;
  SELECT * INTO STRICT v_plan FROM billing.plans WHERE id = NEW.plan_id;
  v_ends := CASE
    WHEN NEW.status IN ('canceled', 'expired') THEN NEW.ended_at
    WHEN NEW.cancel_at_period_end THEN NEW.current_period_end
  END;
  UPDATE core.tenants t SET
    subscription_status = NEW.status,
    trial_ends_at = NEW.trial_ends_at,
    subscription_ends_at = v_ends,
    plan = CASE WHEN v_plan_changed THEN v_plan.code ELSE t.plan END,
    max_projects = CASE WHEN v_plan_changed THEN v_plan.max_projects ELSE t.max_projects END,
    max_tables_per_project = CASE WHEN v_plan_changed
      THEN v_plan.max_tables_per_project ELSE t.max_tables_per_project END,
    max_records = CASE WHEN v_plan_changed THEN v_plan.max_records ELSE t.max_records END,
    limits = CASE WHEN v_plan_changed THEN v_plan.limits ELSE t.limits END,
    features = CASE WHEN v_plan_changed THEN v_plan.features ELSE t.features END
  WHERE t.id = NEW.tenant_id
    -- Only a real change: every UPDATE bumps the tenant's version and is audited.
    AND ((t.subscription_status, t.trial_ends_at, t.subscription_ends_at)
           IS DISTINCT FROM (NEW.status, NEW.trial_ends_at, v_ends)
         OR (v_plan_changed AND (t.plan, t.max_projects, t.max_tables_per_project,
                                 t.max_records, t.limits, t.features)
               IS DISTINCT FROM (v_plan.code, v_plan.max_projects,
                                 v_plan.max_tables_per_project, v_plan.max_records,
                                 v_plan.limits, v_plan.features)));
  PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
  RETURN NULL;
END"""


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("cfg", "0001_initial_schema"),
        ("core", "0002_tenant_isolation"),
        ("hzm", "0003_add_microservices"),
    ]

    operations = [
        migrations.CreateModel(
            name="Plan",
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
                ("code", models.CharField(max_length=50)),
                ("name", models.CharField(max_length=100)),
                ("description", models.TextField(blank=True, null=True)),
                (
                    "price_monthly",
                    models.DecimalField(db_default=0, decimal_places=2, max_digits=12),
                ),
                (
                    "price_yearly",
                    models.DecimalField(blank=True, decimal_places=2, max_digits=12, null=True),
                ),
                ("trial_days", models.IntegerField(db_default=0)),
                ("max_projects", models.IntegerField(blank=True, null=True)),
                ("max_tables_per_project", models.IntegerField(blank=True, null=True)),
                ("max_records", models.IntegerField(blank=True, null=True)),
                (
                    "limits",
                    models.JSONField(
                        blank=True,
                        db_default=django.db.models.functions.comparison.Cast(
                            models.Value("{}"), models.JSONField()
                        ),
                    ),
                ),
                (
                    "features",
                    models.JSONField(
                        blank=True,
                        db_default=django.db.models.functions.comparison.Cast(
                            models.Value("{}"), models.JSONField()
                        ),
                    ),
                ),
                ("is_active", models.BooleanField(db_default=True)),
                ("is_public", models.BooleanField(db_default=True)),
                ("sort_order", models.IntegerField(db_default=0)),
                (
                    "currency",
                    hzm.db.fields.ForeignKey(
                        db_column="currency", db_default="USD", related_name="+", to="cfg.currency"
                    ),
                ),
            ],
            options={
                "db_table": 'billing"."plans',
                "ordering": ["sort_order", "code"],
            },
        ),
        migrations.CreateModel(
            name="Subscription",
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
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("trialing", "Trialing"),
                            ("active", "Active"),
                            ("past_due", "Past due"),
                            ("canceled", "Canceled"),
                            ("expired", "Expired"),
                        ],
                        db_default="active",
                        max_length=20,
                    ),
                ),
                (
                    "billing_cycle",
                    models.CharField(
                        choices=[("monthly", "Monthly"), ("yearly", "Yearly")],
                        db_default="monthly",
                        max_length=10,
                    ),
                ),
                ("current_period_start", models.DateTimeField()),
                ("current_period_end", models.DateTimeField()),
                ("trial_ends_at", models.DateTimeField(blank=True, null=True)),
                ("cancel_at_period_end", models.BooleanField(db_default=False)),
                ("canceled_at", models.DateTimeField(blank=True, null=True)),
                ("ended_at", models.DateTimeField(blank=True, null=True)),
                ("external_id", models.CharField(blank=True, max_length=255, null=True)),
                ("plan", hzm.db.fields.ForeignKey(related_name="subscriptions", to="billing.plan")),
                (
                    "tenant",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="core.tenant"
                    ),
                ),
            ],
            options={
                "db_table": 'billing"."subscriptions',
                "ordering": ["-current_period_start", "-id"],
            },
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.UniqueConstraint(fields=("code",), name="plans_code_key"),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(("code__regex", "^[a-z][a-z0-9_-]*\\Z")),
                name="plans_code_format",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("price_monthly__gte", 0),
                    models.Q(
                        ("price_yearly__isnull", True), ("price_yearly__gte", 0), _connector="OR"
                    ),
                ),
                name="plans_prices_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(("trial_days__gte", 0)), name="plans_trial_days_check"
            ),
        ),
        migrations.AddConstraint(
            model_name="plan",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("max_projects__isnull", True), ("max_projects__gte", 0), _connector="OR"
                    ),
                    models.Q(
                        ("max_tables_per_project__isnull", True),
                        ("max_tables_per_project__gte", 0),
                        _connector="OR",
                    ),
                    models.Q(
                        ("max_records__isnull", True), ("max_records__gte", 0), _connector="OR"
                    ),
                ),
                name="plans_limits_not_negative",
            ),
        ),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(fields=["tenant"], name="idx_subscriptions_tenant"),
        ),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(fields=["plan"], name="idx_subscriptions_plan"),
        ),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(
                condition=models.Q(("status__in", ("trialing", "active", "past_due"))),
                fields=["current_period_end"],
                name="idx_subscriptions_period_end",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ("trialing", "active", "past_due"))),
                fields=("tenant",),
                name="unique_current_subscription_per_tenant",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.UniqueConstraint(
                fields=("external_id",), name="subscriptions_external_id_key"
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["trialing", "active", "past_due", "canceled", "expired"])
                ),
                name="subscriptions_status_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(("billing_cycle__in", ["monthly", "yearly"])),
                name="subscriptions_billing_cycle_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(("current_period_end__gt", models.F("current_period_start"))),
                name="subscriptions_period_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status", "trialing"), _negated=True),
                    ("trial_ends_at__isnull", False),
                    _connector="OR",
                ),
                name="subscriptions_trial_end_check",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("status__in", ["canceled", "expired"]), _negated=True),
                    ("ended_at__isnull", False),
                    _connector="OR",
                ),
                name="subscriptions_ended_check",
            ),
        ),
        hzm_ops.GrantSchemaUsage("billing"),
        hzm_ops.AttachTouchTrigger("plan"),
        hzm_ops.AttachAuditTrigger("plan"),
        hzm_ops.GrantTablePrivileges("plan", ["SELECT"]),
        hzm_ops.GrantServiceTablePrivileges("plan", "billing", ["SELECT"]),
        hzm_ops.InstallFunction(
            name="billing.sync_tenant_subscription",
            arguments="",
            returns="trigger",
            body=SYNC_TENANT_SUBSCRIPTION,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        hzm_ops.AttachTouchTrigger("subscription"),
        hzm_ops.AttachAuditTrigger("subscription"),
        hzm_ops.AttachFunctionTrigger(
            "subscription",
            kind="tenant_sync",
            function="billing.sync_tenant_subscription",
            timing="AFTER",
            events=["INSERT", "UPDATE"],
        ),
        hzm_ops.EnableTenantRLS("subscription"),
        hzm_ops.GrantTablePrivileges("subscription", ["SELECT"]),
        hzm_ops.GrantServiceTablePrivileges(
            "subscription", "billing", ["SELECT", "INSERT", "UPDATE"]
        ),
        hzm_ops.GrantServiceTablePrivileges(
            "core.tenant", "billing", ["SELECT"], columns=BILLING_READS_TENANTS
        ),
    ]
