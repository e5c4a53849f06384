"""Admin of ops.system_logs: read-only, searchable by source, message and request id.

Registered when ops/admin.py imports this module:
    from ops import admin_monitoring  # noqa: E402,F401
"""

from django.contrib import admin

from ops.monitoring import SystemLog


@admin.register(SystemLog)
class SystemLogAdmin(admin.ModelAdmin):
    """The system log: written by the platform, pruned by prune_system_logs, never edited."""

    list_display = ("created_at", "level", "source", "message", "request_id")
    list_filter = ("level", "source")
    search_fields = ("message", "source", "request_id")
    date_hierarchy = "created_at"
    actions = None
    readonly_fields = ("created_at", "level", "source", "message", "context", "request_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
