"""Feature flags: is_enabled (override, rollout, default), constraints, triggers, RLS, admin."""

import hashlib
import logging

import pytest
from django.db import IntegrityError, transaction

from cfg.flags import FeatureFlag, FeatureFlagOverride, is_enabled, rollout_bucket
from hzm.db.context import tenant_context
from tests.factories import TenantFactory
from tests.factories_platform import FeatureFlagFactory, FeatureFlagOverrideFactory
from tests.platform_support import (
    assert_admin_pages_open,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)

# --- The bucket (no database) -------------------------------------------------------------------


def test_the_bucket_is_the_documented_hash():
    digest = hashlib.sha256(b"billing.new-checkout:42").hexdigest()
    assert rollout_bucket("billing.new-checkout", 42) == int(digest[:8], 16) % 100


def test_buckets_spread_evenly_and_independently_per_flag():
    buckets = [rollout_bucket("search.v2", tenant) for tenant in range(10_000)]
    share = sum(bucket < 30 for bucket in buckets) / len(buckets)
    assert 0.28 < share < 0.32
    other = [rollout_bucket("export.csv", tenant) for tenant in range(10_000)]
    assert sum(a == b for a, b in zip(buckets, other, strict=True)) < 200  # about 1 in 100


# --- is_enabled ---------------------------------------------------------------------------------

db = pytest.mark.django_db


@db
@pytest.mark.parametrize("default", [True, False])
def test_without_rollout_or_override_the_default_decides(default):
    flag = FeatureFlagFactory(default_enabled=default)
    assert is_enabled(flag.key, TenantFactory()) is default


@db
def test_a_rollout_turns_the_flag_on_for_the_tenants_under_the_percentage():
    tenants = [TenantFactory() for _ in range(20)]
    flag = FeatureFlagFactory(default_enabled=True, rollout_percentage=40)
    on = {t.pk for t in tenants if is_enabled(flag, t)}
    assert on == {t.pk for t in tenants if rollout_bucket(flag.key, t.pk) < 40}
    # Raising the percentage only adds tenants; 0 and 100 mean nobody and everybody.
    FeatureFlag.objects.filter(pk=flag.pk).update(rollout_percentage=70)
    flag.refresh_from_db()
    assert on <= {t.pk for t in tenants if is_enabled(flag, t)}
    for percentage, expected in ((0, set()), (100, {t.pk for t in tenants})):
        FeatureFlag.objects.filter(pk=flag.pk).update(rollout_percentage=percentage)
        assert {t.pk for t in tenants if is_enabled(flag.key, t.pk)} == expected


@db
@pytest.mark.parametrize("enabled", [True, False])
def test_an_override_wins_over_rollout_and_default(enabled):
    tenant = TenantFactory()
    flag = FeatureFlagFactory(default_enabled=not enabled, rollout_percentage=0 if enabled else 100)
    FeatureFlagOverrideFactory(flag=flag, tenant=tenant, enabled=enabled)
    assert is_enabled(flag.key, tenant) is enabled
    assert is_enabled(flag.key, TenantFactory()) is not enabled


@db
def test_an_unknown_flag_is_off_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="cfg.flags"):
        assert is_enabled("no.such-flag", TenantFactory()) is False
    assert "feature flag 'no.such-flag' does not exist: treated as off" in caplog.text


@db
def test_inside_a_tenant_context_the_tenants_own_override_counts():
    tenant = TenantFactory()
    flag = FeatureFlagFactory(default_enabled=False)
    FeatureFlagOverrideFactory(flag=flag, tenant=tenant, enabled=True)
    with tenant_context(tenant.pk):
        assert is_enabled(flag.key, tenant)


# --- Constraints and triggers --------------------------------------------------------------------


@db
@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"key": "Billing"}, "feature_flags_key_format"),
        ({"key": "new checkout"}, "feature_flags_key_format"),
        ({"rollout_percentage": 101}, "feature_flags_rollout_percentage_range"),
        ({"rollout_percentage": -1}, "feature_flags_rollout_percentage_range"),
    ],
)
def test_flag_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        FeatureFlag.objects.create(**{"key": "valid.key", **values})


@db
def test_keys_are_unique_and_a_tenant_has_one_override_per_flag():
    flag = FeatureFlagFactory(key="a.b")
    with pytest.raises(IntegrityError, match="feature_flags_key_key"), transaction.atomic():
        FeatureFlag.objects.create(key="a.b")
    override = FeatureFlagOverrideFactory(flag=flag)
    with pytest.raises(IntegrityError, match="unique_flag_override"), transaction.atomic():
        FeatureFlagOverride.objects.create(flag=flag, tenant_id=override.tenant_id, enabled=False)


@db
def test_deleting_a_flag_deletes_its_overrides():
    override = FeatureFlagOverrideFactory()
    override.flag.delete()
    assert not FeatureFlagOverride.objects.filter(pk=override.pk).exists()


@db
def test_defaults_and_triggers():
    [row] = query(
        "INSERT INTO cfg.feature_flags (key) VALUES ('x.y') "
        "RETURNING default_enabled, rollout_percentage, version"
    )
    assert row == (False, None, 1)
    assert set(
        query(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgrelid IN "
            "('cfg.feature_flags'::regclass, 'cfg.feature_flag_overrides'::regclass) "
            "AND NOT tgisinternal"
        )
    ) == {
        ("cfg.feature_flags", "trg_feature_flags_touch"),
        ("cfg.feature_flags", "trg_feature_flags_audit"),
        ("cfg.feature_flag_overrides", "trg_flag_overrides_touch"),
        ("cfg.feature_flag_overrides", "trg_flag_overrides_audit"),
    }


# --- Isolation ------------------------------------------------------------------------------------


@db
def test_a_tenant_reads_only_its_own_overrides_and_changes_none():
    assert_tenant_isolated(
        FeatureFlagOverride,
        FeatureFlagOverrideFactory(),
        FeatureFlagOverrideFactory(),
        writable=False,
    )


@db
def test_tenants_read_the_flags():
    flag = FeatureFlagFactory()
    with tenant_context(TenantFactory().pk):
        assert FeatureFlag.objects.filter(pk=flag.pk).exists()


# --- Admin ---------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, db):
    return sign_in_platform_admin(client)


def test_the_admin_pages_open(signed_in):
    assert_admin_pages_open(signed_in, FeatureFlagOverrideFactory().flag)


def flag_post(**overrides: str) -> dict[str, str]:
    return {
        "key": "search.v2",
        "description": "",
        "default_enabled": "",
        "rollout_percentage": "10",
        "overrides-TOTAL_FORMS": "1",
        "overrides-INITIAL_FORMS": "0",
        **{f"overrides-0-{name}": value for name, value in overrides.items()},
    }


def test_a_flag_and_an_override_are_added_in_the_admin(signed_in):
    tenant = TenantFactory()
    response = signed_in.post(
        "/admin/cfg/featureflag/add/", flag_post(tenant_id=str(tenant.pk), enabled="on")
    )
    assert response.status_code == 302
    flag = FeatureFlag.objects.get(key="search.v2")
    assert flag.rollout_percentage == 10
    assert list(flag.overrides.values_list("tenant_id", "enabled")) == [(tenant.pk, True)]


def test_the_admin_names_a_bad_tenant_and_percentage(signed_in):
    post = flag_post(tenant_id="999999", enabled="on") | {"rollout_percentage": "150"}
    page = signed_in.post("/admin/cfg/featureflag/add/", post).content.decode()
    assert "tenant_id: &#x27;999999&#x27; is not a tenant" in page
    assert "rollout_percentage: expected 0 to 100 (or empty), got 150" in page
    assert not FeatureFlag.objects.exists()
