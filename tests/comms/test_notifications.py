"""comms.notifications and comms.email_queue: defaults, constraints, triggers, isolation, admin."""

import pytest
from django.db import IntegrityError, transaction

from comms.models import EmailQueue, Notification
from core.models import User
from hzm.db.columns import purge
from tests.factories import UserFactory
from tests.factories_platform import EmailQueueFactory, NotificationFactory
from tests.platform_support import (
    assert_admin_pages_open,
    assert_reference_refused,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)

pytestmark = pytest.mark.django_db


def test_the_tables_have_a_touch_trigger_only():
    assert query(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE tgrelid IN ('comms.notifications'::regclass, 'comms.email_queue'::regclass) "
        "AND NOT tgisinternal ORDER BY 1"
    ) == [
        ("comms.email_queue", "trg_email_queue_touch"),
        ("comms.notifications", "trg_notifications_touch"),
    ]


# --- Notifications ---------------------------------------------------------------------------


def test_a_notification_starts_unread_with_empty_data():
    user = UserFactory()
    [row] = query(
        "INSERT INTO comms.notifications (tenant_id, user_id, kind, title) "
        "VALUES (%s, %s, 'project.shared', 'Hi') RETURNING data::text, read_at, version",
        [user.tenant_id, user.pk],
    )
    assert row == ("{}", None, 1)


def test_mark_read_marks_only_the_unread():
    user = UserFactory()
    read, unread = (NotificationFactory(user=user) for _ in range(2))
    Notification.objects.filter(pk=read.pk).mark_read()
    read.refresh_from_db()
    first_read_at = read.read_at
    assert read.is_read
    assert list(Notification.objects.filter(user=user).unread()) == [unread]
    assert Notification.objects.filter(user=user).mark_read() == 1
    read.refresh_from_db()
    assert read.read_at == first_read_at


def test_a_notification_goes_to_a_user_of_its_tenant():
    user = UserFactory()
    assert_reference_refused(
        lambda: NotificationFactory(user=user, tenant=UserFactory().tenant),
        "fk_notifications_tenant_user",
    )


def test_purging_a_user_removes_their_notifications_and_keeps_their_emails():
    notification = NotificationFactory()
    email = EmailQueueFactory(user=notification.user)
    purge(User.all_objects.filter(pk=notification.user_id))
    assert not Notification.objects.filter(pk=notification.pk).exists()
    email.refresh_from_db()
    assert (email.user_id, email.tenant_id) == (None, notification.tenant_id)


# --- The email queue -------------------------------------------------------------------------


def test_a_queued_email_is_pending_and_due_now():
    user = UserFactory()
    [row] = query(
        "INSERT INTO comms.email_queue (tenant_id, to_email, subject, body_text) "
        "VALUES (%s, 'A@Example.com', 'Hi', 'Hello') "
        "RETURNING status, attempts, max_attempts, next_attempt_at = now(), template_data::text",
        [user.tenant_id],
    )
    assert row == ("pending", 0, 5, True, "{}")


def test_the_recipient_address_ignores_case():
    email = EmailQueueFactory(to_email="Someone@Example.com")
    assert EmailQueue.objects.filter(to_email="someone@example.COM").get() == email


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"status": "lost"}, "email_queue_status_check"),
        ({"attempts": -1}, "email_queue_attempts_check"),
        ({"attempts": 6, "max_attempts": 5}, "email_queue_attempts_check"),
        ({"max_attempts": 0, "attempts": 0}, "email_queue_attempts_check"),
        ({"status": "sending"}, "email_queue_sending_locked"),
        ({"status": "sent"}, "email_queue_sent_at"),
        ({"body_text": None}, "email_queue_has_content"),
    ],
)
def test_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        EmailQueueFactory(**values)


def test_a_template_is_content_enough():
    assert EmailQueueFactory(body_text=None, template="welcome").template == "welcome"


def test_an_email_goes_to_a_user_of_its_tenant():
    user = UserFactory()
    assert_reference_refused(
        lambda: EmailQueueFactory(user=user, tenant=UserFactory().tenant),
        "fk_email_queue_tenant_user",
    )


# --- Isolation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "factory"), [(Notification, NotificationFactory), (EmailQueue, EmailQueueFactory)]
)
def test_a_tenant_sees_and_writes_only_its_own(model, factory):
    assert_tenant_isolated(model, factory(), factory(), writable=True)


# --- Admin -----------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client):
    return sign_in_platform_admin(client)


@pytest.mark.parametrize("factory", [NotificationFactory, EmailQueueFactory])
def test_the_admin_shows_but_never_adds(signed_in, factory):
    assert_admin_pages_open(signed_in, factory(), can_add=False)


def test_the_admin_requeues_a_dead_email(signed_in):
    dead = EmailQueueFactory(status="dead", attempts=5, last_error="550 no such user")
    sent = EmailQueueFactory()
    EmailQueue.objects.filter(pk=sent.pk).update(status="sent", sent_at="2030-01-01T00:00Z")
    response = signed_in.post(
        "/admin/comms/emailqueue/",
        {"action": "requeue_selected", "_selected_action": [dead.pk, sent.pk]},
    )
    assert response.status_code == 302
    dead.refresh_from_db()
    sent.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == ("pending", 0, "550 no such user")
    assert sent.status == "sent"
