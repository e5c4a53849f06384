"""Schema comms (guide's 007 and 008): notifications, email queue, webhooks and their deliveries.

Every table belongs to a tenant: row level security by tenant, composite foreign
keys keeping references inside it. The email queue and webhook deliveries are work
queues that comms.queue drains with FOR UPDATE SKIP LOCKED; they share their job
columns (QueueJob).
"""

import secrets as secrets_module
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Q

from comms.signing import sign_payload
from hzm.db import fields
from hzm.db.columns import (
    ACTIVE_AND_LIVE,
    AllRowsManager,
    Authored,
    LiveManager,
    SoftDeletable,
    SoftDeleteQuerySet,
    Versioned,
    jsonb_default,
)
from hzm.db.expressions import Now
from hzm.secrets import decrypt, encrypt

# --- Notifications ------------------------------------------------------------------------


class NotificationQuerySet(models.QuerySet):
    def unread(self) -> "NotificationQuerySet":
        return self.filter(read_at__isnull=True)

    def mark_read(self) -> int:
        """Mark the unread ones read now; returns how many changed."""
        return self.unread().update(read_at=Now())


class Notification(Versioned):
    """comms.notifications: a message to one user in the application, read or unread.

    Columns: user (the recipient), kind (what happened, e.g. project.shared), title,
    body, data (jsonb for the client), link_url, read_at (NULL while unread). Many
    and short-lived, and not business records: a touch trigger, no audit, and
    dismissing one deletes it.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    user = fields.ForeignKey("core.User", db_on_delete=fields.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    body = models.TextField(null=True, blank=True)
    data = models.JSONField(db_default=jsonb_default("{}"))
    link_url = models.CharField(max_length=500, null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        db_table = 'comms"."notifications'
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant"], name="idx_notifications_tenant"),
            models.Index(F("user"), F("created_at").desc(), name="idx_notifications_user"),
            models.Index(
                fields=["user"], condition=Q(read_at__isnull=True), name="idx_notifications_unread"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


# --- Queued jobs ----------------------------------------------------------------------------

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
JOB_STATUSES = [
    (PENDING, "Pending"),
    (SENDING, "Sending"),
    (SENT, "Sent"),
    (FAILED, "Failed, will be retried"),
    (DEAD, "Dead (gave up)"),
]
# A job is due when it waits (pending, or failed and to be retried) and its time has come.
WAITING = (PENDING, FAILED)


class QueueJob(Versioned):
    """The columns of a queued job: status, attempts, next attempt, lease and last error.

    pending -> sending (claimed by a worker) -> sent; a failed attempt goes back to
    waiting as `failed` with next_attempt_at pushed back exponentially, until
    max_attempts is reached: then `dead`. comms.queue does the moving.
    """

    status = models.CharField(max_length=20, choices=JOB_STATUSES, db_default=PENDING)
    attempts = models.IntegerField(db_default=0)
    max_attempts = models.IntegerField(db_default=5)
    next_attempt_at = models.DateTimeField(db_default=Now())
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=100, null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def job_constraints(table: str) -> list[models.BaseConstraint]:
    """The checks every queue table has, named after it (email_queue_status_check, ...)."""
    return [
        models.CheckConstraint(
            condition=Q(status__in=[value for value, _label in JOB_STATUSES]),
            name=f"{table}_status_check",
        ),
        models.CheckConstraint(
            condition=Q(attempts__gte=0, max_attempts__gte=1, attempts__lte=F("max_attempts")),
            name=f"{table}_attempts_check",
        ),
        # A claimed job records when (and by whom) it was claimed; a sent one, when it went.
        models.CheckConstraint(
            condition=~Q(status=SENDING) | Q(locked_at__isnull=False),
            name=f"{table}_sending_locked",
        ),
        models.CheckConstraint(
            condition=~Q(status=SENT) | Q(sent_at__isnull=False), name=f"{table}_sent_at"
        ),
    ]


def job_indexes(table: str) -> list[models.Index]:
    """The claim query's indexes: waiting jobs by due time, claimed ones by lease start."""
    return [
        models.Index(
            fields=["next_attempt_at"], condition=Q(status__in=WAITING), name=f"idx_{table}_due"
        ),
        models.Index(
            fields=["locked_at"], condition=Q(status=SENDING), name=f"idx_{table}_sending"
        ),
    ]


class EmailQueue(QueueJob):
    """comms.email_queue: an email waiting to be sent, being sent, sent, or given up on.

    Columns: to_email (citext) and to_name, user (the recipient's account if any;
    NULL once that user is purged), subject, body_text and body_html, or template and
    template_data for a worker to render; and the job columns (status, attempts,
    max_attempts, next_attempt_at, last_attempt_at, locked_at/by, last_error,
    sent_at). Tenant code enqueues, reads, requeues or deletes its own; the comms
    service claims and reports back (comms.queue). Touch trigger; no audit (every
    retry would copy the body).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    user = fields.ForeignKey(
        "core.User", db_on_delete=fields.SET_NULL, null=True, blank=True, related_name="+"
    )
    to_email = fields.CIEmailField()
    to_name = models.CharField(max_length=200, null=True, blank=True)
    subject = models.CharField(max_length=998)  # RFC 5322's longest header line
    body_text = models.TextField(null=True, blank=True)
    body_html = models.TextField(null=True, blank=True)
    template = models.CharField(max_length=100, null=True, blank=True)
    template_data = models.JSONField(db_default=jsonb_default("{}"))

    class Meta:
        db_table = 'comms"."email_queue'
        verbose_name = "queued email"
        ordering = ["next_attempt_at", "id"]
        constraints = [
            *job_constraints("email_queue"),
            models.CheckConstraint(
                condition=Q(body_text__isnull=False)
                | Q(body_html__isnull=False)
                | Q(template__isnull=False),
                name="email_queue_has_content",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_email_queue_tenant"),
            models.Index(fields=["user"], name="idx_email_queue_user"),
            *job_indexes("email_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.to_email} ({self.status})"


# --- Webhooks ---------------------------------------------------------------------------------

WEBHOOK_SECRET_PREFIX = "whsec_"
ALL_EVENTS = "*"


def generate_webhook_secret() -> str:
    """A new signing secret: 256 random bits, recognisable by its prefix."""
    return f"{WEBHOOK_SECRET_PREFIX}{secrets_module.token_urlsafe(32)}"


class WebhookQuerySet(SoftDeleteQuerySet):
    def subscribed_to(self, event: str) -> "WebhookQuerySet":
        """Active webhooks that want `event` (by name, or all events with '*')."""
        return self.filter(is_active=True).filter(
            Q(events__contains=[event]) | Q(events__contains=[ALL_EVENTS])
        )


class Webhook(Versioned, SoftDeletable, Authored):
    """comms.webhooks: an endpoint of a tenant's that is told about events, signed.

    Columns: name, url (http or https), events (text[]: event names, or '*' for
    all; at least one), secret_encrypted (the HMAC signing secret, Fernet-encrypted
    with HZM_ENCRYPTION_KEY like API keys; redacted in the audit trail), description,
    is_active. Touch, soft-delete and audit triggers.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    url = models.CharField(max_length=2000)
    events = ArrayField(models.TextField())
    secret_encrypted = models.TextField()
    description = models.TextField(null=True, blank=True)
    is_active = models.BooleanField(null=True, db_default=True)

    objects = LiveManager.from_queryset(WebhookQuerySet)()
    all_objects = AllRowsManager.from_queryset(WebhookQuerySet)()

    class Meta:
        db_table = 'comms"."webhooks'
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "id"], name="webhooks_tenant_id_id_key"),
            models.CheckConstraint(condition=Q(url__regex=r"^https?://"), name="webhooks_url_http"),
            models.CheckConstraint(condition=~Q(events=[]), name="webhooks_events_not_empty"),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_webhooks_tenant"),
            models.Index(fields=["tenant"], name="idx_webhooks_active", condition=ACTIVE_AND_LIVE),
            GinIndex(fields=["events"], name="idx_webhooks_events"),
        ]

    def __str__(self) -> str:
        return self.name

    def set_secret(self, secret: str) -> None:
        """Store the signing secret, encrypted."""
        self.secret_encrypted = encrypt(secret)

    @property
    def secret(self) -> str:
        return decrypt(self.secret_encrypted)


class WebhookDeliveryManager(models.Manager):
    def enqueue(self, webhook: Webhook, event: str, payload: Any, **fields: Any) -> "Any":
        """Queue `payload` for `webhook`, signed now with the webhook's secret."""
        return self.create(
            tenant_id=webhook.tenant_id,
            webhook=webhook,
            event=event,
            payload=payload,
            signature=sign_payload(webhook.secret, payload),
            **fields,
        )


class WebhookDelivery(QueueJob):
    """comms.webhook_deliveries: one event sent (or to be sent) to one webhook.

    Columns: webhook, event, payload (jsonb; sent as comms.signing's canonical JSON),
    signature ('sha256=' + HMAC-SHA256 of those bytes with the webhook's secret, sent
    in a header so the receiver can check it), response_code (100-599), response_body
    (its start), duration_ms; and the job columns, as the email queue. Touch trigger;
    no audit (payloads are large and each retry would copy them).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    webhook = fields.ForeignKey(Webhook, db_on_delete=fields.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=100)
    payload = models.JSONField()
    signature = models.CharField(max_length=100)
    response_code = models.SmallIntegerField(null=True, blank=True)
    response_body = models.TextField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)

    objects = WebhookDeliveryManager()

    class Meta:
        db_table = 'comms"."webhook_deliveries'
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            *job_constraints("webhook_deliveries"),
            models.CheckConstraint(
                condition=Q(response_code__isnull=True)
                | Q(response_code__gte=100, response_code__lte=599),
                name="webhook_deliveries_response_code_range",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_webhook_deliveries_tenant"),
            models.Index(
                F("webhook"), F("created_at").desc(), name="idx_webhook_deliveries_webhook"
            ),
            *job_indexes("webhook_deliveries"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to webhook {self.webhook_id} ({self.status})"
