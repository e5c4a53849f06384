"""A real browser (headless Chromium) signs in to the admin, edits a translation and a
tenant, and finds both changes in the audit trail under the admin's name.

Needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver);
without them the test fails, saying so: it is never skipped.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from cfg.models import Translation
from core.models import Tenant, User
from ops.models import AuditLog
from tests.factories import TenantFactory, TranslationFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get update && apt-get install -y chromium chromium-driver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
ADMIN_EMAIL = "admin@hzm.local"  # the platform admin of fixture 003_platform_admin
PASSWORD = "Corr3ct-Horse-Battery-Staple"
WAIT_SECONDS = 30


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"the admin browser test needs Debian's Chromium and ChromeDriver; missing: "
            f"{', '.join(missing)}. Install them with: {INSTALL}",
            pytrace=False,
        )
    profile = tempfile.mkdtemp(prefix="hzm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The system driver, given by path: Selenium Manager (which would download one) stays out.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_text(driver: webdriver.Chrome, text: str) -> None:
    WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), text),
        message=f"page {driver.current_url} never showed {text!r}",
    )


def replace_text(driver: webdriver.Chrome, name: str, value: str) -> None:
    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def result_rows(driver: webdriver.Chrome) -> list[str]:
    return [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")]


@pytest.mark.django_db(transaction=True)
def test_admin_edits_in_a_browser_show_in_the_audit_trail_with_the_admin_s_name(
    live_server: Any, browser: webdriver.Chrome
):
    call_command(
        "loaddata",
        "001_default_languages",
        "002_default_currencies",
        "003_platform_admin",
        verbosity=0,
    )
    admin_user = User.objects.get(email=ADMIN_EMAIL)
    admin_user.set_password(PASSWORD)  # what `manage.py changepassword` does
    admin_user.save()
    tenant = TenantFactory(name="Acme", slug="acme")
    translation = TranslationFactory(translation_key="nav.home", translation_value="Home")
    base = live_server.url

    browser.get(f"{base}/admin/login/?next=/admin/")
    replace_text(browser, "username", ADMIN_EMAIL)
    replace_text(browser, "password", PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for_text(browser, "Platform configuration")

    browser.get(f"{base}/admin/cfg/translation/{translation.pk}/change/")
    replace_text(browser, "translation_value", "Start page")
    browser.find_element(By.NAME, "_save").click()
    wait_for_text(browser, "was changed successfully")

    browser.get(f"{base}/admin/core/tenant/{tenant.pk}/change/")
    replace_text(browser, "name", "Acme Corporation")
    browser.find_element(By.NAME, "_save").click()
    wait_for_text(browser, "was changed successfully")

    assert Translation.objects.get(pk=translation.pk).translation_value == "Start page"
    assert Tenant.objects.get(pk=tenant.pk).name == "Acme Corporation"

    browser.get(f"{base}/admin/ops/auditlog/?action=UPDATE")
    wait_for_text(browser, "audit log")
    rows = result_rows(browser)
    actor = f"{ADMIN_EMAIL} (user {admin_user.pk})"
    assert any(
        "translations" in row and actor in row and "translation_value" in row for row in rows
    ), rows
    assert any("tenants" in row and actor in row and "name" in row for row in rows), rows

    for entity_type, entity_id, before, after in (
        ("cfg.translations", translation.pk, "Home", "Start page"),
        ("core.tenants", tenant.pk, "Acme", "Acme Corporation"),
    ):
        change = AuditLog.objects.filter(
            entity_type__endswith=entity_type.split(".")[1],
            entity_id=str(entity_id),
            action="UPDATE",
        ).latest("id")
        assert change.user_id == admin_user.pk
        browser.get(f"{base}/admin/ops/auditlog/{change.pk}/change/")
        wait_for_text(browser, actor)
        table = browser.find_element(By.CSS_SELECTOR, "table.audit-changes").text
        assert before in table and after in table, table


NARROW = (1280, 900)  # a common laptop screen: the lists must fit it without scrolling sideways


def columns_past_the_right_edge(driver: webdriver.Chrome) -> list[str]:
    """The list's column headers that end beyond what is visible: past the window's right
    edge, or past the right edge of the list's box (which would scroll sideways)."""
    return driver.execute_script(
        "const box = document.querySelector('#result_list').closest('.results');"
        "const edge = Math.min(document.documentElement.clientWidth,"
        " box.getBoundingClientRect().right);"
        "return [...document.querySelectorAll('#result_list thead th')]"
        ".filter(th => th.getBoundingClientRect().right > edge + 1)"
        ".map(th => th.innerText.trim() || th.className);"
    )


@pytest.mark.django_db(transaction=True)
def test_the_audit_and_tenant_lists_fit_1280_pixels(
    live_server: Any, browser: webdriver.Chrome, tmp_path: Path
):
    call_command(
        "loaddata", "001_default_languages", "002_default_currencies", "003_platform_admin",
        verbosity=0,
    )
    admin_user = User.objects.get(email=ADMIN_EMAIL)
    admin_user.set_password(PASSWORD)
    admin_user.save()
    for number in range(3):
        tenant = TenantFactory(
            name=f"Acme Widgets International {number}", slug=f"acme-widgets-{number}"
        )
        Tenant.objects.filter(pk=tenant.pk).update(name=f"Acme Widgets Worldwide {number}")
    base = live_server.url
    browser.set_window_size(*NARROW)
    browser.get(f"{base}/admin/login/?next=/admin/")
    replace_text(browser, "username", ADMIN_EMAIL)
    replace_text(browser, "password", PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for_text(browser, "Platform configuration")
    assert browser.execute_script("return window.innerWidth") == NARROW[0]

    for name, path, needed in (
        ("audit", "/admin/ops/auditlog/", ("ACTOR", "CHANGED")),
        ("tenants", "/admin/core/tenant/", ("NAME", "LANGUAGE", "CREATED")),
    ):
        browser.get(base + path)
        wait_for_text(browser, "Acme" if name == "tenants" else "core.tenants")
        browser.save_screenshot(str(tmp_path / f"{name}-1280.png"))
        headers = [th.text.strip().upper() for th in browser.find_elements(
            By.CSS_SELECTOR, "#result_list thead th"
        )]
        assert all(column in headers for column in needed), headers
        assert columns_past_the_right_edge(browser) == [], (name, tmp_path)

    # The header's language switch, as a person uses it: choose Türkçe, the page reloads.
    Select(browser.find_element(By.ID, "language-select")).select_by_value("tr")
    wait_for_text(browser, "HZM platform yönetimi")
    browser.save_screenshot(str(tmp_path / "tenants-tr-1280.png"))
    assert browser.current_url.endswith("/admin/core/tenant/")
    assert columns_past_the_right_edge(browser) == [], ("tenants in Turkish", tmp_path)
