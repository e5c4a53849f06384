"""hzm.db.round_trips and what a tenant context sends: BEGIN with the switch, owed statements.

Round trips are counted in libpq's trace of the test's own connection (round_trips.traced):
each ReadyForQuery the server sends ends one wait of the client. Tests that need a
transaction of the context's own (not pytest-django's) use transaction=True.
"""

import pytest
from django.db import DatabaseError, connection, transaction

from core.models import Tenant
from hzm.db import round_trips
from hzm.db.context import (
    EMPTY_CONTEXT,
    as_runtime_role,
    entering,
    set_audit_actor,
    switch_query,
    tenant_context,
)
from hzm.db.round_trips import traced
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

BACKEND = "pg_backend_pid(), (extract(epoch FROM now()) * 1000000)::bigint"


def setting(name: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s, true)", [name])
        return cursor.fetchone()[0]


# --- The switch's SQL ----------------------------------------------------------------------


def test_the_switch_sets_each_value_locally_and_reports_the_backend():
    assert switch_query((("role", "hzm_app"), ("statement_timeout", "30s"))) == (
        "SELECT set_config('role', 'hzm_app', true), "
        f"set_config('statement_timeout', '30s', true), {BACKEND}"
    )


def test_the_switch_quotes_what_it_is_given():
    assert switch_query((("application_name", "x'); DROP TABLE t; --"),)) == (
        f"SELECT set_config('application_name', 'x''); DROP TABLE t; --', true), {BACKEND}"
    )


# --- begin_with ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_begin_with_sends_begin_and_the_statement_in_one_round_trip():
    with transaction.atomic():
        with traced(connection) as trace:
            row = round_trips.begin_with(connection, "SELECT 41 + 1, current_setting('role')")
        assert row == ("42", "none")
        assert trace.round_trips == 1, trace.sent
        assert trace.sent[0].startswith('"BEGIN; SELECT 41 + 1')
        status = connection.connection.info.transaction_status
        assert status == round_trips.pq.TransactionStatus.INTRANS


def test_begin_with_declines_a_transaction_that_has_begun():
    setting("app.request_id")  # pytest-django's transaction begins
    assert round_trips.begin_with(connection, "SELECT 1") is None


@pytest.mark.django_db(transaction=True)
def test_begin_with_declines_a_connection_with_an_isolation_level():
    connection.ensure_connection()
    raw = connection.connection
    raw.isolation_level = round_trips.psycopg.IsolationLevel.SERIALIZABLE
    try:
        with transaction.atomic():
            assert round_trips.begin_with(connection, "SELECT 1") is None
    finally:
        raw.isolation_level = None


@pytest.mark.django_db(transaction=True)
def test_a_refused_switch_raises_and_leaves_no_transaction_behind():
    with pytest.raises(DatabaseError, match="no_such_role_hzm"):
        with transaction.atomic():
            round_trips.begin_with(connection, switch_query((("role", "no_such_role_hzm"),)))
    assert connection.connection.info.transaction_status == round_trips.IDLE
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user = session_user")
        assert cursor.fetchone() == (True,)


# --- Owed statements -----------------------------------------------------------------------


def test_an_owed_statement_goes_with_the_next_one_in_one_round_trip():
    setting("app.request_id")  # pytest-django's transaction begins (psycopg's BEGIN)
    round_trips.defer(connection, "SELECT set_config(%s, %s, true)", ["app.request_id", "owed-1"])
    with traced(connection) as trace:
        assert setting("app.request_id") == "owed-1"
    assert trace.round_trips == 1, trace.sent
    assert len(trace.sent) == 2, trace.sent


def test_a_discarded_statement_is_never_sent():
    owed = round_trips.defer(connection, "SELECT set_config(%s, %s, true)", ["app.request_id", "x"])
    assert round_trips.discard(connection, owed) is True
    assert round_trips.discard(connection, owed) is False
    assert setting("app.request_id") in ("", None)


def test_a_statement_of_several_is_sent_after_the_owed_ones_not_with_them():
    # Without parameters psycopg may send several statements in one string, which a
    # pipeline would refuse: the owed statement goes first, on its own.
    setting("app.request_id")  # pytest-django's transaction begins (psycopg's BEGIN)
    round_trips.defer(connection, "SELECT set_config(%s, %s, true)", ["app.request_id", "before"])
    with traced(connection) as trace, connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.request_id'); SELECT 1")
        assert cursor.fetchone() == ("before",)
    assert trace.round_trips == 2, trace.sent


def test_a_server_side_cursor_gets_the_owed_statements_first():
    TenantFactory.create_batch(3)
    round_trips.defer(connection, "SELECT set_config(%s, %s, true)", ["app.request_id", "iter"])
    names = list(Tenant.objects.order_by("id").values_list("name", flat=True).iterator(2))
    assert len(names) >= 3
    assert setting("app.request_id") == "iter"


def test_psycopg_work_sends_the_owed_statements_itself():
    round_trips.defer(connection, "SELECT set_config(%s, %s, true)", ["app.request_id", "raw"])
    round_trips.send_owed(connection)
    assert connection.connection.execute("SELECT current_setting('app.request_id')").fetchone() == (
        "raw",
    )


def test_an_owed_statements_error_is_the_next_statements():
    round_trips.defer(connection, "SELECT 1 / %s", [0])
    with pytest.raises(DatabaseError, match="division by zero"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s", [1])


@pytest.mark.django_db(transaction=True)
def test_owed_statements_die_with_their_transaction():
    with transaction.atomic():
        # Session-wide (false) on purpose: were it sent, the next transaction would see it.
        round_trips.defer(
            connection, "SELECT set_config(%s, %s, false)", ["app.request_id", "late"]
        )
    # Committed without another statement: the next transaction owes nothing.
    with transaction.atomic():
        assert setting("app.request_id") in ("", None)


# --- The statement that enters a context --------------------------------------------------


def test_a_context_without_request_in_a_fresh_transaction_sends_the_token_alone():
    assert entering("v1.tok", (None, None, None), EMPTY_CONTEXT) == (
        "SELECT set_config(%s, %s, true)",
        ["app.context", "v1.tok"],
    )


def test_a_request_is_written_with_the_token_in_plain_set_configs():
    assert entering("v1.tok", ("r-1", "192.0.2.1", "ua/1"), EMPTY_CONTEXT) == (
        "SELECT set_config(%s, %s, true), "
        "set_config('app.request_id', coalesce(%s, ''), true), "
        "set_config('app.ip_address', coalesce(host(%s::inet), ''), true), "
        "set_config('app.user_agent', coalesce(%s, ''), true)",
        ["app.context", "v1.tok", "r-1", "192.0.2.1", "ua/1"],
    )


def test_an_outer_request_is_cleared_by_a_context_without_one():
    # The outer transaction holds a request id: leaving the metadata out would let the
    # tenant context's audit rows carry the outer request's.
    statement, params = entering("v1.tok", (None, None, None), ("", "r-outer", "", ""))
    assert "app.request_id" in statement
    assert params == ["app.context", "v1.tok", None, None, None]


# --- What a tenant context sends -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_context_of_its_own_reads_in_three_round_trips_as_a_bare_transaction_does():
    tenant = TenantFactory()
    with traced(connection) as bare:
        with transaction.atomic():
            assert Tenant.objects.filter(pk=tenant.pk).exists()
    with traced(connection) as trace:
        with tenant_context(tenant.pk):
            assert list(Tenant.objects.values_list("pk", flat=True)) == [tenant.pk]
    # BEGIN with the switch; the signed token with the read; COMMIT.
    assert bare.round_trips == 3, bare.sent
    assert trace.round_trips == 3, trace.sent
    assert trace.sent[0].startswith("\"BEGIN; SELECT set_config('role'")


@pytest.mark.django_db(transaction=True)
def test_a_context_that_sends_nothing_costs_its_begin_and_commit():
    tenant = TenantFactory()
    with traced(connection) as trace:
        with tenant_context(tenant.pk):
            pass
    assert trace.round_trips == 2, trace.sent
    assert not any("app.context" in sent for sent in trace.sent), trace.sent


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_outer_values_go_back_with_the_next_statement():
    tenant = TenantFactory()
    with as_runtime_role():
        with traced(connection) as trace:
            with tenant_context(tenant.pk):
                assert list(Tenant.objects.values_list("pk", flat=True)) == [tenant.pk]
            # The outer transaction goes on without the tenant: nothing of it is visible.
            assert list(Tenant.objects.values_list("pk", flat=True)) == []
    # SAVEPOINT; the token with the read; RELEASE with the outer values; the outer read.
    assert trace.round_trips == 4, trace.sent
    release = next(i for i, sent in enumerate(trace.sent) if "RELEASE SAVEPOINT" in sent)
    # The four context settings put back (their names travel as parameters).
    assert trace.sent[release - 1].count("set_config(") == 4, trace.sent


def test_a_context_raising_owes_nothing():
    tenant = TenantFactory()
    with pytest.raises(ZeroDivisionError), tenant_context(tenant.pk):
        raise ZeroDivisionError
    assert not getattr(connection, "hzm_deferred", [])


@pytest.mark.django_db(transaction=True)
def test_a_job_context_writes_no_request_metadata_and_a_request_context_does():
    tenant = TenantFactory()
    with traced(connection) as trace:
        with tenant_context(tenant.pk):
            assert setting("app.request_id") in (None, "")
    assert not any("app.request_id" in sent for sent in trace.sent), trace.sent
    with tenant_context(tenant.pk, request_id="r-9", ip_address="2001:db8::1", user_agent="ua/9"):
        assert (setting("app.request_id"), setting("app.ip_address")) == ("r-9", "2001:db8::1")
        assert setting("app.user_agent") == "ua/9"


def test_an_invalid_client_address_is_refused_as_the_inet_type_refuses_it():
    tenant = TenantFactory()
    with pytest.raises(DatabaseError, match="inet"):
        with tenant_context(tenant.pk, ip_address="not-an-ip"):
            Tenant.objects.exists()


def test_a_context_inside_an_admins_audited_transaction_clears_the_outer_request():
    tenant = TenantFactory()
    with transaction.atomic():
        set_audit_actor(None, request=None)
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.request_id', 'r-outer', true)")
        with tenant_context(tenant.pk):
            assert setting("app.request_id") == ""
        assert setting("app.request_id") == "r-outer"
