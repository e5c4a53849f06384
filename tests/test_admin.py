"""The platform admin: who signs in, every page opens, bad input is refused, writes are audited."""

import csv
import datetime
import io
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, models
from django.db.models import Q
from django.test import RequestFactory
from django.urls import reverse
from django.utils.html import escape
from openpyxl import Workbook, load_workbook

from cfg.admin import missing_translation_keys
from cfg.models import Currency, ExchangeRate, Language, Translation
from core.models import SignInFailure, Tenant, User
from hzm.admin import CompositeKeyAdmin, HzmAdminSite, db_default_initial
from hzm.db import sql
from ops.admin import audit_changes
from ops.models import AuditLog
from tests.factories import (
    ApiKeyFactory,
    ExchangeRateFactory,
    LanguageFactory,
    ProjectFactory,
    TenantFactory,
    TranslationFactory,
    UserFactory,
)
from tests.factories_platform import (
    EmailQueueFactory,
    FeatureFlagFactory,
    NotificationFactory,
    OrganizationFactory,
    PermissionFactory,
    PlanFactory,
    RoleFactory,
    SubscriptionFactory,
    SystemLogFactory,
    UserRoleFactory,
    WebhookDeliveryFactory,
    WebhookFactory,
)

pytestmark = pytest.mark.django_db

PASSWORD = "Corr3ct-Horse-Battery-Staple"


# --- Fixtures and helpers ------------------------------------------------------------


@pytest.fixture
def reference_data(db: None) -> None:
    call_command("loaddata", "001_default_languages", "002_default_currencies", verbosity=0)


@pytest.fixture
def platform_admin(reference_data: None) -> User:
    # No password: these tests sign in with force_login, sparing Argon2's cost.
    return User.objects.create_superuser("root@hzm.test")


@pytest.fixture
def signed_in(client: Any, platform_admin: User) -> Any:
    client.force_login(platform_admin)
    return client


def audit_rows(model: type[models.Model], entity_id: Any = None, **filters: Any) -> Any:
    """Audit rows of `model`'s table: entity_type 'table' (the seed's) or 'schema.table'."""
    schema, table = sql.split_db_table(model._meta.db_table)
    rows = AuditLog.objects.filter(Q(entity_type=table) | Q(entity_type=f"{schema}.{table}"))
    if entity_id is not None:
        rows = rows.filter(entity_id=str(entity_id))
    return rows.filter(**filters).order_by("id")


def admin_url(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


def change_url(obj: models.Model) -> str:
    model_admin = admin.site.get_model_admin(type(obj))
    if isinstance(model_admin, CompositeKeyAdmin):
        return model_admin.change_url(obj)
    opts = obj._meta
    return admin_url(f"{opts.app_label}_{opts.model_name}_change", quote(obj.pk))


def form_errors(response: Any) -> dict[str, list[str]]:
    """The errors of the admin form a response re-rendered (field name -> messages)."""
    assert response.status_code == 200, f"expected the form again, got {response.status_code}"
    return {
        name: list(messages) for name, messages in response.context["adminform"].form.errors.items()
    }


def tenant_post(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    """What the tenant change form posts for `tenant` as it is, with `changes` applied."""
    data: dict[str, Any] = {
        "name": tenant.name,
        "slug": tenant.slug,
        "domain": tenant.domain or "",
        "is_active": "true",
        "logo_url": "",
        "favicon_url": "",
        "primary_color": tenant.primary_color or "",
        "secondary_color": tenant.secondary_color or "",
        "default_language": tenant.default_language_id,
        "supported_languages": list(tenant.supported_languages),
        "timezone": tenant.timezone,
        "date_format": tenant.date_format,
        "time_format": tenant.time_format,
        "decimal_separator": tenant.decimal_separator,
        "thousands_separator": tenant.thousands_separator,
        "default_currency": tenant.default_currency_id,
        "supported_currencies": list(tenant.supported_currencies),
        "auto_convert_currency": "false",
        "plan": tenant.plan,
        "subscription_status": tenant.subscription_status,
        "trial_ends_at_0": "",
        "trial_ends_at_1": "",
        "subscription_ends_at_0": "",
        "subscription_ends_at_1": "",
        "max_projects": tenant.max_projects,
        "max_tables_per_project": tenant.max_tables_per_project,
        "max_records": tenant.max_records,
        "limits": json.dumps(tenant.limits),
        "features": json.dumps(tenant.features),
        "settings": json.dumps(tenant.settings),
    }
    data.update(changes)
    return data


@pytest.fixture
def tenant(reference_data: None) -> Tenant:
    created = TenantFactory(
        name="Acme", slug="acme", primary_color="#112233", supported_languages=["en", "de"]
    )
    return Tenant.objects.get(pk=created.pk)


# --- Signing in ----------------------------------------------------------------------


def test_a_platform_admin_signs_in_with_email_and_password(client: Any, reference_data: None):
    admin_user = User.objects.create_superuser("root@hzm.test", PASSWORD)
    response = client.post(
        admin_url("login"), {"username": "ROOT@hzm.test", "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session["_auth_user_id"] == str(admin_user.pk)
    assert client.get(admin_url("index")).status_code == 200


def test_a_tenant_user_cannot_sign_in(client: Any, reference_data: None):
    user = UserFactory(password=PASSWORD, role="admin")
    response = client.post(
        admin_url("login"), {"username": user.email, "password": PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 200
    assert "staff account" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "changes",
    [{"role": "user"}, {"role": "admin"}, {"is_active": False}, {"is_deleted": True}],
    ids=["role-user", "tenant-admin-role", "inactive-platform-admin", "deleted-platform-admin"],
)
def test_only_active_live_platform_admins_reach_the_admin(
    client: Any, platform_admin: User, changes: dict[str, Any]
):
    client.force_login(platform_admin)
    assert client.get(admin_url("index")).status_code == 200
    User.all_objects.filter(pk=platform_admin.pk).update(**changes)
    response = client.get(admin_url("index"))
    assert response.status_code == 302
    assert response["Location"].startswith(admin_url("login"))


@pytest.mark.parametrize(
    ("role", "is_deleted", "staff"),
    [("platform_admin", False, True), ("platform_admin", True, False), ("user", False, False)],
)
def test_staff_superuser_and_permissions_follow_the_role(role: str, is_deleted: bool, staff: bool):
    user = User(role=role, is_active=True, is_deleted=is_deleted)
    assert user.is_staff is staff
    assert user.is_superuser is staff
    assert user.has_perm("cfg.change_language") is staff
    assert user.has_perms(["cfg.change_language", "core.delete_tenant"]) is staff
    assert user.has_module_perms("core") is staff


# --- Every page ------------------------------------------------------------------------


def _audit_log_sample() -> AuditLog:
    TenantFactory()
    return AuditLog.objects.order_by("-id").first()


def _sign_in_failure_sample() -> SignInFailure:
    now = datetime.datetime.now(datetime.UTC)
    return SignInFailure.objects.create(
        email=f"locked-{uuid.uuid4().hex[:8]}@example.com",
        ip_address="198.51.100.90",
        failures=5,
        last_failure=now,
        locked_until=now + datetime.timedelta(minutes=15),
    )


SAMPLES = {
    "billing.plan": lambda: PlanFactory(),
    "billing.subscription": lambda: SubscriptionFactory(),
    "cfg.language": lambda: Language.objects.get(code="de"),
    "cfg.currency": lambda: Currency.objects.get(code="EUR"),
    "cfg.exchangerate": lambda: ExchangeRateFactory(),
    "cfg.featureflag": lambda: FeatureFlagFactory(),
    "cfg.translation": lambda: TranslationFactory(),
    "comms.emailqueue": lambda: EmailQueueFactory(),
    "comms.notification": lambda: NotificationFactory(),
    "comms.webhook": lambda: WebhookFactory(),
    "comms.webhookdelivery": lambda: WebhookDeliveryFactory(),
    "core.apikey": lambda: ApiKeyFactory(),
    "core.organization": lambda: OrganizationFactory(),
    "core.permission": lambda: PermissionFactory(),
    "core.project": lambda: ProjectFactory(),
    "core.role": lambda: RoleFactory(),
    "core.signinfailure": lambda: _sign_in_failure_sample(),
    "core.tenant": lambda: TenantFactory(),
    "core.user": lambda: UserFactory(),
    "core.userrole": lambda: UserRoleFactory(),
    "ops.auditlog": _audit_log_sample,
    "ops.systemlog": lambda: SystemLogFactory(),
}
REGISTERED = sorted(model._meta.label_lower for model in admin.site._registry)


def test_the_platform_admin_registers_the_issue_s_models_and_no_groups():
    assert set(REGISTERED) >= set(SAMPLES)
    assert "auth.group" not in REGISTERED


# Admins that only show their rows: no add page. Notifications and the comms service's
# queues are written by the platform's code (comms.admin's ViewOnlyMixin), the system log
# only through ops.write_system_log(), the tenants' sign-in lock-outs only by the sign-in.
READ_ONLY = {
    "comms.emailqueue",
    "comms.notification",
    "comms.webhookdelivery",
    "core.signinfailure",
    "ops.auditlog",
    "ops.systemlog",
}


@pytest.mark.parametrize("label", REGISTERED)
def test_every_registered_admin_page_opens(signed_in: Any, label: str):
    assert label in SAMPLES, f"no sample row for {label}: add one to SAMPLES"
    obj = SAMPLES[label]()
    model = type(obj)
    prefix = f"{model._meta.app_label}_{model._meta.model_name}"

    assert signed_in.get(admin_url(f"{prefix}_changelist")).status_code == 200
    add = signed_in.get(admin_url(f"{prefix}_add"))
    assert add.status_code == (403 if label in READ_ONLY else 200)
    change = signed_in.get(change_url(obj))
    assert change.status_code == 200
    assert escape(str(obj)) in change.content.decode()


def test_the_index_lists_exchange_rates_with_their_links(signed_in: Any):
    response = signed_in.get(admin_url("index"))
    assert admin_url("cfg_exchangerate_changelist") in response.content.decode()
    assert admin_url("cfg_exchangerate_add") in response.content.decode()


@pytest.mark.parametrize(
    "name", ["cfg_translation_missing", "cfg_translation_import", "cfg_translation_export"]
)
def test_translation_tool_pages_open(signed_in: Any, name: str):
    assert signed_in.get(admin_url(name)).status_code == 200


# --- Tenants ---------------------------------------------------------------------------


def test_a_tenant_edit_is_saved_and_audited_with_the_admin_as_actor(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    response = signed_in.post(
        change_url(tenant),
        tenant_post(
            tenant,
            name="Acme Corp",
            secondary_color="#a1B2c3",
            limits='{"max_users": 25}',
            features='{"search": true}',
        ),
    )
    assert response.status_code == 302, form_errors(response)
    tenant.refresh_from_db()
    assert (tenant.name, tenant.secondary_color, tenant.limits) == (
        "Acme Corp",
        "#a1B2c3",
        {"max_users": 25},
    )
    update = audit_rows(Tenant, tenant.pk, action="UPDATE").last()
    assert update is not None
    assert update.user_id == platform_admin.pk
    assert (update.old_values["name"], update.new_values["name"]) == ("Acme", "Acme Corp")


def test_saving_only_a_tenant_s_name_writes_and_audits_only_the_name(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    Tenant.objects.filter(pk=tenant.pk).update(
        supported_languages=["en", "tr", "de", "fr"], supported_currencies=["USD", "EUR", "TRY"]
    )
    tenant.refresh_from_db()
    # As a browser posts the form: the checked boxes in the page's order, not the row's.
    posted = tenant_post(
        tenant,
        name="Acme Renamed",
        supported_languages=["de", "en", "fr", "tr"],
        supported_currencies=["EUR", "TRY", "USD"],
    )
    before = last_audit_id(tenant)
    response = signed_in.post(change_url(tenant), posted)
    assert response.status_code == 302, form_errors(response)
    saved = Tenant.objects.get(pk=tenant.pk)
    assert saved.name == "Acme Renamed"
    assert saved.supported_languages == ["en", "tr", "de", "fr"]
    assert saved.supported_currencies == ["USD", "EUR", "TRY"]
    (update,) = audit_rows(Tenant, tenant.pk, id__gt=before)
    assert update.action == "UPDATE"
    assert update.user_id == platform_admin.pk
    differs = {
        key for key in update.new_values if update.new_values[key] != update.old_values.get(key)
    }
    # updated_at too, in production; in a test, now() is the test transaction's start.
    assert differs - {"updated_at"} == {"name", "version"}


def test_saving_a_tenant_unchanged_writes_nothing(signed_in: Any, tenant: Tenant):
    before = last_audit_id(tenant)
    response = signed_in.post(change_url(tenant), tenant_post(tenant))
    assert response.status_code == 302, form_errors(response)
    assert not audit_rows(Tenant, tenant.pk, id__gt=before).exists()
    assert Tenant.objects.get(pk=tenant.pk).version == tenant.version


def test_a_language_added_to_a_tenant_goes_after_the_stored_ones(signed_in: Any, tenant: Tenant):
    response = signed_in.post(
        change_url(tenant), tenant_post(tenant, supported_languages=["de", "en", "fr"])
    )
    assert response.status_code == 302, form_errors(response)
    assert Tenant.objects.get(pk=tenant.pk).supported_languages == ["en", "de", "fr"]


def last_audit_id(tenant: Tenant) -> int:
    last = audit_rows(Tenant, tenant.pk).last()
    return last.id if last else 0


def test_a_tenant_added_in_the_admin_starts_from_the_database_defaults(
    signed_in: Any, platform_admin: User
):
    form = signed_in.get(admin_url("core_tenant_add")).context["adminform"].form
    assert form.initial["timezone"] == "UTC"
    assert form.initial["supported_languages"] == ["en"]
    assert form.initial["default_currency"] == "USD"
    assert form.initial["features"] == {}
    data = {
        **{name: form[name].value() for name in form.fields if form[name].value() is not None},
        "name": "Globex",
        "slug": "globex",
        "is_active": "true",
        "auto_convert_currency": "false",
        "features": "{}",
        "limits": "{}",
        "settings": "{}",
    }
    response = signed_in.post(admin_url("core_tenant_add"), data)
    assert response.status_code == 302, form_errors(response)
    created = Tenant.objects.get(slug="globex")
    assert (created.timezone, created.supported_languages, created.plan) == ("UTC", ["en"], "free")
    assert audit_rows(Tenant, created.pk, action="INSERT").get().user_id == platform_admin.pk


BAD_TENANT_INPUT = [
    ("default_language", "xx", "default_language", "not in cfg.languages"),
    ("supported_languages", ["en", "xx"], "supported_languages", "'xx' is not in cfg.languages"),
    ("default_currency", "XXX", "default_currency", "not in cfg.currencies"),
    (
        "supported_currencies",
        ["USD", "ZZZ"],
        "supported_currencies",
        "'ZZZ' is not in cfg.currencies",
    ),
    ("default_language", "tr", "default_language", "must be one of the supported_languages"),
    ("primary_color", "red", "primary_color", "expected a colour as #RRGGBB"),
    ("secondary_color", "#12345", "secondary_color", "expected a colour as #RRGGBB"),
    ("primary_color", "#12345G", "primary_color", "got '#12345G'"),
    ("slug", "bad slug!", "slug", "use only letters, digits, hyphens and underscores"),
    ("max_projects", "-1", "max_projects", "must be at least 0"),
    ("max_records", "-5", "max_records", "must be at least 0"),
    ("limits", '{"max_users": -5}', "limits", "'max_users' must be a whole number of at least 0"),
    ("limits", '{"max_users": 2.5}', "limits", "must be a whole number"),
    ("limits", "[1, 2]", "limits", "expected a JSON object"),
    ("features", '"search"', "features", "expected a JSON object"),
    ("features", "null", "features", "expected a JSON object"),
    ("settings", "[]", "settings", "expected a JSON object"),
    ("settings", "{not json", "settings", "settings: not valid JSON"),
    ("timezone", "Mars/Olympus", "timezone", "is not an IANA time zone"),
    ("thousands_separator", ".", "thousands_separator", "must differ from decimal_separator"),
]


@pytest.mark.parametrize(("field", "value", "error_field", "reason"), BAD_TENANT_INPUT)
def test_bad_tenant_input_is_a_form_error_and_nothing_is_saved(
    signed_in: Any, tenant: Tenant, field: str, value: Any, error_field: str, reason: str
):
    before = Tenant.objects.values().get(pk=tenant.pk)
    audit_before = audit_rows(Tenant).count()
    response = signed_in.post(
        change_url(tenant), tenant_post(tenant, name="Renamed", **{field: value})
    )
    errors = form_errors(response)
    assert any(reason in message for message in errors.get(error_field, [])), errors
    assert all(error_field in message for message in errors[error_field]), errors
    assert Tenant.objects.values().get(pk=tenant.pk) == before
    assert audit_rows(Tenant).count() == audit_before


def test_a_tenant_slug_must_be_unique(signed_in: Any, tenant: Tenant):
    TenantFactory(slug="taken")
    errors = form_errors(signed_in.post(change_url(tenant), tenant_post(tenant, slug="taken")))
    assert "slug" in errors
    assert Tenant.objects.get(pk=tenant.pk).slug == "acme"


def test_deleting_a_tenant_soft_deletes_it_with_the_admin_as_actor(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    prefix = "core_tenant"
    response = signed_in.post(admin_url(f"{prefix}_delete", tenant.pk), {"post": "yes"})
    assert response.status_code == 302
    row = Tenant.all_objects.get(pk=tenant.pk)
    assert row.is_deleted is True
    assert row.deleted_by == platform_admin.pk
    update = audit_rows(Tenant, tenant.pk, action="UPDATE").last()
    assert update.user_id == platform_admin.pk
    assert update.new_values["is_deleted"] is True

    listed = signed_in.get(admin_url(f"{prefix}_changelist"))
    assert tenant not in listed.context["cl"].result_list
    deleted = signed_in.get(admin_url(f"{prefix}_changelist") + "?deleted=deleted")
    assert list(deleted.context["cl"].result_list) == [row]
    assert signed_in.get(change_url(row)).status_code == 200


def test_the_delete_pages_of_a_tenant_say_it_is_a_soft_delete(signed_in: Any, tenant: Tenant):
    page = signed_in.get(admin_url("core_tenant_delete", tenant.pk)).content.decode()
    assert "will be marked deleted, not removed" in page and "can be restored" in page
    assert "will be deleted" not in page and "related items will be deleted" not in page
    bulk = signed_in.post(
        admin_url("core_tenant_changelist"),
        {"action": "delete_selected", "_selected_action": [tenant.pk]},
    ).content.decode()
    assert "will be marked deleted, not removed" in bulk and "can be restored" in bulk
    assert "will be deleted" not in bulk
    assert not Tenant.all_objects.get(pk=tenant.pk).is_deleted  # asked, not done


def test_yes_no_filters_offer_no_unknown_unless_a_row_is_null(signed_in: Any, tenant: Tenant):
    def choices(page: Any, title: str) -> list[str]:
        (spec,) = [spec for spec in page.context["cl"].filter_specs if spec.title == title]
        return [choice["display"] for choice in spec.choices(page.context["cl"])]

    listed = signed_in.get(admin_url("core_tenant_changelist"))
    assert choices(listed, "is active") == ["All", "Yes", "No"]
    languages = signed_in.get(admin_url("cfg_language_changelist"))
    assert choices(languages, "is active") == ["All", "Yes", "No"]
    Tenant.objects.filter(pk=tenant.pk).update(is_active=None)  # raw SQL could do it
    listed = signed_in.get(admin_url("core_tenant_changelist"))
    assert choices(listed, "is active") == ["All", "Yes", "No", "Not set (NULL)"]


def test_there_is_no_view_site_link_to_a_missing_page(signed_in: Any):
    page = signed_in.get(admin_url("index"))
    assert page.context["site_url"] is None
    assert "View site" not in page.content.decode()


def test_restore_brings_deleted_tenants_back_and_is_audited(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    Tenant.all_objects.filter(pk=tenant.pk).delete()
    assert Tenant.all_objects.get(pk=tenant.pk).is_deleted
    response = signed_in.post(
        admin_url("core_tenant_changelist") + "?deleted=deleted",
        {"action": "restore_selected", "_selected_action": [tenant.pk]},
    )
    assert response.status_code == 302
    restored = Tenant.objects.get(pk=tenant.pk)
    assert (restored.is_deleted, restored.deleted_at, restored.deleted_by) == (False, None, None)
    update = audit_rows(Tenant, tenant.pk, action="UPDATE").last()
    assert update.user_id == platform_admin.pk
    assert update.new_values["is_deleted"] is False


def test_bulk_delete_of_tenants_is_soft_and_audited(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    other = TenantFactory()
    response = signed_in.post(
        admin_url("core_tenant_changelist"),
        {"action": "delete_selected", "_selected_action": [tenant.pk, other.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert set(Tenant.all_objects.filter(is_deleted=True).values_list("pk", flat=True)) == {
        tenant.pk,
        other.pk,
    }
    for pk in (tenant.pk, other.pk):
        assert audit_rows(Tenant, pk, action="UPDATE").last().user_id == platform_admin.pk


def test_tenant_changelist_searches_and_filters(signed_in: Any, tenant: Tenant):
    TenantFactory(name="Initech", slug="initech", plan="pro")
    url = admin_url("core_tenant_changelist")
    assert [t.slug for t in signed_in.get(url + "?q=acme").context["cl"].result_list] == ["acme"]
    assert [t.slug for t in signed_in.get(url + "?plan=pro").context["cl"].result_list] == [
        "initech"
    ]
    assert signed_in.get(url + "?subscription_status=active&is_active__exact=1").status_code == 200


def test_inline_saves_run_with_the_admin_as_actor(platform_admin: User, reference_data: None):
    """save_related (inline formsets, many-to-many) writes inside an audited transaction."""
    translation = TranslationFactory(translation_value="before")

    class Formset:
        def save(self) -> None:
            Translation.objects.filter(pk=translation.pk).update(translation_value="after")

    request = RequestFactory().post("/")
    request.user = platform_admin
    form = SimpleNamespace(save_m2m=lambda: None)
    admin.site.get_model_admin(Tenant).save_related(request, form, [Formset()], change=True)
    assert (
        audit_rows(Translation, translation.pk, action="UPDATE").get().user_id == platform_admin.pk
    )


# --- Languages and currencies ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url_name", "data", "error_field", "reason"),
    [
        (
            "cfg_language_add",
            {"code": "EN!", "direction": "ltr"},
            "code",
            "expected a language code",
        ),
        (
            "cfg_language_add",
            {"code": "pt-BR", "direction": "up"},
            "direction",
            "expected ltr or rtl",
        ),
        (
            "cfg_currency_add",
            {"code": "usd", "decimal_digits": "2"},
            "code",
            "three capital letters",
        ),
        (
            "cfg_currency_add",
            {"code": "GBP", "decimal_digits": "-1"},
            "decimal_digits",
            "at least 0",
        ),
    ],
)
def test_bad_language_and_currency_input_is_refused(
    signed_in: Any, url_name: str, data: dict, error_field: str, reason: str
):
    model = Language if url_name.startswith("cfg_language") else Currency
    count = model.objects.count()
    errors = form_errors(signed_in.post(admin_url(url_name), {"is_active": "true", **data}))
    assert any(reason in message and error_field in message for message in errors[error_field])
    assert model.objects.count() == count


def test_a_language_and_a_currency_are_added(signed_in: Any):
    response = signed_in.post(
        admin_url("cfg_language_add"),
        {
            "code": "ar",
            "name": "Arabic",
            "native_name": "العربية",
            "direction": "rtl",
            "is_active": "true",
        },
    )
    assert response.status_code == 302, form_errors(response)
    assert Language.objects.get(code="ar").direction == "rtl"
    response = signed_in.post(
        admin_url("cfg_currency_add"),
        {
            "code": "GBP",
            "name": "Pound sterling",
            "symbol": "£",
            "decimal_digits": "2",
            "is_active": "true",
        },
    )
    assert response.status_code == 302, form_errors(response)
    assert Currency.objects.get(code="GBP").symbol == "£"


def test_a_language_code_cannot_change_once_saved(signed_in: Any):
    response = signed_in.post(
        change_url(Language.objects.get(code="de")),
        {"code": "xx", "name": "Deutsch (Deutschland)", "direction": "ltr", "is_active": "true"},
    )
    assert response.status_code == 302
    assert Language.objects.get(code="de").name == "Deutsch (Deutschland)"
    assert not Language.objects.filter(code="xx").exists()


def test_a_referenced_language_cannot_be_deleted(signed_in: Any, tenant: Tenant):
    TranslationFactory(language=Language.objects.get(code="fr"))
    english = Language.objects.get(code="en")  # the tenant's default_language (a foreign key)
    german = Language.objects.get(code="de")  # in the tenant's supported_languages (an array)
    french = Language.objects.get(code="fr")  # used by a translation (a foreign key)
    for language, reference in (
        (english, "Tenant: Acme (default_language)"),
        (german, "Tenant: Acme (supported_languages)"),
        (french, "Translation: fr:"),
    ):
        url = admin_url("cfg_language_delete", language.pk)
        page = signed_in.get(url)
        assert any(reference in row for row in page.context["protected"]), page.context["protected"]
        signed_in.post(url, {"post": "yes"})
        assert Language.objects.filter(pk=language.pk).exists()
    unused = LanguageFactory()
    assert signed_in.get(admin_url("cfg_language_delete", unused.pk)).context["protected"] == []
    assert (
        signed_in.post(admin_url("cfg_language_delete", unused.pk), {"post": "yes"}).status_code
        == 302
    )
    assert not Language.objects.filter(pk=unused.pk).exists()


def test_a_currency_with_exchange_rates_cannot_be_deleted(signed_in: Any):
    ExchangeRateFactory(to_currency=Currency.objects.get(code="TRY"))
    url = admin_url("cfg_currency_delete", "TRY")
    assert any("Exchange rate" in row for row in signed_in.get(url).context["protected"])
    signed_in.post(url, {"post": "yes"})
    assert Currency.objects.filter(code="TRY").exists()


def test_a_language_edit_is_audited_with_the_admin_as_actor(signed_in: Any, platform_admin: User):
    response = signed_in.post(
        change_url(Language.objects.get(code="de")),
        {"name": "German", "native_name": "Deutsch", "direction": "ltr", "is_active": "false"},
    )
    assert response.status_code == 302
    assert Language.objects.get(code="de").is_active is False
    update = audit_rows(Language, "de", action="UPDATE").get()
    assert update.user_id == platform_admin.pk
    assert (update.old_values["is_active"], update.new_values["is_active"]) == (True, False)


def test_a_currency_edit_is_audited_with_the_admin_as_actor(signed_in: Any, platform_admin: User):
    response = signed_in.post(
        change_url(Currency.objects.get(code="TRY")),
        {"name": "Turkish lira", "symbol": "₺", "decimal_digits": "2", "is_active": "true"},
    )
    assert response.status_code == 302
    assert Currency.objects.get(code="TRY").name == "Turkish lira"
    update = audit_rows(Currency, "TRY", action="UPDATE").get()
    assert update.user_id == platform_admin.pk
    assert update.new_values["name"] == "Turkish lira"


# --- Exchange rates (composite primary key) ---------------------------------------------


def rate_post(**changes: Any) -> dict[str, Any]:
    return {
        "from_currency": "USD",
        "to_currency": "EUR",
        "rate_date": "2025-01-31",
        "rate": "0.951234",
        **changes,
    }


def test_django_s_own_admin_refuses_a_composite_key_without_composite_key_admin():
    with pytest.raises(ImproperlyConfigured, match="composite primary key"):
        HzmAdminSite(name="scratch").register(ExchangeRate)
    with pytest.raises(ImproperlyConfigured, match="composite primary key"):
        admin.AdminSite(name="django").register(ExchangeRate)


def test_exchange_rates_are_added_changed_and_deleted_by_their_key(signed_in: Any):
    response = signed_in.post(admin_url("cfg_exchangerate_add"), rate_post())
    assert response.status_code == 302, form_errors(response)
    key = ("USD", "EUR", datetime.date(2025, 1, 31))
    assert ExchangeRate.objects.get(pk=key).rate == Decimal("0.951234")

    url = admin_url("cfg_exchangerate_change", "USD,EUR,2025-01-31")
    assert change_url(ExchangeRate.objects.get(pk=key)) == url
    page = signed_in.get(url)
    assert page.status_code == 200
    assert page.context["delete_url"] == admin_url("cfg_exchangerate_delete", "USD,EUR,2025-01-31")
    # The key is read-only once saved: a posted to_currency is ignored, the rate changes.
    response = signed_in.post(url, rate_post(to_currency="TRY", rate="0.96", _continue="1"))
    assert response.status_code == 302
    assert response["Location"] == url
    assert ExchangeRate.objects.get().pk == key
    assert ExchangeRate.objects.get().rate == Decimal("0.96")

    delete_url = admin_url("cfg_exchangerate_delete", "USD,EUR,2025-01-31")
    assert signed_in.get(delete_url).status_code == 200
    assert signed_in.post(delete_url, {"post": "yes"}).status_code == 302
    assert not ExchangeRate.objects.exists()


def test_the_exchange_rate_changelist_links_rows_and_has_a_date_hierarchy(signed_in: Any):
    rate = ExchangeRateFactory(rate_date=datetime.date(2024, 6, 1))
    ExchangeRateFactory(rate_date=datetime.date(2025, 6, 1))
    url = admin_url("cfg_exchangerate_changelist")
    page = signed_in.get(url)
    assert change_url(rate) in page.content.decode()
    in_2024 = signed_in.get(url + "?rate_date__year=2024")
    assert list(in_2024.context["cl"].result_list) == [rate]
    usd = signed_in.get(url + "?from_currency__code__exact=USD")
    assert usd.context["cl"].result_count == 2


@pytest.mark.parametrize("object_id", ["USD,EUR", "USD,EUR,not-a-date", "USD,EUR,1999-01-01"])
def test_an_unknown_or_malformed_exchange_rate_key_redirects(signed_in: Any, object_id: str):
    ExchangeRateFactory()
    response = signed_in.get(admin_url("cfg_exchangerate_change", object_id))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("changes", "error_field", "reason"),
    [
        ({"rate": "0"}, "rate", "rate: must be greater than 0"),
        ({"rate": "-1.5"}, "rate", "rate: must be greater than 0"),
        ({"rate": ""}, "rate", "required"),
        ({"to_currency": "USD"}, "to_currency", "to_currency: must differ from from_currency"),
        (
            {"from_currency": "XXX"},
            "from_currency",
            "from_currency: that code is not in cfg.currencies",
        ),
        ({"rate_date": "31/31/2025"}, "rate_date", "valid date"),
    ],
)
def test_bad_exchange_rates_are_refused(
    signed_in: Any, changes: dict, error_field: str, reason: str
):
    errors = form_errors(signed_in.post(admin_url("cfg_exchangerate_add"), rate_post(**changes)))
    assert any(reason in message for message in errors[error_field]), errors
    assert not ExchangeRate.objects.exists()


def test_adding_a_taken_exchange_rate_key_does_not_overwrite_it(signed_in: Any):
    ExchangeRateFactory(rate_date=datetime.date(2025, 1, 31), rate=Decimal("1.1"))
    errors = form_errors(signed_in.post(admin_url("cfg_exchangerate_add"), rate_post(rate="2")))
    assert any("already exists" in message for message in errors["__all__"])
    assert ExchangeRate.objects.get().rate == Decimal("1.1")


def test_an_exchange_rate_edit_is_audited_with_the_admin_as_actor(
    signed_in: Any, platform_admin: User
):
    response = signed_in.post(admin_url("cfg_exchangerate_add"), rate_post())
    assert response.status_code == 302
    key = "USD,EUR,2025-01-31"
    assert audit_rows(ExchangeRate, key, action="INSERT").get().user_id == platform_admin.pk
    signed_in.post(admin_url("cfg_exchangerate_change", key), rate_post(rate="0.97"))
    update = audit_rows(ExchangeRate, key, action="UPDATE").get()
    assert update.user_id == platform_admin.pk
    assert (update.old_values["rate"], update.new_values["rate"]) == (0.951234, 0.97)
    signed_in.post(admin_url("cfg_exchangerate_delete", key), {"post": "yes"})
    assert audit_rows(ExchangeRate, key, action="DELETE").get().user_id == platform_admin.pk


# --- Translations ------------------------------------------------------------------------


def test_a_translation_edit_is_audited_with_the_admin_as_actor(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    response = signed_in.post(
        admin_url("cfg_translation_add"),
        {
            "tenant_id": "",
            "language": "en",
            "translation_key": "nav.home",
            "translation_value": "Home",
        },
    )
    assert response.status_code == 302, form_errors(response)
    translation = Translation.objects.get(translation_key="nav.home")
    insert = audit_rows(Translation, translation.pk, action="INSERT").get()
    assert insert.user_id == platform_admin.pk

    response = signed_in.post(
        change_url(translation),
        {
            "tenant_id": tenant.pk,
            "language": "en",
            "translation_key": "nav.home",
            "translation_value": "Start",
        },
    )
    assert response.status_code == 302, form_errors(response)
    update = audit_rows(Translation, translation.pk, action="UPDATE").get()
    assert update.user_id == platform_admin.pk
    assert audit_changes(update.old_values, update.new_values) == [
        ("tenant_id", None, tenant.pk),
        ("translation_value", "Home", "Start"),
    ]

    signed_in.post(admin_url("cfg_translation_delete", translation.pk), {"post": "yes"})
    assert not Translation.objects.filter(pk=translation.pk).exists()
    assert (
        audit_rows(Translation, translation.pk, action="DELETE").get().user_id == platform_admin.pk
    )


@pytest.mark.parametrize(
    ("data", "error_field", "reason"),
    [
        ({"language": "xx"}, "language", "language: that code is not in cfg.languages"),
        ({"tenant_id": "999999"}, "tenant_id", "tenant_id: '999999' is not a tenant"),
        ({"translation_key": ""}, "translation_key", "required"),
        ({"translation_key": "taken"}, "translation_key", "a global translation of 'taken'"),
    ],
)
def test_bad_translations_are_refused(signed_in: Any, data: dict, error_field: str, reason: str):
    TranslationFactory(translation_key="taken", language=Language.objects.get(code="en"))
    count = Translation.objects.count()
    post = {
        "tenant_id": "",
        "language": "en",
        "translation_key": "new.key",
        "translation_value": "x",
    }
    errors = form_errors(signed_in.post(admin_url("cfg_translation_add"), {**post, **data}))
    assert any(reason in message for message in errors[error_field]), errors
    assert Translation.objects.count() == count


def test_translations_filter_by_language_and_scope_and_search(signed_in: Any, tenant: Tenant):
    de = Language.objects.get(code="de")
    global_en = TranslationFactory(translation_key="greeting", translation_value="Hello")
    global_de = TranslationFactory(
        language=de, translation_key="greeting", translation_value="Hallo"
    )
    override = TranslationFactory(
        tenant_id=tenant.pk, translation_key="greeting", translation_value="Hi"
    )
    url = admin_url("cfg_translation_changelist")

    def listed(query: str) -> set[int]:
        return {row.pk for row in signed_in.get(url + query).context["cl"].result_list}

    assert listed("?language__code__exact=de") == {global_de.pk}
    assert listed("?tenant=global") == {global_en.pk, global_de.pk}
    assert listed(f"?tenant={tenant.pk}") == {override.pk}
    assert listed("?q=Hallo") == {global_de.pk}
    assert listed("?q=greeting") == {global_en.pk, global_de.pk, override.pk}
    assert "Acme" in signed_in.get(url + f"?tenant={tenant.pk}").content.decode()


def test_missing_translation_keys_per_language():
    rows = [("en", "a"), ("en", "b"), ("de", "a"), ("tr", None)]
    assert missing_translation_keys(rows, ["en", "de", "tr"]) == {
        "en": [],
        "de": ["b"],
        "tr": ["a", "b"],
    }
    assert missing_translation_keys([], ["en"]) == {"en": []}


def test_the_missing_keys_page_lists_keys_per_language_and_tenant(signed_in: Any, tenant: Tenant):
    de = Language.objects.get(code="de")
    TranslationFactory(translation_key="nav.home")
    TranslationFactory(translation_key="nav.help")
    TranslationFactory(language=de, translation_key="nav.home")
    TranslationFactory(tenant_id=tenant.pk, language=de, translation_key="nav.help")

    report = {
        entry["language"].code: [key for key, _url in entry["keys"]]
        for entry in signed_in.get(admin_url("cfg_translation_missing")).context["report"]
    }
    assert report == {
        "de": ["nav.help"],
        "en": [],
        "fr": ["nav.help", "nav.home"],
        "tr": ["nav.help", "nav.home"],
    }

    page = signed_in.get(admin_url("cfg_translation_missing") + f"?tenant={tenant.pk}")
    report = {entry["language"].code: entry["keys"] for entry in page.context["report"]}
    assert report["de"] == []
    key, add_url = report["fr"][0]
    assert key == "nav.help"
    assert "language=fr" in add_url and f"tenant_id={tenant.pk}" in add_url


def _import(client: Any, content: bytes, name: str, file_format: int) -> Any:
    upload = SimpleUploadedFile(name, content)
    return client.post(
        admin_url("cfg_translation_import"),
        {"resource": "0", "format": str(file_format), "import_file": upload},
    )


def _confirm(client: Any, preview: Any) -> Any:
    form = preview.context["confirm_form"]
    return client.post(admin_url("cfg_translation_process_import"), form.initial)


CSV_FORMAT, XLSX_FORMAT = 0, 1


def _csv(*rows: tuple[Any, ...]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["tenant_id", "language", "translation_key", "translation_value"])
    writer.writerows(rows)
    return buffer.getvalue().encode()


def test_a_csv_import_previews_then_saves_audited_and_reimports_without_duplicates(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    content = _csv(("", "en", "nav.home", "Home"), (tenant.pk, "de", "nav.home", "Startseite"))
    preview = _import(signed_in, content, "translations.csv", CSV_FORMAT)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert "Startseite" in preview.content.decode()  # the preview shows the rows
    assert not Translation.objects.exists()  # a preview saves nothing

    assert _confirm(signed_in, preview).status_code == 302
    saved = {(t.tenant_id, t.language_id, t.translation_key): t for t in Translation.objects.all()}
    assert set(saved) == {(None, "en", "nav.home"), (tenant.pk, "de", "nav.home")}
    for translation in saved.values():
        insert = audit_rows(Translation, translation.pk, action="INSERT").get()
        assert insert.user_id == platform_admin.pk

    again = _csv(("", "en", "nav.home", "Home page"), (tenant.pk, "de", "nav.home", "Startseite"))
    assert (
        _confirm(signed_in, _import(signed_in, again, "again.csv", CSV_FORMAT)).status_code == 302
    )
    assert Translation.objects.count() == 2
    assert Translation.objects.get(tenant_id=None).translation_value == "Home page"


def test_an_import_with_bad_rows_shows_row_errors_and_saves_nothing(signed_in: Any):
    content = _csv(
        ("", "en", "ok.key", "fine"),
        ("", "xx", "bad.language", "?"),
        ("999999", "en", "bad.tenant", "?"),
        ("abc", "en", "bad.tenant.id", "?"),
        ("", "en", "", "no key"),
    )
    preview = _import(signed_in, content, "bad.csv", CSV_FORMAT)
    assert preview.status_code == 200
    result = preview.context["result"]
    assert result.has_validation_errors()
    assert "confirm_form" not in preview.context
    errors = {row.number: row.error.message_dict for row in result.invalid_rows}
    assert set(errors) == {2, 3, 4, 5}
    assert errors[2]["language"] == ["language: 'xx' is not in cfg.languages"]
    assert errors[3]["tenant_id"] == ["tenant_id: no tenant has id 999999"]
    assert "expected a tenant's id" in errors[4]["tenant_id"][0]
    assert "translation_key" in errors[5]
    assert "is not in cfg.languages" in preview.content.decode()
    assert not Translation.objects.exists()


def test_an_import_preview_shows_every_row_and_each_reason_as_text(signed_in: Any):
    content = _csv(("", "en", "good.key", "Fine text"), ("", "xx", "bad.key", "Bad text"))
    preview = _import(signed_in, content, "mixed.csv", CSV_FORMAT)
    rows = [
        (row["number"], row["outcome"], row["errors"]) for row in preview.context["every_row"]
    ]
    assert rows == [(1, "new", []), (2, "invalid", ["language: 'xx' is not in cfg.languages"])]
    page = preview.content.decode()
    table = page[page.index('id="import-rows"') :]
    assert "good.key" in table and "Fine text" in table and "bad.key" in table
    # The reason is text in the row, not a hover box (django-import-export's own markup).
    assert "<li>language: &#x27;xx&#x27; is not in cfg.languages</li>" in table
    assert "validation-error-container" not in page
    assert not Translation.objects.exists()


def test_an_xlsx_import_saves_its_rows(signed_in: Any, platform_admin: User):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["tenant_id", "language", "translation_key", "translation_value"])
    sheet.append([None, "fr", "nav.home", "Accueil"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    preview = _import(signed_in, buffer.getvalue(), "translations.xlsx", XLSX_FORMAT)
    assert not preview.context["result"].has_validation_errors()
    assert _confirm(signed_in, preview).status_code == 302
    saved = Translation.objects.get(language="fr", translation_key="nav.home")
    assert saved.translation_value == "Accueil"
    assert audit_rows(Translation, saved.pk, action="INSERT").get().user_id == platform_admin.pk


def _export(client: Any, file_format: int) -> Any:
    fields = ("tenant_id", "language", "translation_key", "translation_value")
    data = {"resource": "0", "format": str(file_format)}
    data.update({f"translationresource_{field}": "on" for field in fields})
    return client.post(admin_url("cfg_translation_export"), data)


def test_translations_export_as_csv_and_xlsx(signed_in: Any, tenant: Tenant):
    TranslationFactory(translation_key="nav.home", translation_value="Home")
    TranslationFactory(tenant_id=tenant.pk, translation_key="nav.home", translation_value="Start")

    response = _export(signed_in, CSV_FORMAT)
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["tenant_id", "language", "translation_key", "translation_value"]
    assert sorted(rows[1:]) == sorted(
        [["", "en", "nav.home", "Home"], [str(tenant.pk), "en", "nav.home", "Start"]]
    )

    response = _export(signed_in, XLSX_FORMAT)
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [
        ["" if cell is None else str(cell) for cell in row]
        for row in sheet.iter_rows(values_only=True)
    ]
    assert values[0] == ["tenant_id", "language", "translation_key", "translation_value"]
    assert sorted(values[1:]) == sorted(
        [["", "en", "nav.home", "Home"], [str(tenant.pk), "en", "nav.home", "Start"]]
    )


def test_every_cfg_table_has_an_audit_trigger_keyed_by_its_primary_key():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname, tgnargs, encode(tgargs, 'escape') "
            "FROM pg_trigger WHERE tgname LIKE 'trg\\_%\\_audit' "
            "AND tgrelid::regclass::text LIKE 'cfg.%' ORDER BY 1"
        )
        triggers = cursor.fetchall()
    assert triggers == [
        ("cfg.currencies", "trg_currencies_audit", 1, "code\\000"),
        (
            "cfg.exchange_rates",
            "trg_exchange_rates_audit",
            3,
            "from_currency\\000to_currency\\000rate_date\\000",
        ),
        # id-keyed tables need no trigger argument: ops.log_audit() defaults to id.
        ("cfg.feature_flag_overrides", "trg_flag_overrides_audit", 0, ""),
        ("cfg.feature_flags", "trg_feature_flags_audit", 0, ""),
        ("cfg.languages", "trg_languages_audit", 1, "code\\000"),
        ("cfg.translations", "trg_translations_audit", 0, ""),
    ]


# --- Audit trail -------------------------------------------------------------------------


def test_the_audit_trail_is_read_only(signed_in: Any, tenant: Tenant):
    row = audit_rows(Tenant, tenant.pk).first()
    assert signed_in.get(admin_url("ops_auditlog_add")).status_code == 403
    assert signed_in.post(change_url(row), {"action": "DELETE"}).status_code == 403
    assert (
        signed_in.post(admin_url("ops_auditlog_delete", row.pk), {"post": "yes"}).status_code == 403
    )
    page = signed_in.get(change_url(row))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert AuditLog.objects.filter(pk=row.pk, action=row.action).exists()


def test_the_audit_trail_shows_who_changed_what(
    signed_in: Any, platform_admin: User, tenant: Tenant
):
    signed_in.post(
        change_url(tenant), tenant_post(tenant, name="Acme Renamed", limits='{"max_users": 3}')
    )
    update = audit_rows(Tenant, tenant.pk, action="UPDATE").last()
    page = signed_in.get(change_url(update)).content.decode()
    assert "root@hzm.test" in page
    assert "<td>name</td><td>Acme</td><td>Acme Renamed</td>" in page
    assert "<td>limits</td><td>{}</td><td>{&quot;max_users&quot;: 3}</td>" in page

    listing = signed_in.get(admin_url("ops_auditlog_changelist") + "?action=UPDATE")
    rows = listing.context["cl"].result_list
    assert rows and all(row.action == "UPDATE" for row in rows)
    assert "root@hzm.test" in listing.content.decode()
    model_admin = admin.site.get_model_admin(AuditLog)
    assert model_admin.summary(update) == "limits, name"


def test_the_audit_trail_filters_by_tenant_entity_and_action(signed_in: Any, tenant: Tenant):
    other = TenantFactory()
    translation = TranslationFactory(tenant_id=other.pk)
    url = admin_url("ops_auditlog_changelist")

    def listed(query: str) -> list[AuditLog]:
        return list(signed_in.get(url + query).context["cl"].result_list)

    by_tenant = listed(f"?tenant={other.pk}")
    assert by_tenant and all(row.tenant_id == other.pk for row in by_tenant)
    assert translation.pk in {int(row.entity_id) for row in by_tenant}
    entity = audit_rows(Translation).first().entity_type
    by_entity = listed(f"?entity_type={entity}")
    assert [int(row.entity_id) for row in by_entity] == [translation.pk]
    assert all(row.action == "INSERT" for row in listed("?action=INSERT"))
    assert listed("?action=DELETE") == []


def test_audit_changes_lists_differing_columns():
    assert audit_changes({"a": 1, "b": 2, "c": None}, {"a": 1, "b": 3, "d": 4}) == [
        ("b", 2, 3),
        ("c", None, None),
        ("d", None, 4),
    ]
    assert audit_changes(None, {"a": 1}) == [("a", None, 1)]
    assert audit_changes({"a": 1}, None) == [("a", 1, None)]
    assert audit_changes({"a": 1}, {"a": 1}) == []


# --- Toolkit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "initial"),
    [
        ("timezone", "UTC"),
        ("max_records", 10000),
        ("is_active", True),
        ("default_language", "en"),
        ("supported_languages", ["en"]),
        ("features", {}),
        ("created_at", None),
        ("name", None),
    ],
)
def test_db_default_initial_reads_constant_database_defaults(field: str, initial: Any):
    assert db_default_initial(Tenant._meta.get_field(field)) == initial
