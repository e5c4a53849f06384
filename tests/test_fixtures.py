"""Reference data through loaddata, and platform admins through createsuperuser/changepassword."""

import json
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.management.commands import changepassword
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.db.models import Max

from billing.models import Plan
from cfg.models import Currency, Language
from core.models import PLATFORM_ADMIN_ROLE, PLATFORM_TENANT_SLUG, Tenant, User
from core.rbac import Permission, Role, RolePermission
from hzm import progress
from ops.models import AuditLog
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FIXTURES = ("001_default_languages", "002_default_currencies", "003_platform_admin")
FIXTURE_FILES = {
    "001_default_languages": "cfg/fixtures/001_default_languages.json",
    "002_default_currencies": "cfg/fixtures/002_default_currencies.json",
    "003_platform_admin": "core/fixtures/003_platform_admin.json",
}
PASSWORD = "Corr3ct-Horse-Battery-Staple"


def load(*names: str) -> None:
    call_command("loaddata", *names, verbosity=0)


def reference_counts() -> dict[str, int]:
    return {
        "languages": Language.objects.count(),
        "currencies": Currency.objects.count(),
        "tenants": Tenant.all_objects.count(),
        "users": User.all_objects.count(),
    }


# --- loaddata ------------------------------------------------------------------------


def test_the_fixtures_load_into_a_fresh_database_and_again_without_duplicates():
    assert reference_counts() == {"languages": 0, "currencies": 0, "tenants": 0, "users": 0}
    load(*FIXTURES)
    first = reference_counts()
    assert first == {"languages": 4, "currencies": 3, "tenants": 1, "users": 1}
    platform = Tenant.objects.get(slug=PLATFORM_TENANT_SLUG)

    load(*FIXTURES)
    assert reference_counts() == first
    assert Tenant.objects.get(slug=PLATFORM_TENANT_SLUG).pk == platform.pk


def test_reloading_updates_a_changed_row_back_to_the_fixture():
    load(*FIXTURES)
    Language.objects.filter(code="tr").update(native_name="Turkce")
    load("001_default_languages")
    assert Language.objects.get(code="tr").native_name == "Türkçe"


ALL_FIXTURES = (*FIXTURES, "004_default_rbac", "005_default_plans")


def reference_rows() -> dict[str, list[tuple]]:
    """Every reference row as stored, with its bookkeeping columns where it has them."""
    rows = {}
    for model in (Language, Currency, Tenant, User, Permission, Role, RolePermission, Plan):
        names = [field.attname for field in model._meta.concrete_fields]
        rows[model._meta.label] = list(model._base_manager.order_by("pk").values_list(*names))
    return rows


def last_audit_id() -> int:
    return AuditLog.objects.aggregate(last=Max("id"))["last"] or 0


def test_loading_the_reference_data_again_writes_nothing():
    load(*ALL_FIXTURES)
    with connection.cursor() as cursor:
        # A row created long ago: a reload would set created_at to now() again.
        cursor.execute("UPDATE core.tenants SET created_at = '2020-01-02T03:04:05Z'")
    before, audited = reference_rows(), last_audit_id()

    load(*ALL_FIXTURES)
    load(*ALL_FIXTURES)

    assert reference_rows() == before  # versions, created_at and updated_at included
    assert list(AuditLog.objects.filter(id__gt=audited)) == []
    platform = Tenant.objects.get(slug=PLATFORM_TENANT_SLUG)
    assert platform.created_at.year == 2020


def test_reloading_writes_only_the_column_that_differs():
    load(*ALL_FIXTURES)
    Language.objects.filter(code="tr").update(native_name="Turkce")
    audited = last_audit_id()
    load(*ALL_FIXTURES)
    (change,) = AuditLog.objects.filter(id__gt=audited)
    assert (change.action, change.entity_type) == ("UPDATE", "cfg.languages")
    assert change.entity_id == "tr"
    differs = {key for key in change.new_values if change.new_values[key] != change.old_values[key]}
    assert differs == {"native_name"}
    assert Language.objects.get(code="tr").native_name == "Türkçe"


def test_columns_the_fixture_leaves_out_keep_their_value_on_a_reload():
    load(*ALL_FIXTURES)
    Tenant.objects.filter(slug=PLATFORM_TENANT_SLUG).update(domain="hzm.example.com")
    User.objects.filter(email="admin@hzm.local").update(last_login="2026-01-02T03:04:05Z")
    load(*ALL_FIXTURES)
    assert Tenant.objects.get(slug=PLATFORM_TENANT_SLUG).domain == "hzm.example.com"
    assert User.objects.get(email="admin@hzm.local").last_login.year == 2026


def test_missing_only_adds_the_missing_rows_and_leaves_the_others_as_they_are():
    load(*ALL_FIXTURES)
    Language.objects.filter(code="tr").update(native_name="Turkce")
    Currency.objects.filter(code="TRY").delete()
    audited = last_audit_id()
    call_command("loaddata", *ALL_FIXTURES, missing_only=True, verbosity=0)
    assert Language.objects.get(code="tr").native_name == "Turkce"
    assert Currency.objects.get(code="TRY").symbol == "₺"
    changes = AuditLog.objects.filter(id__gt=audited).values_list("action", "entity_type")
    assert list(changes) == [("INSERT", "cfg.currencies")]


def test_loaddata_reports_progress_and_is_quiet_at_verbosity_0(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL", 0)  # a line per row, not every 2 s
    rows = sum(
        len(json.loads(path.read_text()))
        for path in Path(settings.BASE_DIR).glob("*/fixtures/00[1-5]_*.json")
    )
    out = StringIO()
    call_command("loaddata", *ALL_FIXTURES, verbosity=1, stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("loaddata: ")]
    assert len(lines) == rows + 2  # the start, one per row, the end
    assert lines[-1].startswith(f"loaddata: {rows:,} rows, ")
    assert lines[-1].split(", ")[1].endswith(" s") and "rows/s" in lines[-1]

    out = StringIO()
    call_command("loaddata", *ALL_FIXTURES, missing_only=True, verbosity=1, stdout=out)
    assert out.getvalue().splitlines()[-1].endswith(
        f"({rows:,} already present, left as they are)"
    )

    out = StringIO()
    call_command("loaddata", *ALL_FIXTURES, verbosity=0, stdout=out)
    assert out.getvalue() == ""


def test_languages_have_english_and_native_names_and_direction():
    load("001_default_languages")
    assert {
        language.code: (language.name, language.native_name, language.direction, language.is_active)
        for language in Language.objects.all()
    } == {
        "de": ("German", "Deutsch", "ltr", True),
        "en": ("English", "English", "ltr", True),
        "fr": ("French", "Français", "ltr", True),
        "tr": ("Turkish", "Türkçe", "ltr", True),
    }


def test_currencies_have_symbols_and_decimal_digits():
    load("002_default_currencies")
    assert {
        currency.code: (currency.name, currency.symbol, currency.decimal_digits)
        for currency in Currency.objects.all()
    } == {
        "EUR": ("Euro", "€", 2),
        "TRY": ("Turkish Lira", "₺", 2),
        "USD": ("US Dollar", "$", 2),
    }


def test_the_platform_tenant_and_its_admin_ship_without_a_usable_password():
    load(*FIXTURES)
    platform = Tenant.objects.get(slug=PLATFORM_TENANT_SLUG)
    assert platform.supported_languages == ["en", "tr", "de", "fr"]
    assert platform.supported_currencies == ["USD", "EUR", "TRY"]
    admin_user = User.objects.get(tenant=platform)
    assert admin_user.role == PLATFORM_ADMIN_ROLE
    assert admin_user.is_staff and admin_user.is_superuser
    assert not admin_user.has_usable_password()
    assert not admin_user.check_password("")


@pytest.mark.parametrize("name", FIXTURES)
def test_no_fixture_ships_a_password(name: str):
    rows = json.loads((Path(settings.BASE_DIR) / FIXTURE_FILES[name]).read_text())
    for row in rows:
        password = row["fields"].get("password")
        assert password is None or password.startswith("!"), f"{name} ships a usable password"


def test_tenants_are_named_by_slug_and_users_by_email():
    """The fixture has no primary keys: loading finds the tenant by slug, the user by email."""
    rows = json.loads((Path(settings.BASE_DIR) / FIXTURE_FILES["003_platform_admin"]).read_text())
    assert all("pk" not in row for row in rows)
    load(*FIXTURES)
    platform = Tenant.objects.get(slug=PLATFORM_TENANT_SLUG)
    assert platform.natural_key() == (PLATFORM_TENANT_SLUG,)
    assert Tenant.objects.get_by_natural_key(PLATFORM_TENANT_SLUG) == platform
    admin_user = User.objects.get_by_natural_key("ADMIN@hzm.local")
    assert admin_user.natural_key() == ("admin@hzm.local",)
    Tenant.all_objects.filter(pk=platform.pk).delete()
    # Soft-deleted tenants too: a fixture naming one updates it instead of colliding.
    assert Tenant.objects.get_by_natural_key(PLATFORM_TENANT_SLUG).pk == platform.pk


def test_the_fixtures_load_again_after_their_rows_changed():
    load(*FIXTURES)
    Tenant.objects.filter(slug=PLATFORM_TENANT_SLUG).update(name="Renamed")  # version 2
    load(*FIXTURES)
    load(*FIXTURES)
    assert reference_counts() == {"languages": 4, "currencies": 3, "tenants": 1, "users": 1}
    assert Tenant.objects.get(slug=PLATFORM_TENANT_SLUG).name == "HZM Platform"


def test_a_soft_deleted_platform_tenant_is_updated_not_duplicated():
    load(*FIXTURES)
    Tenant.all_objects.filter(slug=PLATFORM_TENANT_SLUG).delete()
    assert not Tenant.objects.filter(slug=PLATFORM_TENANT_SLUG).exists()
    load("003_platform_admin")
    assert Tenant.all_objects.filter(slug=PLATFORM_TENANT_SLUG).count() == 1
    assert Tenant.objects.get(slug=PLATFORM_TENANT_SLUG).is_deleted is False


def test_reloading_keeps_the_password_set_with_changepassword():
    load(*FIXTURES)
    with mock.patch.object(changepassword.Command, "_get_pass", return_value=PASSWORD):
        call_command("changepassword", "admin@hzm.local", verbosity=0)
    load(*FIXTURES)
    assert User.objects.get(email="admin@hzm.local").check_password(PASSWORD)


def test_the_platform_admin_fixture_needs_the_reference_data_first():
    with pytest.raises(IntegrityError, match="is not present in table"):
        load("003_platform_admin")


# --- createsuperuser and changepassword -----------------------------------------------


def createsuperuser(email: str, password: str | None = PASSWORD) -> None:
    environ = {"DJANGO_SUPERUSER_EMAIL": email}
    if password is not None:
        environ["DJANGO_SUPERUSER_PASSWORD"] = password
    with mock.patch.dict("os.environ", environ):
        call_command("createsuperuser", interactive=False, verbosity=0)


def test_createsuperuser_creates_the_platform_tenant_when_missing(client: Any):
    load("001_default_languages", "002_default_currencies")
    assert not Tenant.all_objects.exists()
    createsuperuser("Root@HZM.test")

    platform = Tenant.objects.get(slug=PLATFORM_TENANT_SLUG)
    root = User.objects.get(email="root@HZM.test")
    assert root.tenant == platform
    assert root.role == PLATFORM_ADMIN_ROLE
    assert root.password.startswith("argon2")
    assert root.check_password(PASSWORD)
    assert client.login(username="root@hzm.test", password=PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_createsuperuser_joins_the_existing_platform_tenant():
    load(*FIXTURES)
    createsuperuser("second@hzm.test")
    assert Tenant.all_objects.count() == 1
    assert User.objects.get(email="second@hzm.test").tenant.slug == PLATFORM_TENANT_SLUG


def test_createsuperuser_refuses_a_taken_email():
    load(*FIXTURES)
    with pytest.raises(CommandError, match="already taken"):
        createsuperuser("admin@hzm.local")


def test_createsuperuser_without_reference_data_says_what_to_load():
    with pytest.raises(CommandError, match="loaddata 001_default_languages 002_default_currencies"):
        createsuperuser("root@hzm.test")
    assert not Tenant.all_objects.exists()
    assert not User.all_objects.exists()


def test_createsuperuser_without_a_password_leaves_it_unusable():
    load("001_default_languages", "002_default_currencies")
    createsuperuser("root@hzm.test", password=None)
    assert not User.objects.get(email="root@hzm.test").has_usable_password()


def test_create_superuser_refuses_another_role():
    with pytest.raises(ValueError, match="platform_admin"):
        User.objects.create_superuser("root@hzm.test", PASSWORD, role="user")


def test_changepassword_sets_the_fixture_admin_s_password(client: Any):
    load(*FIXTURES)
    assert not client.login(username="admin@hzm.local", password=PASSWORD)
    with mock.patch.object(changepassword.Command, "_get_pass", return_value=PASSWORD):
        call_command("changepassword", "admin@hzm.local", verbosity=0)
    admin_user = User.objects.get(email="admin@hzm.local")
    assert admin_user.password.startswith("argon2")
    assert client.login(username="admin@hzm.local", password=PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_changepassword_works_for_any_user():
    user = UserFactory(email="someone@example.com")
    with mock.patch.object(changepassword.Command, "_get_pass", return_value=PASSWORD):
        call_command("changepassword", "someone@example.com", verbosity=0)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
