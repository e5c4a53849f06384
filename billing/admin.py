"""Admin of billing: the plans on offer, and tenants' subscriptions.

A subscription saved here changes its tenant's plan, status and limits too (the
database's trg_subscriptions_tenant_sync). Subscriptions are billing history: they
are never deleted; a plan still subscribed to cannot be deleted either.
"""

from django.contrib import admin

from billing.models import Plan, Subscription
from hzm.admin import PlatformModelAdmin


@admin.register(Plan)
class PlanAdmin(PlatformModelAdmin):
    list_display = ("code", "name", "price_monthly", "price_yearly", "currency", "is_active")
    list_filter = ("is_active", "is_public")
    search_fields = ("code", "name")
    readonly_fields = ("version", "created_at", "updated_at")


@admin.register(Subscription)
class SubscriptionAdmin(PlatformModelAdmin):
    list_display = ("tenant", "plan", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("tenant__name", "tenant__slug", "external_id")
    raw_id_fields = ("tenant",)
    readonly_fields = ("version", "created_at", "updated_at", "created_by", "updated_by")

    def has_delete_permission(self, request, obj=None):
        return False
