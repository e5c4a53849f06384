"""The admin in en, tr, de and fr: Django's locale machinery, our catalogs in locale/, a switch."""

import gettext
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from core.models import Tenant, User
from tests.factories import TenantFactory
from tests.support import REPO_ROOT

LANGUAGES = ("tr", "de", "fr")
# Our own strings, and what each language makes of them (from locale/<lang>/django.po).
OURS = {
    "tr": ("HZM platform yönetimi", "Platform yapılandırması"),  # noqa: RUF001 (Turkish dotless i)
    "de": ("HZM-Plattformverwaltung", "Plattformkonfiguration"),
    "fr": ("Administration de la plateforme HZM", "Configuration de la plateforme"),
}


def catalog(path: Path) -> dict:
    with path.open("rb") as file:
        return dict(gettext.GNUTranslations(file)._catalog)


@pytest.fixture
def signed_in(client: Any, db: None) -> Any:
    call_command("loaddata", "001_default_languages", "002_default_currencies", verbosity=0)
    client.force_login(User.objects.create_superuser("root@hzm.test"))
    return client


def test_the_settings_offer_the_platform_s_four_languages():
    assert [code for code, _name in settings.LANGUAGES] == ["en", "tr", "de", "fr"]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE
    assert Path(settings.LOCALE_PATHS[0]) == REPO_ROOT / "locale"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_admin_and_django_s_own_strings_follow_the_language_cookie(
    signed_in: Any, language: str
):
    signed_in.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    page = signed_in.get(reverse("admin:index")).content.decode()
    header, index_title = OURS[language]
    assert header in page and index_title in page
    with translation.override(language):
        log_out = translation.gettext("Log out")  # Django's own catalog
    assert log_out != "Log out" and log_out in page
    assert f'<html lang="{language}"' in page


def test_english_without_a_cookie_and_from_accept_language(signed_in: Any):
    assert "HZM platform administration" in signed_in.get(reverse("admin:index")).content.decode()
    page = signed_in.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    assert OURS["de"][0] in page.content.decode()


def test_the_header_s_switch_sets_the_language(signed_in: Any):
    page = signed_in.get(reverse("admin:index")).content.decode()
    switch = page[page.index('id="language-switch"') :]
    assert f'action="{reverse("set_language")}"' in page
    assert reverse("set_language").startswith("/admin/")  # served by the admin's process
    assert re.findall(r'<option value="(\w+)"', switch)[:4] == ["en", "tr", "de", "fr"]

    response = signed_in.post(reverse("set_language"), {"language": "fr", "next": "/admin/"})
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "fr"
    assert OURS["fr"][0] in signed_in.get(reverse("admin:index")).content.decode()


def test_the_sign_in_page_has_the_switch_too(client: Any, db: None):
    page = client.get(reverse("admin:login")).content.decode()
    assert 'id="language-switch"' in page


def test_form_errors_are_in_the_admin_s_language(signed_in: Any):
    tenant = TenantFactory(name="Acme", slug="acme")
    signed_in.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    url = reverse("admin:core_tenant_change", args=[tenant.pk])
    form = signed_in.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and not isinstance(value, dict | list)
    }
    data.update(
        name="Acme",
        slug="acme",
        primary_color="blue",
        supported_languages=["en"],
        supported_currencies=["USD"],
        limits="{}",
        features="{}",
        settings="{}",
    )
    response = signed_in.post(url, data)
    errors = response.context["adminform"].form.errors
    assert errors["primary_color"] == [
        "primary_color: eine Farbe als #RRGGBB erwartet (z. B. #1A73E8), erhalten 'blue'"
    ]
    assert Tenant.objects.get(pk=tenant.pk).primary_color is None


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_of_the_catalog_is_translated(language: str):
    po = (REPO_ROOT / "locale" / language / "LC_MESSAGES" / "django.po").read_text()
    untranslated = re.findall(r'\nmsgid ("(?:[^"\\]|\\.)+")\nmsgstr ""\n\n', po + "\n")
    assert untranslated == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_committed_mo_is_the_po_compiled(language: str, tmp_path: Path):
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "msgfmt is missing: apt-get install gettext (.ci/run installs it)"
    folder = REPO_ROOT / "locale" / language / "LC_MESSAGES"
    fresh = tmp_path / "django.mo"
    subprocess.run(
        [msgfmt, "--check-format", "-o", str(fresh), str(folder / "django.po")], check=True
    )
    assert catalog(folder / "django.mo") == catalog(fresh), (
        f"locale/{language}: run python manage.py compilemessages after editing the .po"
    )
