"""Writes in constant time (issue 15): the round trips of a one-row write through the
service, and the audit trail of generic data's writes (bulk inserts audited once per
statement, updates as their changed columns, no-op updates not at all)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from generic_data import services
from hzm.db.context import tenant_context
from ops.models import AuditLog
from tests.generic_data.conftest import as_tenant
from tests.support import fetchone, run

pytestmark = pytest.mark.django_db

FIELDS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal"},
]


@pytest.fixture
def items(project):
    with as_tenant(project):
        return services.define_table(project.pk, "items", FIELDS)


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """Every statement the connection sends meanwhile (savepoints included), in order."""
    sent: list[str] = []

    def record(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        sent.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(record):
        yield sent


def audit_of(row_id: int) -> list[AuditLog]:
    return list(
        AuditLog.objects.filter(entity_type="app.generic_data", entity_id=str(row_id)).order_by(
            "id"
        )
    )


# --- Round trips ----------------------------------------------------------------------------


def test_a_one_row_insert_through_the_service_takes_four_round_trips(items, project):
    with as_tenant(project):
        services.get_table(project.pk, "items")  # nothing of the context is left to load
        with round_trips() as sent:
            row = services.create_row(project.pk, "items", {"title": "a", "sku": "A-1"})
    # A savepoint (a refusal leaves the caller's transaction usable), the table locked,
    # the INSERT returning the stored row, the savepoint released.
    assert len(sent) <= 4, sent
    assert (row.data, row.version) == ({"title": "a", "sku": "A-1"}, 1)


def test_a_one_row_update_through_the_service_takes_five_round_trips(items, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "items", {"title": "a"})
        with round_trips() as sent:
            updated = services.update_row(project.pk, "items", row.id, {"title": "b"})
    # The same, and the row locked and read before it is changed.
    assert len(sent) <= 5, sent
    assert (updated.data, updated.version) == ({"title": "b"}, 2)


def test_a_refused_insert_leaves_the_callers_transaction_usable(items, project):
    with as_tenant(project):
        services.create_row(project.pk, "items", {"title": "a", "sku": "S"})
        with pytest.raises(services.Conflict):
            services.create_row(project.pk, "items", {"title": "b", "sku": "S"})
        assert services.query_rows(project.pk, "items", count=True).count == 1


def test_bulk_ids_come_back_in_the_order_of_the_rows(items, project):
    with as_tenant(project):
        ids = services.create_rows(project.pk, "items", [{"title": str(n)} for n in range(50)])
        page = services.query_rows(project.pk, "items", sort="id", limit=50)
    assert [row.id for row in page.rows] == ids
    assert [row.data["title"] for row in page.rows] == [str(n) for n in range(50)]


# --- The audit trail of generic data -----------------------------------------------------------


def test_a_bulk_insert_is_audited_once_per_row_with_the_contexts_tenant_and_actor(items, project):
    with tenant_context(
        project.tenant_id, project.user_id, request_id="req-15", ip_address="203.0.113.9"
    ):
        ids = services.create_rows(
            project.pk, "items", [{"title": f"t{n}", "sku": f"S{n}"} for n in range(3)]
        )
    audits = list(
        AuditLog.objects.filter(entity_type="app.generic_data", entity_id__in=map(str, ids))
    )
    assert sorted(a.entity_id for a in audits) == sorted(map(str, ids))
    for audit in audits:
        assert (audit.action, audit.tenant_id, audit.user_id) == (
            "INSERT",
            project.tenant_id,
            project.user_id,
        )
        assert (audit.request_id, audit.ip_address) == ("req-15", "203.0.113.9")
        assert audit.old_values is None
        assert audit.new_values["id"] == int(audit.entity_id)
        assert audit.new_values["data"]["title"] == f"t{ids.index(int(audit.entity_id))}"
    # In the order the rows were inserted.
    assert [a.entity_id for a in sorted(audits, key=lambda a: a.id)] == list(map(str, ids))


def test_an_update_is_audited_as_its_changed_columns_and_the_rows_key(items, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "items", {"title": "a", "sku": "S"})
        services.update_row(project.pk, "items", row.id, {"title": "b"})
    insert, update = audit_of(row.id)
    assert insert.action == "INSERT"
    assert (update.action, update.tenant_id, update.user_id) == (
        "UPDATE",
        project.tenant_id,
        project.user_id,
    )
    # data and the search text generated from it; the version the touch trigger bumped
    # (updated_at is now() of the test's transaction on both sides: unchanged).
    assert (
        set(update.old_values)
        == set(update.new_values)
        == {
            "id",
            "data",
            "search_text",
            "version",
        }
    )
    assert update.old_values["id"] == update.new_values["id"] == row.id
    assert (update.old_values["data"], update.new_values["data"]) == (
        {"title": "a", "sku": "S"},
        {"title": "b", "sku": "S"},
    )
    assert (update.old_values["version"], update.new_values["version"]) == (1, 2)


def test_an_update_that_changes_nothing_writes_no_audit_row(items, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "items", {"title": "a", "sku": "S"})
        # The same values by the same user: the touch trigger still bumps the version.
        same = services.update_row(project.pk, "items", row.id, {"title": "a"})
    assert same.version == 2
    assert [a.action for a in audit_of(row.id)] == ["INSERT"]
    # updated_at and version alone are bookkeeping, not a change.
    run(
        "UPDATE app.generic_data SET updated_at = now() + interval '1 hour', "
        "version = version + 5 WHERE id = %s",
        [row.id],
    )
    assert [a.action for a in audit_of(row.id)] == ["INSERT"]


def test_the_statement_audit_redacts_secrets_and_names_rows_by_their_key_columns():
    # As the row trigger does; generic data has neither a secret column nor another key,
    # so the function is tried on tables of its own, inside the test's transaction (the
    # superuser attaches it; no other role may execute it).
    run("CREATE TABLE public.audit_probe (id int PRIMARY KEY, api_key text, note text)")
    run("CREATE TABLE public.audit_keyed (code text, day int, note text, PRIMARY KEY (code, day))")
    for table, arguments in (("audit_probe", ""), ("audit_keyed", "'code', 'day'")):
        run(
            f"CREATE TRIGGER trg_{table}_audit AFTER INSERT ON public.{table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION ops.log_audit_inserts({arguments})"
        )
    run("INSERT INTO public.audit_probe VALUES (1, 'k1', 'a'), (2, NULL, 'b')")
    run("INSERT INTO public.audit_keyed VALUES ('x', 1, 'c')")

    def trail(table: str) -> dict[str, Any]:
        return {
            a.entity_id: (a.action, a.new_values)
            for a in AuditLog.objects.filter(entity_type=f"public.{table}")
        }

    assert trail("audit_probe") == {
        "1": ("INSERT", {"id": 1, "api_key": "[redacted]", "note": "a"}),
        "2": ("INSERT", {"id": 2, "api_key": None, "note": "b"}),
    }
    assert trail("audit_keyed") == {"x,1": ("INSERT", {"code": "x", "day": 1, "note": "c"})}
    # Without a context, and the tables have no tenant: no tenant, no actor.
    assert fetchone(
        "SELECT count(*), count(tenant_id), count(user_id) FROM ops.audit_logs "
        "WHERE entity_type LIKE 'public.audit_%%'"
    ) == (3, 0, 0)
