"""Admin of comms: notifications, the email queue, webhooks and their deliveries.

Queue rows and notifications are the system's own records: platform staff look at
them and put failed jobs back in the queue, but never edit them. Webhooks are a
tenant's configuration that support may correct; their secret is never shown.
"""

from django.contrib import admin, messages

from comms.models import EmailQueue, Notification, Webhook, WebhookDelivery, generate_webhook_secret
from comms.queue import requeue
from hzm.admin import PlatformModelAdmin, SoftDeleteAdminMixin


class ViewOnlyMixin:
    """Listed and shown, never added or changed here (deleting stays possible)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class QueueJobAdmin(ViewOnlyMixin, PlatformModelAdmin):
    """A queue's jobs; failed and dead ones can be put back in the queue."""

    list_filter = ("status",)
    date_hierarchy = "created_at"
    actions = ["requeue_selected"]

    @admin.action(description="Put selected failed or dead jobs back in the queue")
    def requeue_selected(self, request, queryset):
        count = requeue(queryset)
        self.message_user(request, f"Requeued {count} job(s).", messages.SUCCESS)


@admin.register(Notification)
class NotificationAdmin(ViewOnlyMixin, PlatformModelAdmin):
    list_display = ("title", "kind", "user", "tenant", "created_at", "read_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    search_fields = ("title", "kind", "user__email")
    date_hierarchy = "created_at"


@admin.register(EmailQueue)
class EmailQueueAdmin(QueueJobAdmin):
    list_display = ("subject", "to_email", "tenant", "status", "attempts", "next_attempt_at")
    search_fields = ("subject", "to_email")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(QueueJobAdmin):
    list_display = ("event", "webhook", "tenant", "status", "attempts", "response_code")
    search_fields = ("event", "webhook__name", "webhook__url")
    list_filter = ("status", "event")


@admin.register(Webhook)
class WebhookAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    list_display = ("name", "url", "tenant", "is_active", "events")
    list_filter = ("is_active",)
    search_fields = ("name", "url", "tenant__name")
    raw_id_fields = ("tenant",)
    fields = ("tenant", "name", "url", "events", "description", "is_active")

    def save_model(self, request, obj, form, change):
        if not change:
            # A new webhook gets its signing secret here; the tenant reads it in the app.
            obj.set_secret(generate_webhook_secret())
        super().save_model(request, obj, form, change)
