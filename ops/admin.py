"""Admin of ops: the audit trail, read-only, with each change shown field by field."""

import json
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import OuterRef, Subquery
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ops.models import AuditLog

# Columns every audited UPDATE changes (the touch trigger), left out of the list's summary.
BOOKKEEPING = frozenset({"updated_at", "version"})


def audit_changes(old: dict | None, new: dict | None) -> list[tuple[str, Any, Any]]:
    """(column, old value, new value) for each column whose value differs, by column name.

    An INSERT has no old row and a DELETE no new one: every column of the other shows.
    """
    old, new = old or {}, new or {}
    missing = object()
    return [
        (key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    ]


class TenantFilter(admin.SimpleListFilter):
    title = _("tenant")
    parameter_name = "tenant"
    NONE = "none"

    def lookups(self, request, model_admin):
        used = AuditLog.objects.exclude(tenant_id=None).values("tenant_id")
        tenants = apps.get_model("core", "Tenant")._base_manager.filter(pk__in=used)
        return [(self.NONE, _("No tenant (platform)"))] + [
            (str(tenant.pk), str(tenant)) for tenant in tenants.order_by("name")
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.NONE:
            return queryset.filter(tenant_id=None)
        if value:
            return queryset.filter(tenant_id=int(value)) if value.isdigit() else queryset.none()
        return queryset


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """The audit trail: nobody adds, changes or deletes a row of it here."""

    list_display = (
        "created_at",
        "action",
        "entity_type",
        "entity_id",
        "tenant",
        "actor",
        "summary",
    )
    list_filter = (TenantFilter, "entity_type", "action")
    search_fields = ("entity_id", "request_id")
    date_hierarchy = "created_at"
    actions = None
    fields = (
        "created_at",
        "action",
        "entity_type",
        "entity_id",
        "tenant",
        "actor",
        "changes",
        "ip_address",
        "user_agent",
        "request_id",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        users = get_user_model()._base_manager.filter(pk=OuterRef("user_id"))
        tenants = apps.get_model("core", "Tenant")._base_manager.filter(pk=OuterRef("tenant_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                actor_email=Subquery(users.values("email")[:1]),
                tenant_name=Subquery(tenants.values("name")[:1]),
            )
        )

    @admin.display(description=_("actor"), ordering="user_id")
    def actor(self, obj: AuditLog) -> str:
        if obj.user_id is None:
            return "-"
        email = getattr(obj, "actor_email", None)
        return f"{email} (user {obj.user_id})" if email else f"user {obj.user_id}"

    @admin.display(description=_("tenant"), ordering="tenant_id")
    def tenant(self, obj: AuditLog) -> str:
        if obj.tenant_id is None:
            return "-"
        return getattr(obj, "tenant_name", None) or f"tenant {obj.tenant_id}"

    @admin.display(description=_("changed"))
    def summary(self, obj: AuditLog) -> str:
        if obj.action != "UPDATE":
            return obj.action.lower()
        keys = [key for key, _old, _new in audit_changes(obj.old_values, obj.new_values)]
        return ", ".join(key for key in keys if key not in BOOKKEEPING) or "-"

    @admin.display(description=_("changes"))
    def changes(self, obj: AuditLog) -> str:
        rows = audit_changes(obj.old_values, obj.new_values)
        if not rows:
            return _("no difference")
        return format_html(
            '<table class="audit-changes"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            _("column"),
            _("old"),
            _("new"),
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((key, _shown(before), _shown(after)) for key, before, after in rows),
            ),
        )


def _shown(value: Any) -> str:
    """A column's value as the audit row stores it: JSON for objects and arrays."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


# The guide's 010: the system log.
from ops import admin_monitoring  # noqa: E402,F401
