"""Every unit of work run as the runtime role is bounded: statement, lock and idle timeouts.

They are transaction-local, like the role and the context, so they end with the
transaction (role settings would not apply after SET ROLE anyway).
"""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, transaction
from django.test import override_settings

from hzm.db.context import as_runtime_role, tenant_context
from hzm.durations import duration
from tests.factories import TenantFactory

TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


def current() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in TIMEOUTS))
        return dict(zip(TIMEOUTS, cursor.fetchone(), strict=True))


@pytest.mark.django_db
@override_settings(
    HZM_STATEMENT_TIMEOUT="7s", HZM_LOCK_TIMEOUT="700ms", HZM_IDLE_IN_TRANSACTION_TIMEOUT="70s"
)
def test_a_tenant_context_applies_the_timeouts_of_the_settings_and_ends_them():
    tenant = TenantFactory()
    before = current()
    with tenant_context(tenant.pk):
        assert current() == {
            "statement_timeout": "7s",
            "lock_timeout": "700ms",
            "idle_in_transaction_session_timeout": "70s",
        }
    assert current() == before


@pytest.mark.django_db
def test_a_long_job_overrides_a_timeout_for_its_context_only():
    tenant = TenantFactory()
    with as_runtime_role():
        default = current()["statement_timeout"]
        with tenant_context(tenant.pk, statement_timeout="10min"):
            assert current()["statement_timeout"] == "10min"
        assert current()["statement_timeout"] == default


@pytest.mark.django_db
@override_settings(HZM_STATEMENT_TIMEOUT="100ms")
def test_a_statement_over_the_timeout_is_cancelled():
    tenant = TenantFactory()
    with pytest.raises(OperationalError, match="statement timeout"):
        with tenant_context(tenant.pk), connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")


@pytest.mark.django_db(transaction=True)
def test_the_timeouts_end_with_the_transaction():
    tenant = TenantFactory()
    with transaction.atomic():
        before = current()
    with tenant_context(tenant.pk, lock_timeout="1234ms"):
        pass
    with transaction.atomic():
        assert current() == before


@pytest.mark.parametrize("value", ["30s", "500ms", "0", 250, "10min", "1h"])
def test_durations_pass_as_postgresql_writes_them(value):
    assert duration(value, "x") == str(value)


@pytest.mark.parametrize("value", ["30 s", "-1", "1.5s", "s", "", "30sec", True, None, "1; DROP"])
def test_a_bad_duration_is_a_configuration_error_naming_the_setting(value):
    with pytest.raises(ImproperlyConfigured, match="HZM_LOCK_TIMEOUT"):
        duration(value, "HZM_LOCK_TIMEOUT")
