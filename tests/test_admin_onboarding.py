"""The admin's onboarding pages: tenant users, projects and API keys, as a platform admin.

Issuing shows the key once, revoking asks for a reason, no page shows a hash or an
encrypted value, every write is audited with the admin as its actor. (Every page also
opens through the real hzm_admin login: SAMPLES in tests/test_admin.py.)
"""

from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.api_keys import ApiKeyUsage
from core.models import ApiKey, Project, Tenant, User
from tests.factories import ApiKeyFactory, ProjectFactory, TenantFactory, UserFactory
from tests.test_admin import admin_url, audit_rows, change_url, form_errors

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough password"


@pytest.fixture
def platform_admin(db: None) -> User:
    call_command("loaddata", "001_default_languages", "002_default_currencies", verbosity=0)
    return User.objects.create_superuser("root@hzm.test")


@pytest.fixture
def signed_in(client: Any, platform_admin: User) -> Any:
    client.force_login(platform_admin)
    return client


def page(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def assert_no_secrets(html: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret and secret not in html, f"the page shows {secret[:12]}..."


# --- Tenant users ---------------------------------------------------------------------------------


def user_post(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    data = {
        "tenant": tenant.pk,
        "email": "ada@acme.test",
        "name": "Ada",
        "role": "admin",
        "phone": "",
        "timezone": "Europe/Istanbul",
        "is_active": "on",
        "new_password": "",
    }
    data.update(changes)
    return data


def test_a_tenant_user_is_added_with_a_password_audited_and_its_hash_never_shown(
    signed_in, platform_admin
):
    tenant = TenantFactory()
    response = signed_in.post(admin_url("core_user_add"), user_post(tenant, new_password=PASSWORD))
    assert response.status_code == 302, form_errors(response)
    user = User.objects.get(email="ada@acme.test")
    assert (user.tenant_id, user.role, user.timezone) == (tenant.pk, "admin", "Europe/Istanbul")
    assert user.check_password(PASSWORD)
    (insert,) = audit_rows(User, user.pk, action="INSERT")
    assert insert.user_id == platform_admin.pk
    assert insert.new_values["password_hash"] == "[redacted]"
    html = page(signed_in.get(change_url(user))) + page(
        signed_in.get(admin_url("core_user_changelist"))
    )
    assert_no_secrets(html, user.password, user.password.split("$")[-1])
    assert 'name="password"' not in html


def test_a_user_added_without_a_password_cannot_sign_in(signed_in):
    tenant = TenantFactory()
    response = signed_in.post(admin_url("core_user_add"), user_post(tenant))
    assert response.status_code == 302, form_errors(response)
    assert not User.objects.get(email="ada@acme.test").has_usable_password()


def test_a_password_left_empty_on_the_change_page_stays(signed_in):
    user = UserFactory(password=PASSWORD, email="ada@acme.test")
    posted = user_post(user.tenant, name="Ada L.", role="user")
    response = signed_in.post(change_url(user), posted)
    assert response.status_code == 302, form_errors(response)
    user.refresh_from_db()
    assert (user.name, user.check_password(PASSWORD)) == ("Ada L.", True)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"role": "platform_admin"}, "role", "only for users of the platform tenant"),
        ({"role": "Boss!"}, "role", "lower-case letters"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"new_password": "short"}, "new_password", "at least 8 characters"),
    ],
)
def test_bad_user_input_is_refused_naming_the_field(signed_in, changes, field, words):
    tenant = TenantFactory()
    errors = form_errors(signed_in.post(admin_url("core_user_add"), user_post(tenant, **changes)))
    assert field in errors
    assert words in " ".join(errors[field])
    assert not User.objects.filter(email="ada@acme.test").exists()


def test_deleting_a_user_is_a_soft_delete(signed_in, platform_admin):
    user = UserFactory()
    response = signed_in.post(admin_url("core_user_delete", user.pk), {"post": "yes"})
    assert response.status_code == 302
    gone = User.all_objects.get(pk=user.pk)
    assert (gone.is_deleted, gone.deleted_by) == (True, platform_admin.pk)


# --- Projects -----------------------------------------------------------------------------------


def project_post(tenant: Tenant, owner: User, **changes: Any) -> dict[str, Any]:
    data = {
        "tenant": tenant.pk,
        "user": owner.pk,
        "name": "Shop",
        "description": "",
        "template_type": "",
        "is_active": "on",
    }
    data.update(changes)
    return data


def test_a_project_is_added_for_an_owner_of_its_tenant(signed_in, platform_admin):
    owner = UserFactory()
    response = signed_in.post(admin_url("core_project_add"), project_post(owner.tenant, owner))
    assert response.status_code == 302, form_errors(response)
    project = Project.objects.get(tenant=owner.tenant, name="Shop")
    assert project.user_id == owner.pk
    assert len(project.api_key) >= 32  # the guide's column, random and never shown
    assert audit_rows(Project, project.pk, action="INSERT").get().user_id == platform_admin.pk
    assert_no_secrets(page(signed_in.get(change_url(project))), project.api_key)


def test_a_project_s_owner_must_be_of_its_tenant(signed_in):
    owner, stranger = UserFactory(), UserFactory()
    posted = project_post(owner.tenant, stranger)
    errors = form_errors(signed_in.post(admin_url("core_project_add"), posted))
    assert "belongs to tenant" in " ".join(errors["user"])


def test_a_tenant_s_max_projects_is_kept(signed_in):
    owner = UserFactory()
    Tenant.objects.filter(pk=owner.tenant_id).update(max_projects=1)
    ProjectFactory(tenant=owner.tenant, user=owner, name="First")
    posted = project_post(Tenant.objects.get(pk=owner.tenant_id), owner)
    errors = form_errors(signed_in.post(admin_url("core_project_add"), posted))
    assert "max_projects 1" in " ".join(errors["tenant"])


# --- API keys ------------------------------------------------------------------------------------


def key_post(of: Project, **changes: Any) -> dict[str, Any]:
    data = {
        "user": of.user_id,
        "project": of.pk,
        "name": "storefront",
        "scopes": "read, write:products",
        "allowed_ips": "203.0.113.0/24",
        "allowed_domains": "shop.example.com",
        "rate_limit_per_minute": "10",
        "rate_limit_per_day": "",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(changes)
    return data


def test_issuing_a_key_shows_it_once_and_never_again(signed_in, platform_admin):
    project = ProjectFactory()
    response = signed_in.post(admin_url("core_apikey_add"), key_post(project))
    html = page(response)
    assert "no-store" in response["Cache-Control"]
    api_key = ApiKey.objects.get(name="storefront")
    plaintext = response.context["plaintext"]
    assert plaintext.startswith(api_key.key_prefix + "_") and plaintext in html
    assert ApiKey.objects.verify(plaintext) == api_key
    assert (api_key.tenant_id, api_key.project_id, api_key.user_id) == (
        project.tenant_id,
        project.pk,
        project.user_id,
    )
    assert api_key.scopes == ["read", "write:products"]
    assert api_key.allowed_ips == ["203.0.113.0/24"]
    assert api_key.allowed_domains == ["shop.example.com"]
    assert (api_key.rate_limit_per_minute, api_key.rate_limit_per_day) == (10, None)
    (insert,) = audit_rows(ApiKey, api_key.pk, action="INSERT")
    assert insert.user_id == platform_admin.pk
    assert insert.new_values["key_hash"] == insert.new_values["key_encrypted"] == "[redacted]"
    # Not in a message, the session or a cookie; not on any later page.
    assert plaintext not in str(dict(signed_in.session))
    assert all(plaintext not in cookie.value for cookie in signed_in.cookies.values())
    later = (
        page(signed_in.get(change_url(api_key)))
        + page(signed_in.get(admin_url("core_apikey_changelist")))
        + page(signed_in.get(admin_url("core_apikey_history", api_key.pk)))
    )
    assert_no_secrets(later, plaintext, api_key.key_hash, api_key.key_encrypted)
    assert api_key.key_prefix in later


def test_a_key_for_the_whole_tenant_has_no_project(signed_in):
    project = ProjectFactory()
    response = signed_in.post(admin_url("core_apikey_add"), key_post(project, project=""))
    page(response)
    assert ApiKey.objects.get(name="storefront").project_id is None


def test_the_add_page_starts_from_a_project_s_owner_and_every_scope(signed_in):
    project = ProjectFactory()
    response = signed_in.get(admin_url("core_apikey_add") + f"?project={project.pk}")
    initial = response.context["adminform"].form.initial
    assert (initial["project"], initial["user"]) == (project.pk, project.user_id)
    assert initial["scopes"] == ["read", "write", "define"]
    assert (initial["rate_limit_per_minute"], initial["rate_limit_per_day"]) == (60, 10000)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"scopes": "read, delete"}, "scopes", "'delete' is not a scope"),
        ({"allowed_ips": "10.0.0.300"}, "allowed_ips", "not an IP address"),
        ({"allowed_domains": "https://x.test/path"}, "allowed_domains", "not a host"),
        ({"rate_limit_per_minute": "0"}, "rate_limit_per_minute", "greater than or equal to 1"),
        ({"expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}, "expires_at", "future"),
    ],
)
def test_bad_key_settings_are_refused_naming_the_field(signed_in, changes, field, words):
    project = ProjectFactory()
    errors = form_errors(signed_in.post(admin_url("core_apikey_add"), key_post(project, **changes)))
    assert words in " ".join(errors[field])
    assert not ApiKey.objects.filter(name="storefront").exists()


def test_a_key_s_project_must_be_of_its_user_s_tenant(signed_in):
    project, stranger = ProjectFactory(), UserFactory()
    posted = key_post(project, user=stranger.pk)
    errors = form_errors(signed_in.post(admin_url("core_apikey_add"), posted))
    assert "not to the user's tenant" in " ".join(errors["project"])


def test_a_key_s_settings_are_changed_and_audited(signed_in, platform_admin):
    api_key = ApiKeyFactory()
    posted = {
        "name": "renamed",
        "is_active": "on",
        "scopes": "read",
        "allowed_ips": "",
        "allowed_domains": "",
        "rate_limit_per_minute": "5",
        "rate_limit_per_day": "100",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    response = signed_in.post(change_url(api_key), posted)
    assert response.status_code == 302, form_errors(response)
    api_key.refresh_from_db()
    assert (api_key.name, api_key.scopes, api_key.rate_limit_per_minute) == ("renamed", ["read"], 5)
    assert audit_rows(ApiKey, api_key.pk, action="UPDATE").last().user_id == platform_admin.pk


def test_keys_are_revoked_with_a_reason_not_deleted(signed_in, platform_admin):
    first, second, done = ApiKeyFactory(), ApiKeyFactory(), ApiKeyFactory()
    ApiKey.objects.filter(pk=done.pk).update(revoked_at=timezone.now(), revoke_reason="old")
    selected = {"action": "revoke_selected", "_selected_action": [first.pk, second.pk, done.pk]}
    changelist = admin_url("core_apikey_changelist")
    asked = page(signed_in.post(changelist, selected))
    assert "Reason" in asked and str(first) in asked
    refused = signed_in.post(changelist, {**selected, "confirm": "yes", "reason": " "})
    assert "say why the key is revoked" in page(refused)
    assert not ApiKey.objects.filter(pk=first.pk, revoked_at__isnull=False).exists()
    response = signed_in.post(changelist, {**selected, "confirm": "yes", "reason": "leaked"})
    assert response.status_code == 302
    for key in (first, second):
        key.refresh_from_db()
        assert (key.revoked_by, key.revoke_reason) == (platform_admin.pk, "leaked")
        assert key.revoked_at is not None
        assert audit_rows(ApiKey, key.pk, action="UPDATE").last().user_id == platform_admin.pk
    done.refresh_from_db()
    assert done.revoke_reason == "old"
    # No delete, anywhere.
    assert signed_in.get(admin_url("core_apikey_delete", first.pk)).status_code == 403
    assert "delete_selected" not in page(signed_in.get(changelist))


def test_a_key_s_own_page_revokes_it_after_asking_why(signed_in, platform_admin):
    api_key = ApiKeyFactory()
    assert admin_url("core_apikey_revoke", api_key.pk) in page(signed_in.get(change_url(api_key)))
    revoke_url = admin_url("core_apikey_revoke", api_key.pk)
    assert "Reason" in page(signed_in.get(revoke_url))
    response = signed_in.post(revoke_url, {"confirm": "yes", "reason": "rotated"})
    assert response.status_code == 302
    assert response["Location"] == change_url(api_key)
    api_key.refresh_from_db()
    assert (api_key.revoke_reason, api_key.revoked_by) == ("rotated", platform_admin.pk)
    shown = page(signed_in.get(change_url(api_key)))
    assert "rotated" in shown and 'name="scopes"' not in shown  # kept as it was


def test_the_list_shows_each_key_s_use(signed_in):
    api_key = ApiKeyFactory()
    ApiKeyUsage.objects.create(
        api_key=api_key,
        day=timezone.now().date(),
        requests=41,
        errors=2,
        minute_start=timezone.now(),
        last_used_at=timezone.now(),
    )
    ApiKey.objects.filter(pk=api_key.pk).update(total_requests=1000, total_errors=5)
    response = signed_in.get(admin_url("core_apikey_changelist"))
    row = next(r for r in response.context["cl"].result_list if r.pk == api_key.pk)
    assert (row.live_total_requests, row.live_total_errors) == (1041, 7)
    assert "1041" in page(response)
