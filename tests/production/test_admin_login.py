"""The platform admin as its production process runs it: logged in as the README's hzm_admin.

hzm_admin holds the admin role that migrate made (<HZM_APP_ROLE>_admin: exactly the
admin's grants) and BYPASSRLS, nothing else. Every registered page opens, a tenant is
edited and the audit trail names the admin; sample rows are made as the owner.
"""

import uuid
from html import escape

import pytest
from django.test import Client, override_settings

from core.models import Tenant, User
from ops.models import AuditLog
from tests.factories import TenantFactory
from tests.production.deployment import Deployment
from tests.test_admin import READ_ONLY, REGISTERED, SAMPLES, admin_url, change_url, tenant_post

ADMIN = override_settings(HZM_SERVE="admin", DEBUG=False)
PASSWORD = "an admin's long passphrase"


@pytest.fixture(scope="module")
def staff(deployment: Deployment) -> str:
    """A platform admin made as the README says (createsuperuser with the owner's URL)."""
    email = f"ops-{uuid.uuid4().hex[:6]}@hzm.local"
    deployment.manage(
        "createsuperuser",
        "--noinput",
        DJANGO_SUPERUSER_EMAIL=email,
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    return email


def signed_in(staff: str) -> Client:
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": staff, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == "/admin/"
    return client


@ADMIN
def test_the_admin_signs_in_through_its_own_login(deployment, staff):
    with deployment.connected_as("hzm_admin"):
        client = signed_in(staff)
        assert client.get("/admin/").status_code == 200
        # The admin's process serves no tenant API.
        assert client.get("/api/v1/auth/session").status_code == 404
        assert client.get("/healthz").status_code == 200


@ADMIN
@pytest.mark.parametrize("label", REGISTERED)
def test_every_admin_page_opens_through_the_admin_login(deployment, staff, label):
    with deployment.connected_as("hzm_owner"):
        obj = SAMPLES[label]()
    model = type(obj)
    prefix = f"{model._meta.app_label}_{model._meta.model_name}"
    with deployment.connected_as("hzm_admin"):
        client = signed_in(staff)
        assert client.get(admin_url(f"{prefix}_changelist")).status_code == 200
        add = client.get(admin_url(f"{prefix}_add"))
        assert add.status_code == (403 if label in READ_ONLY else 200)
        change = client.get(change_url(obj))
        assert change.status_code == 200
        assert escape(str(obj)) in change.content.decode()


@ADMIN
def test_a_tenant_edit_through_the_admin_login_is_audited_with_the_admin_as_actor(
    deployment, staff
):
    with deployment.connected_as("hzm_owner"):
        tenant = Tenant.objects.get(pk=TenantFactory(name="Before").pk)
        admin_id = User.objects.get(email=staff).pk
    with deployment.connected_as("hzm_admin"):
        client = signed_in(staff)
        response = client.post(change_url(tenant), tenant_post(tenant, name="After"))
        assert response.status_code == 302, response.content.decode()[:3000]
        delete = client.post(admin_url("core_tenant_delete", tenant.pk), {"post": "yes"})
        assert delete.status_code == 302
    with deployment.connected_as("hzm_owner"):
        tenant = Tenant.all_objects.get(pk=tenant.pk)
        assert (tenant.name, tenant.is_deleted, tenant.deleted_by) == ("After", True, admin_id)
        update = AuditLog.objects.filter(
            entity_type="core.tenants", entity_id=str(tenant.pk), action="UPDATE"
        ).order_by("id")
        assert [row.user_id for row in update] == [admin_id, admin_id]
        assert update[0].new_values["name"] == "After"
        assert update[0].request_id
