"""billing.plans and billing.subscriptions, and the trigger that keeps core.tenants in step."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.models import Plan, Subscription
from core.models import Tenant
from hzm.db.context import sign_context, tenant_context
from hzm.db.operations import service_role
from ops.models import AuditLog
from tests.factories import CurrencyFactory, TenantFactory
from tests.factories_platform import PlanFactory, SubscriptionFactory
from tests.platform_support import (
    as_role,
    assert_admin_pages_open,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)
from tests.support import refused, run

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)


def tenant_billing(tenant_id: int) -> dict:
    tenant = Tenant.all_objects.get(pk=tenant_id)
    return {
        name: getattr(tenant, name)
        for name in (
            "plan",
            "subscription_status",
            "trial_ends_at",
            "subscription_ends_at",
            "max_projects",
            "max_tables_per_project",
            "max_records",
            "limits",
            "features",
        )
    }


# --- Plans ----------------------------------------------------------------------------------------


def test_plan_defaults():
    CurrencyFactory(code="USD", name="US Dollar")
    [row] = query(
        "INSERT INTO billing.plans (code, name) VALUES ('basic', 'Basic') RETURNING "
        "currency, price_monthly, price_yearly, trial_days, limits::text, features::text, "
        "is_active, is_public, sort_order, max_projects"
    )
    assert row == ("USD", Decimal("0.00"), None, 0, "{}", "{}", True, True, 0, None)


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"code": "Pro"}, "plans_code_format"),
        ({"price_monthly": Decimal("-1")}, "plans_prices_not_negative"),
        ({"price_yearly": Decimal("-0.01")}, "plans_prices_not_negative"),
        ({"trial_days": -1}, "plans_trial_days_check"),
        ({"max_records": -5}, "plans_limits_not_negative"),
    ],
)
def test_plan_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        PlanFactory(**values)


def test_plan_codes_are_unique():
    PlanFactory(code="pro")
    with pytest.raises(IntegrityError, match="plans_code_key"), transaction.atomic():
        Plan.objects.create(code="pro", name="Pro again")


def test_the_default_plans_fixture_loads_twice_and_matches_the_tenants_defaults():
    call_command("loaddata", "001_default_languages", "002_default_currencies", verbosity=0)
    for _ in range(2):
        call_command("loaddata", "005_default_plans", verbosity=0)
    assert list(Plan.objects.values_list("code", flat=True)) == ["free", "pro", "enterprise"]
    free = Plan.objects.get(code="free")
    tenant = TenantFactory()
    assert (free.code, free.max_projects, free.max_tables_per_project, free.max_records) == (
        tenant.plan,
        tenant.max_projects,
        tenant.max_tables_per_project,
        tenant.max_records,
    )


# --- Subscriptions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"status": "paused"}, "subscriptions_status_check"),
        ({"billing_cycle": "weekly"}, "subscriptions_billing_cycle_check"),
        ({"current_period_end": timezone.now() - DAY}, "subscriptions_period_check"),
        ({"status": "trialing"}, "subscriptions_trial_end_check"),
        ({"status": "canceled"}, "subscriptions_ended_check"),
    ],
)
def test_subscription_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        SubscriptionFactory(**values)


def test_a_tenant_has_one_current_subscription_and_any_number_of_past_ones():
    current = SubscriptionFactory()
    with pytest.raises(IntegrityError, match="unique_current_subscription_per_tenant"):
        with transaction.atomic():
            SubscriptionFactory(tenant=current.tenant, status="past_due")
    for _ in range(2):
        SubscriptionFactory(tenant=current.tenant, status="expired", ended_at=timezone.now())
    assert list(Subscription.objects.filter(tenant=current.tenant).current()) == [current]


def test_an_external_id_names_one_subscription():
    SubscriptionFactory(external_id="sub_123")
    with pytest.raises(IntegrityError, match="subscriptions_external_id_key"):
        with transaction.atomic():
            SubscriptionFactory(external_id="sub_123")


def test_the_triggers():
    assert set(
        query(
            "SELECT tgrelid::regclass::text, tgname, tgfoid::regproc::text FROM pg_trigger "
            "WHERE tgrelid IN ('billing.plans'::regclass, 'billing.subscriptions'::regclass) "
            "AND NOT tgisinternal"
        )
    ) == {
        ("billing.plans", "trg_plans_touch", "app.touch_row"),
        ("billing.plans", "trg_plans_audit", "ops.log_audit"),
        ("billing.subscriptions", "trg_subscriptions_touch", "app.touch_row"),
        ("billing.subscriptions", "trg_subscriptions_audit", "ops.log_audit"),
        (
            "billing.subscriptions",
            "trg_subscriptions_tenant_sync",
            "billing.sync_tenant_subscription",
        ),
    }


# --- Keeping core.tenants in step -----------------------------------------------------------------


def test_a_new_subscription_gives_the_tenant_its_plan_limits_and_status():
    plan = PlanFactory(
        code="pro",
        max_projects=25,
        max_tables_per_project=None,
        max_records=10**6,
        limits={"api_requests_per_day": 100},
        features={"webhooks": True},
    )
    subscription = SubscriptionFactory(plan=plan)
    assert tenant_billing(subscription.tenant_id) == {
        "plan": "pro",
        "subscription_status": "active",
        "trial_ends_at": None,
        "subscription_ends_at": None,  # renews
        "max_projects": 25,
        "max_tables_per_project": None,  # unlimited
        "max_records": 10**6,
        "limits": {"api_requests_per_day": 100},
        "features": {"webhooks": True},
    }


def test_a_trial_and_a_cancellation_at_period_end_reach_the_tenant():
    trial_end = timezone.now() + 14 * DAY
    subscription = SubscriptionFactory(status="trialing", trial_ends_at=trial_end)
    billing = tenant_billing(subscription.tenant_id)
    assert (billing["subscription_status"], billing["trial_ends_at"]) == ("trialing", trial_end)
    subscription.status, subscription.cancel_at_period_end = "active", True
    subscription.save()
    billing = tenant_billing(subscription.tenant_id)
    assert (billing["subscription_status"], billing["subscription_ends_at"]) == (
        "active",
        subscription.current_period_end,
    )


def test_an_ended_subscription_leaves_the_tenant_canceled_on_its_plan():
    subscription = SubscriptionFactory()
    ended = timezone.now()
    subscription.status, subscription.ended_at = "canceled", ended
    subscription.save()
    billing = tenant_billing(subscription.tenant_id)
    assert (billing["plan"], billing["subscription_status"], billing["subscription_ends_at"]) == (
        subscription.plan.code,
        "canceled",
        ended,
    )


def test_a_status_change_keeps_limits_set_on_the_tenant_and_a_plan_change_replaces_them():
    subscription = SubscriptionFactory()
    Tenant.all_objects.filter(pk=subscription.tenant_id).update(max_projects=99)
    subscription.status = "past_due"
    subscription.save()
    assert tenant_billing(subscription.tenant_id)["max_projects"] == 99
    subscription.plan = PlanFactory(code="bigger", max_projects=50)
    subscription.save()
    assert tenant_billing(subscription.tenant_id)["max_projects"] == 50
    assert tenant_billing(subscription.tenant_id)["plan"] == "bigger"


def test_a_change_to_a_past_subscription_leaves_the_tenant_alone():
    past = SubscriptionFactory(status="expired", ended_at=timezone.now() - DAY)
    current = SubscriptionFactory(tenant=past.tenant, plan=PlanFactory(code="current"))
    before = tenant_billing(past.tenant_id)
    past.plan = PlanFactory(code="older")
    past.save()
    assert tenant_billing(past.tenant_id) == before
    assert before["plan"] == current.plan.code


def test_an_update_that_changes_nothing_for_the_tenant_does_not_touch_it():
    subscription = SubscriptionFactory()
    tenant = Tenant.all_objects.get(pk=subscription.tenant_id)
    audited = AuditLog.objects.filter(entity_type="core.tenants", entity_id=str(tenant.pk))
    count = audited.count()
    subscription.external_id = "sub_999"
    subscription.save()
    assert Tenant.all_objects.get(pk=tenant.pk).version == tenant.version
    assert audited.count() == count


def test_the_sync_function_is_a_pinned_security_definer():
    assert query(
        "SELECT prosecdef, proconfig FROM pg_proc "
        "WHERE oid = 'billing.sync_tenant_subscription()'::regprocedure"
    ) == [(True, ["search_path=pg_catalog, pg_temp"])]


def test_the_billing_service_changes_a_plan_it_could_not_write_itself():
    subscription = SubscriptionFactory()
    bigger = PlanFactory(code="bigger")
    with as_role(service_role("billing"), subscription.tenant_id):
        assert (
            "permission denied for table tenants"
            in refused(lambda: run("UPDATE core.tenants SET plan = 'bigger'")).diag.message_primary
        )
        Subscription.objects.filter(pk=subscription.pk).update(plan=bigger)
        assert query("SELECT plan FROM core.tenants") == [("bigger",)]
        # The caller's context is the same after the trigger ran.
        assert query("SELECT app.current_tenant()") == [(subscription.tenant_id,)]


def test_the_trigger_works_in_the_subscriptions_tenant_and_puts_the_callers_context_back():
    """Run as a function owner that row level security applies to, as in production.

    The tests' owner is a superuser, which no policy holds; here the function is owned,
    for the test's transaction, by a role that has the owner's table rights but no bypass.
    """
    owner = "hzm_issue7_sync_owner"
    run(f"CREATE ROLE {owner} NOLOGIN NOBYPASSRLS")
    run(f"GRANT USAGE ON SCHEMA core, billing, app, ops TO {owner}")
    run(f"GRANT SELECT, UPDATE ON core.tenants TO {owner}")
    run(f"GRANT SELECT ON billing.plans, billing.subscriptions TO {owner}")
    # In production one owner holds both functions; here the sync's owner is granted the
    # signing function (whose owner alone may execute it) and the verified context.
    run(
        "GRANT EXECUTE ON FUNCTION app.sign_context(int, int), app.current_tenant(), "
        f"app.current_user_id() TO {owner}"
    )
    run(f"ALTER FUNCTION billing.sync_tenant_subscription() OWNER TO {owner}")
    subscription = SubscriptionFactory()
    elsewhere = TenantFactory()
    # Platform staff (the superuser here) in another tenant's context change the plan.
    with connection.cursor() as cursor:
        sign_context(cursor, elsewhere.pk, 7)
    subscription.plan = PlanFactory(code="moved")
    subscription.save()
    assert query("SELECT app.current_tenant(), app.current_user_id()") == [(elsewhere.pk, 7)]
    assert tenant_billing(subscription.tenant_id)["plan"] == "moved"


# --- Isolation and access -------------------------------------------------------------------------


def test_a_tenant_reads_only_its_own_subscription_and_writes_none():
    assert_tenant_isolated(
        Subscription, SubscriptionFactory(), SubscriptionFactory(), writable=False
    )


def test_tenants_read_plans_and_change_none():
    plan = PlanFactory()
    with tenant_context(TenantFactory().pk):
        assert Plan.objects.filter(pk=plan.pk).exists()
        error = refused(lambda: Plan.objects.filter(pk=plan.pk).update(price_monthly=0))
        assert error.diag.message_primary == "permission denied for table plans"


# --- Admin ----------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client):
    return sign_in_platform_admin(client)


def test_the_admin_pages_open(signed_in):
    subscription = SubscriptionFactory()
    assert_admin_pages_open(signed_in, subscription.plan)
    assert_admin_pages_open(signed_in, subscription)


def test_a_subscription_saved_in_the_admin_changes_the_tenant_and_cannot_be_deleted(signed_in):
    subscription = SubscriptionFactory()
    other = PlanFactory(code="other", max_projects=7)
    response = signed_in.post(
        f"/admin/billing/subscription/{subscription.pk}/change/",
        {
            "tenant": subscription.tenant_id,
            "plan": other.pk,
            "status": "active",
            "billing_cycle": "monthly",
            "current_period_start_0": "2030-01-01",
            "current_period_start_1": "00:00:00",
            "current_period_end_0": "2030-02-01",
            "current_period_end_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    assert tenant_billing(subscription.tenant_id)["plan"] == "other"
    delete = signed_in.get(f"/admin/billing/subscription/{subscription.pk}/delete/")
    assert delete.status_code == 403
