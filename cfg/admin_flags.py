"""Admin of cfg's feature flags, with their per-tenant overrides inline.

Registered when cfg/admin.py imports this module:
    from cfg import admin_flags  # noqa: E402,F401
cfg keeps no foreign keys into core, so an override's tenant is chosen from the
tenants by id, as a translation's is.
"""

from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.db.models import Count

from cfg.flags import FeatureFlag, FeatureFlagOverride
from hzm.admin import PlatformModelAdmin


class FeatureFlagOverrideForm(forms.ModelForm):
    tenant_id = forms.TypedChoiceField(
        label="Tenant",
        coerce=int,
        error_messages={"invalid_choice": "tenant_id: %(value)r is not a tenant"},
    )

    class Meta:
        model = FeatureFlagOverride
        fields = ("tenant_id", "enabled", "reason")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenants = apps.get_model("core", "Tenant")._base_manager.order_by("name")
        self.fields["tenant_id"].choices = [("", "---------")] + [
            (tenant.pk, f"{tenant} ({tenant.slug})") for tenant in tenants
        ]


class FeatureFlagOverrideInline(admin.TabularInline):
    model = FeatureFlagOverride
    form = FeatureFlagOverrideForm
    extra = 0


class FeatureFlagForm(forms.ModelForm):
    class Meta:
        model = FeatureFlag
        fields = ("key", "description", "default_enabled", "rollout_percentage")
        help_texts = {
            "rollout_percentage": "0-100: the share of tenants (by a stable hash) that get the "
            "flag; empty: no rollout, the default decides. A tenant's override wins over both.",
        }

    def clean_rollout_percentage(self) -> int | None:
        value = self.cleaned_data.get("rollout_percentage")
        if value is not None and not 0 <= value <= 100:
            raise forms.ValidationError(
                f"rollout_percentage: expected 0 to 100 (or empty), got {value}"
            )
        return value


@admin.register(FeatureFlag)
class FeatureFlagAdmin(PlatformModelAdmin):
    form = FeatureFlagForm
    list_display = ("key", "default_enabled", "rollout_percentage", "overrides")
    list_filter = ("default_enabled",)
    search_fields = ("key", "description")
    readonly_fields = ("version", "created_at", "updated_at")
    inlines = [FeatureFlagOverrideInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(override_count=Count("overrides"))

    @admin.display(description="overrides", ordering="override_count")
    def overrides(self, obj: FeatureFlag) -> int:
        return obj.override_count
