"""Schema cfg, guide's 011: feature flags, rolled out by percentage, with per-tenant overrides.

is_enabled(flag, tenant) answers, in order:
1. the tenant's override (cfg.feature_flag_overrides), if it has one;
2. else, if the flag has a rollout_percentage, whether the tenant's bucket falls
   under it: bucket = int(first 8 hex digits of sha256("<key>:<tenant id>")) % 100,
   stable for a tenant and independent between flags, so raising the percentage
   only ever adds tenants;
3. else the flag's default.
An unknown flag is off.
"""

import hashlib
import logging
from typing import Any

from django.db import models
from django.db.models import Q

from hzm.db import fields
from hzm.db.columns import Authored, Versioned

logger = logging.getLogger(__name__)

FLAG_KEY = r"^[a-z][a-z0-9_.-]*\Z"


class FeatureFlagManager(models.Manager):
    def get_by_natural_key(self, key: str) -> "FeatureFlag":
        return self.get(key=key)


class FeatureFlag(Versioned, Authored):
    """cfg.feature_flags: a switch for a feature, global (every tenant sees the same row).

    Columns: key (unique, lower-case: billing.new-checkout), description,
    default_enabled, rollout_percentage (0-100, or NULL for no rollout: the default
    decides). Touch and audit triggers; the runtime role reads, platform staff write.
    """

    key = models.CharField(max_length=100)
    description = models.TextField(null=True, blank=True)
    default_enabled = models.BooleanField(db_default=False)
    rollout_percentage = models.SmallIntegerField(null=True, blank=True)

    objects = FeatureFlagManager()

    class Meta:
        db_table = 'cfg"."feature_flags'
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["key"], name="feature_flags_key_key"),
            models.CheckConstraint(
                condition=Q(key__regex=FLAG_KEY), name="feature_flags_key_format"
            ),
            models.CheckConstraint(
                condition=Q(rollout_percentage__isnull=True)
                | Q(rollout_percentage__gte=0, rollout_percentage__lte=100),
                name="feature_flags_rollout_percentage_range",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def natural_key(self) -> tuple[str]:
        return (self.key,)


class FeatureFlagOverride(Versioned, Authored):
    """cfg.feature_flag_overrides: a flag forced on or off for one tenant.

    Columns: flag, tenant_id (a plain id: cfg keeps no foreign keys into core, which
    is migrated after it, as cfg.translations does), enabled, reason. One per (flag,
    tenant). Row level security by tenant: a tenant reads its own overrides and
    writes none (the runtime role has SELECT only). Touch and audit triggers.
    """

    flag = fields.ForeignKey(FeatureFlag, db_on_delete=fields.CASCADE, related_name="overrides")
    tenant_id = models.IntegerField()
    enabled = models.BooleanField()
    reason = models.TextField(null=True, blank=True)

    class Meta:
        db_table = 'cfg"."feature_flag_overrides'
        constraints = [
            models.UniqueConstraint(fields=["flag", "tenant_id"], name="unique_flag_override")
        ]
        indexes = [models.Index(fields=["tenant_id"], name="idx_flag_overrides_tenant")]

    def __str__(self) -> str:
        return f"{self.flag_id} {'on' if self.enabled else 'off'} for tenant {self.tenant_id}"


def rollout_bucket(flag_key: str, tenant_id: int) -> int:
    """The tenant's bucket for a flag, 0-99: stable, and independent from flag to flag."""
    digest = hashlib.sha256(f"{flag_key}:{tenant_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 100


def is_enabled(flag: "str | FeatureFlag", tenant: Any) -> bool:
    """Whether `flag` (a key or a FeatureFlag) is on for `tenant` (a Tenant or its id)."""
    tenant_id = getattr(tenant, "pk", tenant)
    if not isinstance(flag, FeatureFlag):
        found = FeatureFlag.objects.filter(key=flag).first()
        if found is None:
            logger.warning("feature flag %r does not exist: treated as off", flag)
            return False
        flag = found
    override = (
        FeatureFlagOverride.objects.filter(flag=flag, tenant_id=tenant_id)
        .values_list("enabled", flat=True)
        .first()
    )
    if override is not None:
        return override
    if flag.rollout_percentage is not None:
        return rollout_bucket(flag.key, tenant_id) < flag.rollout_percentage
    return flag.default_enabled
