"""comms.webhooks and webhook_deliveries: signatures, secrets at rest, constraints, isolation."""

import hashlib
import hmac
import json

import pytest
from django.db import IntegrityError, transaction

from comms.models import Webhook, WebhookDelivery, generate_webhook_secret
from comms.signing import canonical_payload, sign_payload, verify_signature
from hzm.db.columns import purge
from ops.models import AuditLog
from tests.factories import TenantFactory
from tests.factories_platform import WebhookDeliveryFactory, WebhookFactory
from tests.platform_support import (
    assert_admin_pages_open,
    assert_reference_refused,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)
from tests.support import run

# --- Signatures (no database) ------------------------------------------------------------------


def test_the_canonical_payload_sorts_keys_and_drops_spaces():
    payload = {"b": [1, {"y": 2, "x": "é"}], "a": None}
    assert canonical_payload(payload) == '{"a":null,"b":[1,{"x":"é","y":2}]}'.encode()


def test_the_signature_is_hmac_sha256_of_the_canonical_payload():
    payload = {"event": "project.created", "project": {"id": 7}}
    expected = hmac.new(
        b"whsec_k", b'{"event":"project.created","project":{"id":7}}', hashlib.sha256
    ).hexdigest()
    assert sign_payload("whsec_k", payload) == f"sha256={expected}"


def test_a_receiver_verifies_the_bytes_it_got():
    payload = {"z": 1, "a": 2}
    signature = sign_payload("whsec_k", payload)
    assert verify_signature("whsec_k", canonical_payload(payload), signature)
    # Key order does not matter to the signer, but the bytes received do to the receiver.
    assert sign_payload("whsec_k", {"a": 2, "z": 1}) == signature
    assert not verify_signature("whsec_k", json.dumps(payload).encode(), signature)
    assert not verify_signature("whsec_other", canonical_payload(payload), signature)
    assert not verify_signature("whsec_k", canonical_payload(payload), signature.upper())


def test_secrets_are_random_and_prefixed():
    first, second = generate_webhook_secret(), generate_webhook_secret()
    assert first.startswith("whsec_") and len(first) > 40
    assert first != second


# --- Webhooks ------------------------------------------------------------------------------------

db = pytest.mark.django_db


@db
def test_the_secret_is_stored_encrypted_and_redacted_in_the_audit_trail():
    webhook = WebhookFactory(secret="whsec_plain")
    assert webhook.secret == "whsec_plain"
    assert "whsec_plain" not in webhook.secret_encrypted
    [(stored,)] = query("SELECT secret_encrypted FROM comms.webhooks WHERE id = %s", [webhook.pk])
    assert stored == webhook.secret_encrypted
    webhook.set_secret("whsec_rotated")
    webhook.save()
    rows = AuditLog.objects.filter(entity_type="comms.webhooks", entity_id=str(webhook.pk))
    assert [row.action for row in rows.order_by("id")] == ["INSERT", "UPDATE"]
    for row in rows:
        for values in (row.old_values, row.new_values):
            if values is not None:
                assert values["secret_encrypted"] == "[redacted]"


@db
@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"url": "ftp://example.com/hook"}, "webhooks_url_http"),
        ({"url": "example.com/hook"}, "webhooks_url_http"),
        ({"events": []}, "webhooks_events_not_empty"),
    ],
)
def test_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        WebhookFactory(**values)


@db
def test_subscribed_to_an_event_by_name_or_everything():
    tenant = TenantFactory()
    by_name = WebhookFactory(tenant=tenant, events=["project.created", "project.deleted"])
    everything = WebhookFactory(tenant=tenant, events=["*"])
    WebhookFactory(tenant=tenant, events=["project.deleted"])
    WebhookFactory(tenant=tenant, events=["project.created"], is_active=False)
    WebhookFactory(tenant=tenant, events=["project.created"]).delete()
    assert set(Webhook.objects.filter(tenant=tenant).subscribed_to("project.created")) == {
        by_name,
        everything,
    }


@db
def test_delete_is_soft_and_audited():
    webhook = WebhookFactory()
    webhook.delete()
    assert webhook.is_deleted
    assert Webhook.all_objects.filter(pk=webhook.pk).exists()
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert AuditLog.objects.filter(entity_type="comms.webhooks", action="UPDATE").exists()


@db
def test_the_triggers():
    assert set(
        query(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
            "WHERE tgrelid IN ('comms.webhooks'::regclass, 'comms.webhook_deliveries'::regclass) "
            "AND NOT tgisinternal"
        )
    ) == {
        ("comms.webhooks", "trg_webhooks_touch"),
        ("comms.webhooks", "trg_webhooks_softdel"),
        ("comms.webhooks", "trg_webhooks_audit"),
        ("comms.webhook_deliveries", "trg_webhook_deliveries_touch"),
    }


# --- Deliveries -----------------------------------------------------------------------------------


@db
def test_enqueue_signs_the_payload_with_the_webhooks_secret():
    webhook = WebhookFactory(secret="whsec_abc")
    payload = {"project": {"id": 3, "name": "Ünïcode"}}
    delivery = WebhookDelivery.objects.enqueue(webhook, "project.created", payload)
    delivery.refresh_from_db()
    assert (delivery.tenant_id, delivery.status, delivery.attempts) == (
        webhook.tenant_id,
        "pending",
        0,
    )
    assert delivery.payload == payload
    # What the sender posts: the canonical bytes of the stored payload, and the signature.
    assert verify_signature("whsec_abc", canonical_payload(delivery.payload), delivery.signature)


@db
@pytest.mark.parametrize("code", [99, 600])
def test_a_response_code_is_an_http_status(code):
    with pytest.raises(IntegrityError, match="webhook_deliveries_response_code_range"):
        with transaction.atomic():
            WebhookDeliveryFactory(response_code=code)


@db
def test_a_delivery_goes_to_a_webhook_of_its_tenant():
    webhook = WebhookFactory()
    assert_reference_refused(
        lambda: WebhookDeliveryFactory(webhook=webhook, tenant=TenantFactory()),
        "fk_webhook_deliveries_tenant_webhook",
    )


@db
def test_purging_a_webhook_removes_its_deliveries():
    delivery = WebhookDeliveryFactory()
    purge(Webhook.all_objects.filter(pk=delivery.webhook_id))
    assert not WebhookDelivery.objects.filter(pk=delivery.pk).exists()


@db
def test_a_payload_is_required():
    delivery = WebhookDeliveryFactory()
    with pytest.raises(IntegrityError, match='null value in column "payload"'):
        with transaction.atomic():
            run("UPDATE comms.webhook_deliveries SET payload = NULL WHERE id = %s", [delivery.pk])


@db
@pytest.mark.parametrize(
    ("model", "factory"), [(Webhook, WebhookFactory), (WebhookDelivery, WebhookDeliveryFactory)]
)
def test_a_tenant_sees_and_writes_only_its_own(model, factory):
    assert_tenant_isolated(model, factory(), factory(), writable=True)


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, db):
    return sign_in_platform_admin(client)


def test_the_admin_pages_open(signed_in):
    delivery = WebhookDeliveryFactory()
    assert_admin_pages_open(signed_in, delivery.webhook)
    assert_admin_pages_open(signed_in, delivery, can_add=False)


def test_the_admin_never_shows_the_secret(signed_in):
    webhook = WebhookFactory(secret="whsec_never_shown")
    page = signed_in.get(f"/admin/comms/webhook/{webhook.pk}/change/").content.decode()
    assert "whsec_never_shown" not in page
    assert webhook.secret_encrypted not in page


def test_a_webhook_added_in_the_admin_gets_a_secret(signed_in):
    tenant = TenantFactory()
    response = signed_in.post(
        "/admin/comms/webhook/add/",
        {
            "tenant": tenant.pk,
            "name": "CRM",
            "url": "https://crm.example.com/hook",
            "events": "project.created,project.deleted",
            "is_active": "true",
        },
    )
    assert response.status_code == 302
    webhook = Webhook.objects.get(tenant=tenant)
    assert webhook.events == ["project.created", "project.deleted"]
    assert webhook.secret.startswith("whsec_")
