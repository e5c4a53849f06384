"""factory_boy factories for the guide's later tables (002-011): organizations, RBAC, image
variants, comms, billing, monitoring and feature flags.

As in tests/factories.py, a row's tenant is the tenant of what it hangs from, so tenant
ids never disagree across a foreign key. Roles and role permissions are a tenant's own
unless tenant=None is passed (a global row).

Global rows a tenant row points at (a permission, a plan, a flag) are created even when
the tenant row is only built: the generated isolation tests build a row, then save it
as the runtime role, which could not have saved its global parent.
"""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from billing.models import Plan, Subscription
from cfg.flags import FeatureFlag, FeatureFlagOverride
from comms.models import EmailQueue, Notification, Webhook, WebhookDelivery
from comms.signing import sign_payload
from core.organizations import Organization, OrganizationMember
from core.rbac import Permission, Role, RolePermission, UserRole
from core.storage import ImageVariant
from hzm.secrets import encrypt
from ops.monitoring import SystemLog
from tests.factories import CurrencyFactory, FileFactory, TenantFactory, UserFactory

# --- core: organizations, RBAC, image variants ---------------------------------------------


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"organization-{n}")


class OrganizationMemberFactory(DjangoModelFactory):
    """A joined member; pass joined_at=None and invited_at=... for an open invitation."""

    class Meta:
        model = OrganizationMember

    organization = factory.SubFactory(OrganizationFactory)
    tenant = factory.SelfAttribute("organization.tenant")
    user = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..tenant"))
    role = "member"
    joined_at = factory.LazyFunction(timezone.now)


class PermissionFactory(DjangoModelFactory):
    class Meta:
        model = Permission
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"things.action_{n}")
    description = factory.LazyAttribute(lambda o: f"May {o.code}")


class RoleFactory(DjangoModelFactory):
    """A tenant's own role; RoleFactory(tenant=None) makes a global one."""

    class Meta:
        model = Role

    tenant = factory.SubFactory(TenantFactory)
    code = factory.Sequence(lambda n: f"role_{n}")
    name = factory.Sequence(lambda n: f"Role {n}")


class RolePermissionFactory(DjangoModelFactory):
    class Meta:
        model = RolePermission

    role = factory.SubFactory(RoleFactory)
    tenant = factory.SelfAttribute("role.tenant")
    permission = factory.LazyFunction(PermissionFactory)


class UserRoleFactory(DjangoModelFactory):
    """A tenant-wide grant of a role of the user's tenant; pass organization for a scoped one."""

    class Meta:
        model = UserRole

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    role = factory.SubFactory(RoleFactory, tenant=factory.SelfAttribute("..tenant"))


class ImageVariantFactory(DjangoModelFactory):
    class Meta:
        model = ImageVariant

    file = factory.SubFactory(FileFactory, mime_type="image/png")
    tenant = factory.SelfAttribute("file.tenant")
    variant = factory.Sequence(lambda n: f"size-{n}")
    storage_path = factory.LazyAttribute(lambda o: f"variants/{o.file.pk}/{o.variant}.png")
    mime_type = "image/png"
    file_size = 2048
    width = 320
    height = 200


# --- comms ---------------------------------------------------------------------------------


class NotificationFactory(DjangoModelFactory):
    class Meta:
        model = Notification

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    kind = "project.shared"
    title = factory.Sequence(lambda n: f"Notification {n}")


class EmailQueueFactory(DjangoModelFactory):
    """A pending email to a user of the tenant, due now."""

    class Meta:
        model = EmailQueue

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    to_email = factory.SelfAttribute("user.email")
    subject = factory.Sequence(lambda n: f"Subject {n}")
    body_text = "Hello"


class WebhookFactory(DjangoModelFactory):
    class Meta:
        model = Webhook

    class Params:
        secret = factory.Sequence(lambda n: f"whsec_test-secret-{n}")

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Webhook {n}")
    url = factory.Sequence(lambda n: f"https://hooks.example.com/{n}")
    events = factory.LazyFunction(lambda: ["project.created"])
    secret_encrypted = factory.LazyAttribute(lambda o: encrypt(o.secret))


class WebhookDeliveryFactory(DjangoModelFactory):
    """A delivery signed with the webhook's secret, as WebhookDelivery.objects.enqueue signs."""

    class Meta:
        model = WebhookDelivery

    webhook = factory.SubFactory(WebhookFactory)
    tenant = factory.SelfAttribute("webhook.tenant")
    event = "project.created"
    payload = factory.Sequence(lambda n: {"project": {"id": n}})
    signature = factory.LazyAttribute(lambda o: sign_payload(o.webhook.secret, o.payload))


# --- billing ----------------------------------------------------------------------------------


class PlanFactory(DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.LazyAttribute(lambda o: o.code.title())
    currency = factory.SubFactory(CurrencyFactory, code="USD", name="US Dollar", symbol="$")
    price_monthly = Decimal("10.00")
    max_projects = 5
    max_tables_per_project = 20
    max_records = 50000


class SubscriptionFactory(DjangoModelFactory):
    """A tenant's active monthly subscription, this month to next."""

    class Meta:
        model = Subscription

    tenant = factory.SubFactory(TenantFactory)
    plan = factory.LazyFunction(PlanFactory)
    status = "active"
    current_period_start = factory.LazyFunction(timezone.now)
    current_period_end = factory.LazyAttribute(
        lambda o: o.current_period_start + datetime.timedelta(days=30)
    )


# --- ops, cfg --------------------------------------------------------------------------------


class SystemLogFactory(DjangoModelFactory):
    class Meta:
        model = SystemLog

    level = "info"
    source = "tests"
    message = factory.Sequence(lambda n: f"Event {n}")


class FeatureFlagFactory(DjangoModelFactory):
    class Meta:
        model = FeatureFlag
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"feature.flag-{n}")


class FeatureFlagOverrideFactory(DjangoModelFactory):
    class Meta:
        model = FeatureFlagOverride

    class Params:
        tenant = factory.SubFactory(TenantFactory)

    flag = factory.LazyFunction(FeatureFlagFactory)
    tenant_id = factory.SelfAttribute("tenant.id")
    enabled = True
