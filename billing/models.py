"""Schema billing (guide's 009): the plans on offer and each tenant's subscriptions.

core.tenants keeps plan, subscription_status, trial_ends_at, subscription_ends_at
and the limits that code reads everywhere; billing.subscriptions is where they
change. A trigger (trg_subscriptions_tenant_sync, running
billing.sync_tenant_subscription as the owner) copies each change of a tenant's
current subscription to its tenant row, so the two never disagree, although neither
the runtime role nor the billing service may write core.tenants themselves.
"""

from django.db import models
from django.db.models import Q

from cfg.models import Currency
from hzm.db import fields
from hzm.db.columns import Authored, Versioned, jsonb_default

PLAN_CODE = r"^[a-z][a-z0-9_-]*\Z"


class PlanManager(models.Manager):
    def get_by_natural_key(self, code: str) -> "Plan":
        return self.get(code=code)


class Plan(Versioned):
    """billing.plans: a plan on offer, global (no tenant): its prices, trial and limits.

    Columns: code (what core.tenants.plan holds, e.g. free, pro), name, description,
    currency (cfg.currencies) with price_monthly and price_yearly (numeric(12,2), not
    negative; no yearly price: not sold yearly), trial_days, the limits a tenant
    gets (max_projects, max_tables_per_project, max_records: NULL means unlimited,
    as in core.tenants), limits and features (jsonb, copied to the tenant as well),
    is_active (can be subscribed to), is_public (listed on the pricing page),
    sort_order. Touch and audit triggers; tenants read it, only platform staff write.
    """

    code = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.TextField(null=True, blank=True)
    currency = fields.ForeignKey(Currency, db_column="currency", db_default="USD", related_name="+")
    price_monthly = models.DecimalField(max_digits=12, decimal_places=2, db_default=0)
    price_yearly = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    trial_days = models.IntegerField(db_default=0)
    max_projects = models.IntegerField(null=True, blank=True)
    max_tables_per_project = models.IntegerField(null=True, blank=True)
    max_records = models.IntegerField(null=True, blank=True)
    limits = models.JSONField(blank=True, db_default=jsonb_default("{}"))
    features = models.JSONField(blank=True, db_default=jsonb_default("{}"))
    is_active = models.BooleanField(db_default=True)
    is_public = models.BooleanField(db_default=True)
    sort_order = models.IntegerField(db_default=0)

    objects = PlanManager()

    class Meta:
        db_table = 'billing"."plans'
        ordering = ["sort_order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="plans_code_key"),
            models.CheckConstraint(condition=Q(code__regex=PLAN_CODE), name="plans_code_format"),
            models.CheckConstraint(
                condition=Q(price_monthly__gte=0)
                & (Q(price_yearly__isnull=True) | Q(price_yearly__gte=0)),
                name="plans_prices_not_negative",
            ),
            models.CheckConstraint(condition=Q(trial_days__gte=0), name="plans_trial_days_check"),
            models.CheckConstraint(
                condition=(Q(max_projects__isnull=True) | Q(max_projects__gte=0))
                & (Q(max_tables_per_project__isnull=True) | Q(max_tables_per_project__gte=0))
                & (Q(max_records__isnull=True) | Q(max_records__gte=0)),
                name="plans_limits_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def natural_key(self) -> tuple[str]:
        return (self.code,)


TRIALING, ACTIVE, PAST_DUE, CANCELED, EXPIRED = (
    "trialing",
    "active",
    "past_due",
    "canceled",
    "expired",
)
SUBSCRIPTION_STATUSES = [
    (TRIALING, "Trialing"),
    (ACTIVE, "Active"),
    (PAST_DUE, "Past due"),
    (CANCELED, "Canceled"),
    (EXPIRED, "Expired"),
]
# The statuses of a tenant's current subscription; canceled and expired ones are history.
CURRENT = (TRIALING, ACTIVE, PAST_DUE)
BILLING_CYCLES = [("monthly", "Monthly"), ("yearly", "Yearly")]


class SubscriptionQuerySet(models.QuerySet):
    def current(self) -> "SubscriptionQuerySet":
        return self.filter(status__in=CURRENT)


class Subscription(Versioned, Authored):
    """billing.subscriptions: a tenant's subscription to a plan, current or past.

    Columns: plan, status (trialing, active, past_due: current, at most one per
    tenant; canceled, expired: history, with ended_at), billing_cycle (monthly,
    yearly), current_period_start/end (end after start), trial_ends_at (required
    while trialing), cancel_at_period_end (ends instead of renewing), canceled_at,
    ended_at, external_id (the payment provider's id, unique). Touch and audit
    triggers, row level security; trg_subscriptions_tenant_sync keeps core.tenants
    in step. Rows are never deleted: they are the billing history.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    plan = fields.ForeignKey(Plan, related_name="subscriptions")
    status = models.CharField(max_length=20, choices=SUBSCRIPTION_STATUSES, db_default=ACTIVE)
    billing_cycle = models.CharField(max_length=10, choices=BILLING_CYCLES, db_default="monthly")
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(db_default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    external_id = models.CharField(max_length=255, null=True, blank=True)

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        db_table = 'billing"."subscriptions'
        ordering = ["-current_period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(status__in=CURRENT),
                name="unique_current_subscription_per_tenant",
            ),
            models.UniqueConstraint(fields=["external_id"], name="subscriptions_external_id_key"),
            models.CheckConstraint(
                condition=Q(status__in=[value for value, _label in SUBSCRIPTION_STATUSES]),
                name="subscriptions_status_check",
            ),
            models.CheckConstraint(
                condition=Q(billing_cycle__in=[value for value, _label in BILLING_CYCLES]),
                name="subscriptions_billing_cycle_check",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=models.F("current_period_start")),
                name="subscriptions_period_check",
            ),
            models.CheckConstraint(
                condition=~Q(status=TRIALING) | Q(trial_ends_at__isnull=False),
                name="subscriptions_trial_end_check",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[CANCELED, EXPIRED]) | Q(ended_at__isnull=False),
                name="subscriptions_ended_check",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_subscriptions_tenant"),
            models.Index(fields=["plan"], name="idx_subscriptions_plan"),
            models.Index(
                fields=["current_period_end"],
                condition=Q(status__in=CURRENT),
                name="idx_subscriptions_period_end",
            ),
        ]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} on plan {self.plan_id} ({self.status})"
