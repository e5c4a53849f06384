"""Behaviour of the seed's triggers, context functions, defaults and constraints.

Everything here runs against the migrated test database, mostly through raw SQL,
because another client must see the same behaviour as the ORM. The tests run as a
superuser, so row level security does not hide rows and `session_replication_role`
can switch triggers off where a test needs a row in a given state.
"""

import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import authenticate
from django.db import IntegrityError, ProgrammingError, connection, transaction
from factory.django import DjangoModelFactory

from core.models import ApiKey, Project, TableMetadata, Tenant, UserTwoFactor
from generic_data.models import GenericData
from hzm.db.columns import Versioned, purge
from hzm.db.context import sign_context
from hzm.db.sql import quote_identifier, table_ref
from ops.models import AuditLog
from tests.factories import (
    ApiKeyFactory,
    CurrencyFactory,
    ExchangeRateFactory,
    FileFactory,
    GenericDataFactory,
    LanguageFactory,
    ProjectFactory,
    TableMetadataFactory,
    TenantFactory,
    TranslationFactory,
    UserFactory,
    UserSessionFactory,
    UserTwoFactorFactory,
)
from tests.parity.seed_sql import seed_sql
from tests.support import fetchall, fetchone, run

pytestmark = pytest.mark.django_db

SCHEMAS = ("app", "cfg", "core", "ops")
# The tables the seed (001 + 004) creates, from its SQL. The catalog tests below hold
# these to the seed exactly; tables added later (organizations, RBAC, monitoring, flags,
# ...) are tested by the tests of the app that adds them.
SEED_TABLES = frozenset(re.findall(r"^CREATE TABLE (\w+\.\w+) \(", seed_sql(), re.MULTILINE))
# Not the seed's: generic_data 0004's side table of app.generic_data's unique field values.
GENERIC_DATA_UNIQUE = "app.generic_data_unique"


# --- Helpers ----------------------------------------------------------------------------


def db_now() -> datetime.datetime:
    """now() of the current transaction: the value the seed's defaults and triggers write."""
    return fetchone("SELECT now()")[0]


def set_context(tenant_id: int | None, user_id: int | None) -> None:
    """A signed context for the test's transaction, as tenant_context() makes it."""
    with connection.cursor() as cursor:
        sign_context(cursor, tenant_id, user_id)


def ref(name: str) -> str:
    """Quote a schema-qualified table name ('core.users') with the project's quoting."""
    return table_ref(*name.split("."))


def disable_trigger(table: str, trigger: str) -> None:
    """Switch one trigger off until the test's transaction rolls back (needs the owner)."""
    run(f"ALTER TABLE {ref(table)} DISABLE TRIGGER {quote_identifier(trigger)}")


def integrity_cause(error: pytest.ExceptionInfo[IntegrityError]) -> psycopg.Error:
    """The psycopg error behind Django's IntegrityError, which carries the diagnostics."""
    cause = error.value.__cause__
    assert isinstance(cause, psycopg.Error), f"expected a psycopg error, got {cause!r}"
    return cause


def tenant_of(obj: Any) -> int:
    return obj.pk if isinstance(obj, Tenant) else obj.tenant_id


@dataclass(frozen=True)
class Table:
    """A table with triggers, the factory that makes a row of it, and a column to change."""

    name: str  # schema-qualified, as the seed names it
    factory: type[DjangoModelFactory]
    column: str  # also the model attribute
    new_value: Any
    stem: str | None = None  # the seed's shorter name in trigger names (sessions, 2fa)

    def __str__(self) -> str:
        return self.name

    @property
    def ref(self) -> str:
        return ref(self.name)

    @property
    def short_name(self) -> str:
        return self.name.split(".")[1]

    def trigger(self, kind: str) -> str:
        return f"trg_{self.stem or self.short_name}_{kind}"

    def select(self, pk: Any, *columns: str) -> tuple[Any, ...]:
        names = ", ".join(quote_identifier(column) for column in columns)
        return fetchone(f"SELECT {names} FROM {self.ref} WHERE id = %s", [pk])

    def update(self, pk: Any) -> int:
        column = quote_identifier(self.column)
        return run(f"UPDATE {self.ref} SET {column} = %s WHERE id = %s", [self.new_value, pk])

    def delete(self, pk: Any) -> int:
        return run(f"DELETE FROM {self.ref} WHERE id = %s", [pk])


TENANTS = Table("core.tenants", TenantFactory, "name", "Renamed tenant")
USERS = Table("core.users", UserFactory, "name", "Renamed user")
SESSIONS = Table("core.user_sessions", UserSessionFactory, "device_name", "Laptop", "sessions")
TWO_FACTOR = Table("core.user_2fa", UserTwoFactorFactory, "method", "sms", "2fa")
PROJECTS = Table("core.projects", ProjectFactory, "name", "Renamed project")
TABLE_METADATA = Table("core.table_metadata", TableMetadataFactory, "table_name", "renamed")
API_KEYS = Table("core.api_keys", ApiKeyFactory, "name", "Renamed key")
FILES = Table("core.files", FileFactory, "filename", "renamed.txt")
GENERIC_DATA = Table("app.generic_data", GenericDataFactory, "updated_by", 77)
TRANSLATIONS = Table("cfg.translations", TranslationFactory, "translation_value", "Hallo")

# The triggers: touch, soft delete and audit, and the tables each is on.
TOUCHED = (
    TENANTS, USERS, SESSIONS, TWO_FACTOR, PROJECTS, TABLE_METADATA, API_KEYS, FILES, GENERIC_DATA,
)  # fmt: skip
SOFT_DELETED = (TENANTS, USERS, PROJECTS, TABLE_METADATA, GENERIC_DATA)
# cfg's tables are audited too, by the project's cfg/migrations/0003, not by the seed;
# those keyed by other columns than id are below (KEYED_AUDITED).
AUDITED = (TENANTS, USERS, PROJECTS, TABLE_METADATA, API_KEYS, GENERIC_DATA, TRANSLATIONS)
KEYED_AUDITED = ("cfg.languages", "cfg.currencies", "cfg.exchange_rates")

BACK_DATED = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
BACK_DATED_VERSION = 41


def back_date(table: Table, pk: Any) -> None:
    """Give a row an old updated_at and version without firing its triggers.

    The touch trigger overrides updated_at on every UPDATE, so the row is written in
    replica mode, where ordinary triggers do not fire (superuser only).
    """
    run("SET LOCAL session_replication_role = replica")
    changed = run(
        f"UPDATE {table.ref} SET version = %s, updated_at = %s WHERE id = %s",
        [BACK_DATED_VERSION, BACK_DATED, pk],
    )
    run("SET LOCAL session_replication_role = origin")
    assert changed == 1


def audit_rows(table: Table, pk: Any) -> list[AuditLog]:
    """The audit trail of one row: entity_type is schema.table, entity_id the id as text."""
    return list(AuditLog.objects.filter(entity_type=table.name, entity_id=str(pk)).order_by("id"))


# --- The triggers in the catalog ----------------------------------------------------------

TRIGGERS_SQL = """
SELECT t.tgname, n.nspname || '.' || c.relname, fn.nspname || '.' || p.proname
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace fn ON fn.oid = p.pronamespace
WHERE NOT t.tgisinternal AND n.nspname || '.' || c.relname = ANY(%s)
"""

# Not the seed's: generic_data 0004 keeps app.generic_data_unique in step with the rows of
# app.generic_data, once per statement (tests/generic_data/test_operations.py).
UNIQUE_VALUE_TRIGGERS = {
    ("trg_generic_data_unique_insert", "app.generic_data", "app.sync_unique_values"),
    ("trg_generic_data_unique_update", "app.generic_data", "app.sync_unique_values"),
    # generic_data 0005: the live rows per table, for the record limit.
    ("trg_generic_data_count_insert", "app.generic_data", "app.count_records"),
    ("trg_generic_data_count_update", "app.generic_data", "app.count_records"),
    ("trg_generic_data_count_delete", "app.generic_data", "app.count_records"),
    # generic_data 0008: its INSERTs are audited once per statement.
    ("trg_generic_data_audit_insert", "app.generic_data", "ops.log_audit_inserts"),
}


def test_the_seed_tables_have_exactly_the_seed_triggers_and_generic_datas_unique_triggers():
    expected = (
        {(t.trigger("touch"), t.name, "app.touch_row") for t in TOUCHED}
        | {(t.trigger("softdel"), t.name, "app.soft_delete") for t in SOFT_DELETED}
        | {(t.trigger("audit"), t.name, "ops.log_audit") for t in AUDITED}
        | {(f"trg_{name.split('.')[1]}_audit", name, "ops.log_audit") for name in KEYED_AUDITED}
        | UNIQUE_VALUE_TRIGGERS
    )
    tables = [*SEED_TABLES, GENERIC_DATA_UNIQUE]  # the side table has none
    assert set(fetchall(TRIGGERS_SQL, [tables])) == expected


# --- Touch: UPDATE bumps version and stamps updated_at ---------------------------------------


@pytest.mark.parametrize("table", TOUCHED, ids=str)
def test_raw_update_bumps_version_and_sets_updated_at_to_now(table: Table):
    obj = table.factory()
    back_date(table, obj.pk)

    assert table.update(obj.pk) == 1

    assert table.select(obj.pk, "version", "updated_at") == (BACK_DATED_VERSION + 1, db_now())


@pytest.mark.parametrize("table", TOUCHED, ids=str)
def test_orm_save_bumps_version_and_sets_updated_at_to_now(table: Table):
    obj = table.factory()
    back_date(table, obj.pk)
    obj.refresh_from_db()
    setattr(obj, table.column, table.new_value)

    # save() writes the instance's version (41) and updated_at (2000); the trigger wins.
    obj.save()

    assert table.select(obj.pk, "version", "updated_at") == (BACK_DATED_VERSION + 1, db_now())
    if isinstance(obj, Versioned):
        # Versioned.save() takes the trigger's version + 1 and re-reads updated_at.
        assert (obj.version, obj.updated_at) == (BACK_DATED_VERSION + 1, db_now())
    else:
        # user_sessions and api_keys declare the columns without Versioned: Django does
        # not read the row back after an UPDATE, so the instance is stale.
        assert (obj.version, obj.updated_at) == (BACK_DATED_VERSION, BACK_DATED)


def test_created_row_starts_at_version_one():
    tenant = TenantFactory()

    assert TENANTS.select(tenant.pk, "version", "created_at", "updated_at") == (
        1,
        db_now(),
        db_now(),
    )


# --- Soft delete: DELETE becomes an UPDATE of is_deleted/deleted_at/deleted_by -----------------


@pytest.mark.parametrize("table", SOFT_DELETED, ids=str)
def test_raw_delete_keeps_the_row_and_marks_it_deleted_by_the_context_user(table: Table):
    obj = table.factory()
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    # The BEFORE DELETE trigger returns NULL, so the DELETE itself reports no row.
    assert table.delete(obj.pk) == 0

    assert table.select(obj.pk, "is_deleted", "deleted_at", "deleted_by", "version") == (
        True,
        db_now(),
        actor.pk,
        2,  # the trigger's own UPDATE goes through the touch trigger
    )


@pytest.mark.parametrize("table", SOFT_DELETED, ids=str)
def test_orm_delete_keeps_the_row_and_reports_it_deleted(table: Table):
    obj = table.factory()
    pk = obj.pk
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    deleted = obj.delete()

    # SoftDeletable.delete() counts the row it marked (the DELETE itself reports 0)
    # and reads the trigger's marks back into the instance, which keeps its pk.
    assert deleted == (1, {obj._meta.label: 1})
    assert (obj.pk, obj.is_deleted, obj.deleted_at, obj.deleted_by) == (
        pk,
        True,
        db_now(),
        actor.pk,
    )
    assert table.select(pk, "is_deleted", "deleted_by") == (True, actor.pk)
    assert type(obj).all_objects.filter(pk=pk).exists()


@pytest.mark.parametrize(
    "table",
    SOFT_DELETED,
    ids=str,
)
def test_default_manager_hides_soft_deleted_rows(table: Table):
    obj = table.factory()
    kept = table.factory()

    table.delete(obj.pk)

    assert list(type(obj).objects.filter(pk__in=[obj.pk, kept.pk])) == [kept]


def test_a_soft_deleted_user_cannot_sign_in():
    user = UserFactory(email="gone@example.com", password="correct horse battery")
    USERS.delete(user.pk)

    assert authenticate(email="gone@example.com", password="correct horse battery") is None


def test_soft_delete_without_context_leaves_deleted_by_empty():
    project = ProjectFactory()

    PROJECTS.delete(project.pk)

    assert PROJECTS.select(project.pk, "is_deleted", "deleted_at", "deleted_by") == (
        True,
        db_now(),
        None,
    )


def test_orm_delete_of_a_user_keeps_the_admin_log_entries_that_point_at_it():
    user = UserFactory()
    entry = LogEntry.objects.create(
        user=user, action_flag=ADDITION, object_repr="something", change_message="[]"
    )

    user.delete()

    # Django's collector would delete the admin log entries (django.contrib.admin's
    # CASCADE) although the user row stays; SoftDeletable.delete() skips it.
    assert USERS.select(user.pk, "is_deleted") == (True,)
    assert LogEntry.objects.filter(pk=entry.pk).exists()


# --- Audit: INSERT/UPDATE/DELETE write ops.audit_logs ------------------------------------------


@pytest.mark.parametrize("table", AUDITED, ids=str)
def test_insert_is_audited_with_the_new_row_and_the_context(table: Table):
    # The actor belongs to another tenant than the row: the log records the context.
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    obj = table.factory()

    [log] = audit_rows(table, obj.pk)
    assert (log.action, log.tenant_id, log.user_id) == ("INSERT", actor.tenant_id, actor.pk)
    assert tenant_of(obj) != actor.tenant_id
    assert log.old_values is None
    assert log.new_values["id"] == obj.pk
    assert log.new_values[table.column] == getattr(obj, table.column)
    assert log.created_at == db_now()


@pytest.mark.parametrize(
    "make_row, table, entity_id",
    [
        (lambda: LanguageFactory(code="tr"), "cfg.languages", "tr"),
        (lambda: CurrencyFactory(code="TRY"), "cfg.currencies", "TRY"),
        (
            lambda: ExchangeRateFactory(rate_date=datetime.date(2025, 1, 31)),
            "cfg.exchange_rates",
            "USD,EUR,2025-01-31",
        ),
    ],
    ids=["cfg.languages", "cfg.currencies", "cfg.exchange_rates"],
)
def test_a_row_without_an_id_is_audited_under_its_key(make_row, table, entity_id):
    make_row()

    [log] = AuditLog.objects.filter(entity_type=table, entity_id=entity_id)
    assert log.action == "INSERT"


@pytest.mark.parametrize("table", AUDITED, ids=str)
def test_update_is_audited_with_old_and_new_values(table: Table):
    obj = table.factory()
    old_value = getattr(obj, table.column)
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    table.update(obj.pk)

    insert, update = audit_rows(table, obj.pk)
    assert insert.action == "INSERT"
    assert (update.action, update.tenant_id, update.user_id) == (
        "UPDATE",
        actor.tenant_id,
        actor.pk,
    )
    assert update.old_values[table.column] == old_value
    assert update.new_values[table.column] == table.new_value
    assert old_value != table.new_value
    # Only the columns that changed, and the row's key (ops 0006); updated_at is now() of
    # the test's transaction before and after.
    changed = {"id", table.column} | ({"version"} if table in TOUCHED else set())
    assert set(update.old_values) == set(update.new_values) == changed
    assert update.old_values["id"] == update.new_values["id"] == obj.pk
    if table in TOUCHED:
        # AFTER UPDATE sees the row the touch trigger wrote.
        assert (update.old_values["version"], update.new_values["version"]) == (1, 2)


@pytest.mark.parametrize("table", AUDITED, ids=str)
def test_an_update_that_changes_no_value_is_not_audited(table: Table):
    obj = table.factory()
    column = quote_identifier(table.column)

    # The touch trigger still bumps version and updated_at: bookkeeping, not a change.
    assert run(f"UPDATE {table.ref} SET {column} = {column} WHERE id = %s", [obj.pk]) == 1

    assert [log.action for log in audit_rows(table, obj.pk)] == ["INSERT"]
    if table in TOUCHED:
        assert table.select(obj.pk, "version") == (2,)


def test_an_update_of_a_row_keyed_by_other_columns_records_its_key_columns():
    ExchangeRateFactory(rate_date=datetime.date(2025, 1, 31), rate="1.5")

    run(
        "UPDATE cfg.exchange_rates SET rate = 2.5 WHERE from_currency = 'USD' "
        "AND to_currency = 'EUR' AND rate_date = '2025-01-31'"
    )

    update = AuditLog.objects.get(
        entity_type="cfg.exchange_rates", entity_id="USD,EUR,2025-01-31", action="UPDATE"
    )
    key = {"from_currency": "USD", "to_currency": "EUR", "rate_date": "2025-01-31"}
    assert update.old_values == {**key, "rate": 1.5}
    assert update.new_values == {**key, "rate": 2.5}


def test_delete_of_an_api_key_is_audited_with_the_old_row():
    # api_keys has no soft delete trigger, so DELETE really deletes and is audited as such.
    key = ApiKeyFactory()
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    assert API_KEYS.delete(key.pk) == 1

    insert, delete = audit_rows(API_KEYS, key.pk)
    assert insert.action == "INSERT"
    assert (delete.action, delete.tenant_id, delete.user_id) == (
        "DELETE",
        actor.tenant_id,
        actor.pk,
    )
    assert delete.old_values["name"] == key.name
    assert delete.new_values is None


@pytest.mark.parametrize("table", SOFT_DELETED, ids=str)
def test_soft_delete_is_audited_as_an_update_and_never_as_a_delete(table: Table):
    obj = table.factory()
    actor = UserFactory()
    set_context(actor.tenant_id, actor.pk)

    table.delete(obj.pk)

    # The BEFORE DELETE trigger cancels the DELETE (returns NULL), so the AFTER DELETE
    # audit trigger never fires; the UPDATE the soft delete runs instead is audited.
    actions = [log.action for log in audit_rows(table, obj.pk)]
    assert actions == ["INSERT", "UPDATE"]
    update = audit_rows(table, obj.pk)[-1]
    assert (update.tenant_id, update.user_id) == (actor.tenant_id, actor.pk)
    assert update.old_values["is_deleted"] is False
    assert update.new_values["is_deleted"] is True
    assert update.new_values["deleted_by"] == actor.pk


@pytest.mark.parametrize("table", SOFT_DELETED, ids=str)
def test_hard_delete_is_audited_when_the_soft_delete_trigger_is_off(table: Table):
    obj = table.factory()
    disable_trigger(table.name, table.trigger("softdel"))

    assert table.delete(obj.pk) == 1

    delete = audit_rows(table, obj.pk)[-1]
    assert delete.action == "DELETE"
    assert delete.old_values["id"] == obj.pk
    assert delete.new_values is None


@pytest.mark.parametrize("table", AUDITED, ids=str)
def test_audit_without_context_records_the_rows_tenant_and_no_user(table: Table):
    obj = table.factory()

    [log] = audit_rows(table, obj.pk)

    # Without a tenant context the row's own tenant is logged; for core.tenants the row
    # is the tenant itself.
    expected_tenant = obj.pk if table is TENANTS else obj.tenant_id
    assert (log.action, log.tenant_id, log.user_id) == ("INSERT", expected_tenant, None)


# --- Context functions ----------------------------------------------------------------------

CURRENT_CONTEXT = "SELECT app.current_tenant(), app.current_user_id()"


def test_context_is_null_until_set():
    assert fetchone(CURRENT_CONTEXT) == (None, None)


@pytest.mark.parametrize(
    "tenant_id, user_id", [(12, 34), (None, 34), (12, None), (None, None)], ids=str
)
def test_a_signed_context_is_read_back_by_the_current_functions(tenant_id, user_id):
    set_context(98, 99)  # overwritten, including by NULLs

    set_context(tenant_id, user_id)

    assert fetchone(CURRENT_CONTEXT) == (tenant_id, user_id)


@pytest.fixture
def raw_connection() -> Iterator[psycopg.Connection]:
    """A connection of its own to the test database, in autocommit mode."""
    params = connection.get_connection_params()
    for django_only in ("context", "cursor_factory"):  # Django's adapters and cursor class
        params.pop(django_only, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def test_context_ends_with_its_transaction(raw_connection: psycopg.Connection):
    with raw_connection.transaction():
        sign_context(raw_connection.cursor(), 12, 34)
        assert raw_connection.execute(CURRENT_CONTEXT).fetchone() == (12, 34)

    assert raw_connection.execute(CURRENT_CONTEXT).fetchone() == (None, None)

    # In autocommit each statement is its own transaction: the context dies with it.
    sign_context(raw_connection.cursor(), 12, 34)
    assert raw_connection.execute(CURRENT_CONTEXT).fetchone() == (None, None)


# --- app.jsonb_to_text and generic_data.search_text ----------------------------------------


@pytest.mark.parametrize(
    "document, expected",
    [
        # Strings, numbers and booleans at any depth; nulls and keys never.
        (
            {"title": "Ada", "tags": ["math", {"deep": "engine"}], "n": 1.5, "ok": True,
             "no": False, "gone": None},
            # jsonb keeps object keys shortest first, then bytewise, not as written:
            # n, no, ok, gone, tags, title. "Document order" is that order.
            "1.5 false true math engine Ada",
        ),
        ({"bb": "second", "a": "first"}, "first second"),
        (["b", "a", ["c", ["d"]], "e"], "b a c d e"),  # arrays keep their order, depth first
        ({"key": "value"}, "value"),
        ({"only": None}, ""),
        ({}, ""),
        ([], ""),
        (None, ""),  # JSON null
        ("plain", "plain"),
        (42, "42"),
        ([-0.5, 1e3, 10**20], "-0.5 1000.0 100000000000000000000"),
    ],
    ids=lambda value: json.dumps(value)[:30] if not isinstance(value, str) else value[:30],
)  # fmt: skip
def test_jsonb_to_text_lists_scalar_values_in_jsonb_order(document, expected):
    assert fetchone("SELECT app.jsonb_to_text(%s::jsonb)", [json.dumps(document)]) == (expected,)


def test_jsonb_to_text_of_sql_null_is_null():
    assert fetchone("SELECT app.jsonb_to_text(NULL)") == (None,)


def test_search_text_is_generated_from_data_on_insert_and_update():
    row = GenericDataFactory(data={"title": "Blue bicycle", "price": 120, "sold": False})
    row.refresh_from_db()
    assert row.search_text == "false 120 Blue bicycle"  # keys: sold, price, title

    row.data = {"title": "Red car"}
    row.save()
    row.refresh_from_db()
    assert row.search_text == "Red car"

    run("UPDATE app.generic_data SET data = %s::jsonb WHERE id = %s", ['{"a": "raw"}', row.pk])
    row.refresh_from_db()
    assert row.search_text == "raw"


def test_search_text_cannot_be_written():
    row = GenericDataFactory()

    with pytest.raises(ProgrammingError) as error, transaction.atomic():
        run("UPDATE app.generic_data SET search_text = 'x' WHERE id = %s", [row.pk])

    assert isinstance(error.value.__cause__, psycopg.errors.GeneratedAlways)


# --- Database defaults and NOT NULL ------------------------------------------------------------


@dataclass(frozen=True)
class Parents:
    """Rows a minimal insert into a child table refers to."""

    tenant: Any
    user: Any
    project: Any
    table: Any


@pytest.fixture
def parents() -> Parents:
    table = TableMetadataFactory()
    CurrencyFactory(code="EUR", name="Euro")
    return Parents(table.tenant, table.project.user, table.project, table)


EXPIRES = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

# For each seed table, a value for every NOT NULL column that has no default.
MINIMAL_ROWS: dict[str, Callable[[Parents], dict[str, Any]]] = {
    "cfg.languages": lambda p: {"code": "zz"},
    "cfg.currencies": lambda p: {"code": "ZZZ"},
    "cfg.exchange_rates": lambda p: {
        "from_currency": "USD", "to_currency": "EUR", "rate_date": datetime.date(2024, 1, 31)
    },
    "cfg.translations": lambda p: {},
    "ops.audit_logs": lambda p: {"action": "LOGIN", "entity_type": "users"},
    "core.tenants": lambda p: {"name": "Raw", "slug": "raw"},
    "core.users": lambda p: {
        "tenant_id": p.tenant.pk, "email": "raw@example.com", "password_hash": "!"
    },
    "core.user_sessions": lambda p: {
        "tenant_id": p.tenant.pk, "user_id": p.user.pk, "token": "raw", "expires_at": EXPIRES
    },
    "core.user_2fa": lambda p: {
        "tenant_id": p.tenant.pk, "method": "totp", "secret_encrypted": "secret"
    },
    "core.projects": lambda p: {
        "tenant_id": p.tenant.pk, "user_id": p.user.pk, "name": "Raw", "api_key": "raw"
    },
    "core.table_metadata": lambda p: {
        "tenant_id": p.tenant.pk, "project_id": p.project.pk, "table_name": "raw",
        "physical_table_name": "raw_physical",
    },
    "core.api_keys": lambda p: {
        "tenant_id": p.tenant.pk, "user_id": p.user.pk, "name": "Raw", "key_hash": "hash",
        "key_encrypted": "encrypted",
    },
    "core.files": lambda p: {"tenant_id": p.tenant.pk},
    "app.generic_data": lambda p: {
        "tenant_id": p.tenant.pk, "project_id": p.project.pk, "table_id": p.table.pk
    },
}  # fmt: skip

NOW = "now()"  # marks a column whose default is the transaction's now()
TIMESTAMPS = {"version": 1, "created_at": NOW, "updated_at": NOW}
LIVE = {"is_active": True, "is_deleted": False}

# The seed's column defaults, table by table, as to_jsonb() renders them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cfg.languages": {"direction": "ltr", "is_active": True},
    "cfg.currencies": {"decimal_digits": 2, "is_active": True},
    "cfg.exchange_rates": {},
    "cfg.translations": {},
    "ops.audit_logs": {"created_at": NOW},
    "core.tenants": {
        "default_language": "en", "supported_languages": ["en"], "timezone": "UTC",
        "date_format": "YYYY-MM-DD", "time_format": "HH:mm:ss", "default_currency": "USD",
        "supported_currencies": ["USD"], "auto_convert_currency": False,
        "decimal_separator": ".", "thousands_separator": ",", "features": {}, "limits": {},
        "plan": "free", "subscription_status": "active", "max_projects": 3,
        "max_tables_per_project": 10, "max_records": 10000, "settings": {},
        **LIVE, **TIMESTAMPS,
    },
    "core.users": {
        "email_verified": False, "phone_verified": False, "role": "user", "timezone": "UTC",
        "login_count": 0, **LIVE, **TIMESTAMPS,
    },
    "core.user_sessions": {"last_activity_at": NOW, "is_active": True, **TIMESTAMPS},
    "core.user_2fa": {"is_enabled": False, **TIMESTAMPS},
    "core.projects": {"template_config": {}, **LIVE, **TIMESTAMPS},
    "core.table_metadata": {"fields": [], "from_template": False, **LIVE, **TIMESTAMPS},
    "core.api_keys": {
        "permissions": {}, "scopes": [], "rate_limit_per_minute": 60,
        "rate_limit_per_day": 10000, "allowed_ips": [], "allowed_domains": [],
        "total_requests": 0, "total_errors": 0, "is_active": True, **TIMESTAMPS,
    },
    "core.files": {"is_public": False, "is_deleted": False, **TIMESTAMPS},
    "app.generic_data": {"data": {}, "search_text": "", "is_deleted": False, **TIMESTAMPS},
}  # fmt: skip

# The tables whose primary key the database generates, and its Python type.
GENERATED_ID: dict[str, type] = {
    "cfg.translations": int,
    "ops.audit_logs": int,
    "core.tenants": int,
    "core.users": int,
    "core.user_sessions": int,
    "core.user_2fa": int,
    "core.projects": int,
    "core.table_metadata": int,
    "core.api_keys": int,
    "core.files": uuid.UUID,
    "app.generic_data": int,
}

# The seed's NOT NULL columns, primary keys included.
NOT_NULL: dict[str, set[str]] = {
    "cfg.languages": {"code"},
    "cfg.currencies": {"code"},
    "cfg.exchange_rates": {"from_currency", "to_currency", "rate_date"},
    "cfg.translations": {"id"},
    "ops.audit_logs": {"id", "action", "entity_type"},
    "core.tenants": {"id", "name", "slug"},
    "core.users": {"id", "tenant_id", "email", "password_hash"},
    "core.user_sessions": {"id", "tenant_id", "user_id", "token", "expires_at"},
    "core.user_2fa": {"id", "tenant_id", "method", "secret_encrypted"},
    "core.projects": {"id", "tenant_id", "user_id", "name", "api_key"},
    "core.table_metadata": {
        "id", "tenant_id", "project_id", "table_name", "physical_table_name", "fields"
    },
    "core.api_keys": {"id", "tenant_id", "user_id", "name", "key_hash", "key_encrypted"},
    "core.files": {"id", "tenant_id"},
    "app.generic_data": {"id", "tenant_id", "project_id", "table_id", "data"},
}  # fmt: skip


def insert_returning_row(table: str, values: dict[str, Any]) -> dict[str, Any]:
    """INSERT with only `values` given; return the stored row as to_jsonb() renders it."""
    if values:
        columns = ", ".join(quote_identifier(column) for column in values)
        placeholders = ", ".join(["%s"] * len(values))
        body = f"({columns}) VALUES ({placeholders})"
    else:
        body = "DEFAULT VALUES"
    [row] = fetchone(
        f"INSERT INTO {ref(table)} AS inserted {body} RETURNING to_jsonb(inserted)",
        list(values.values()),
    )
    return json.loads(row) if isinstance(row, str) else row


def as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime.date) else value


def test_every_seed_table_is_covered():
    tables = fetchall(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = ANY(%s)",
        [list(SCHEMAS)],
    )
    assert SEED_TABLES <= {name for (name,) in tables}
    assert SEED_TABLES == set(MINIMAL_ROWS) == set(DEFAULTS) == set(NOT_NULL)


@pytest.mark.parametrize("table", MINIMAL_ROWS, ids=str)
def test_raw_insert_of_the_not_null_columns_gets_every_seed_default(table: str, parents):
    given = MINIMAL_ROWS[table](parents)

    row = insert_returning_row(table, given)

    now = fetchone("SELECT to_jsonb(now()) #>> '{}'")[0]
    expected = {column: None for column in row}
    expected |= {column: as_json(value) for column, value in given.items()}
    expected |= {
        column: now if value == NOW else value for column, value in DEFAULTS[table].items()
    }
    if table in GENERATED_ID:
        id_type = GENERATED_ID[table]
        generated = id_type(row["id"]) if id_type is uuid.UUID else row["id"]
        assert isinstance(generated, id_type)
        if id_type is uuid.UUID:
            assert generated.version == 4  # random, as the seed's uuid_generate_v4()
        expected["id"] = row["id"]
    assert row == expected


@pytest.mark.parametrize(
    "table, column",
    [(table, column) for table, columns in NOT_NULL.items() for column in sorted(columns)],
    ids=lambda value: value,
)
def test_null_is_refused_in_each_not_null_column(table: str, column: str, parents):
    values = MINIMAL_ROWS[table](parents) | {column: None}

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        insert_returning_row(table, values)

    cause = integrity_cause(error)
    assert isinstance(cause, psycopg.errors.NotNullViolation)
    assert (cause.diag.table_name, cause.diag.column_name) == (table.split(".")[1], column)


def test_not_null_columns_of_the_seed_tables_are_exactly_the_seeds():
    rows = fetchall(
        "SELECT n.nspname || '.' || c.relname, a.attname FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname || '.' || c.relname = ANY(%s) AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attnotnull",
        [list(SEED_TABLES)],
    )
    found: dict[str, set[str]] = {table: set() for table in NOT_NULL}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    assert found == NOT_NULL


# --- Unique constraints ------------------------------------------------------------------------

# (what, make the first row, make a clashing row, the constraint that refuses it)
UNIQUE_CASES = [
    ("tenant slug", lambda: TenantFactory(slug="acme"), lambda first: TenantFactory(slug="acme"),
     "tenants_slug_key"),
    ("tenant domain", lambda: TenantFactory(domain="acme.test"),
     lambda first: TenantFactory(domain="acme.test"), "tenants_domain_key"),
    ("user email in another tenant, other case", lambda: UserFactory(email="ada@example.com"),
     lambda first: UserFactory(email="ADA@Example.COM"), "users_email_key"),
    ("project name in one tenant", lambda: ProjectFactory(name="Shop"),
     lambda first: ProjectFactory(tenant=first.tenant, user=first.user, name="Shop"),
     "unique_project_name_per_tenant"),
    ("project api key", lambda: ProjectFactory(api_key="k-1"),
     lambda first: ProjectFactory(api_key="k-1"), "projects_api_key_key"),
    ("table name in one project", lambda: TableMetadataFactory(table_name="orders"),
     lambda first: TableMetadataFactory(project=first.project, table_name="orders"),
     "unique_table_per_project"),
    ("physical table name", lambda: TableMetadataFactory(physical_table_name="t_1"),
     lambda first: TableMetadataFactory(physical_table_name="t_1"),
     "table_metadata_physical_table_name_key"),
    ("session token", lambda: UserSessionFactory(token="tok"),
     lambda first: UserSessionFactory(token="tok"), "user_sessions_token_key"),
    ("second factor of one user", lambda: UserTwoFactorFactory(),
     lambda first: UserTwoFactorFactory(user=first.user), "user_2fa_user_id_key"),
    ("api key prefix", lambda: ApiKeyFactory(key_prefix="hzm_x"),
     lambda first: ApiKeyFactory(key_prefix="hzm_x"), "api_keys_key_prefix_key"),
    ("tenant translation", lambda: TranslationFactory(tenant_id=7, translation_key="hi"),
     lambda first: TranslationFactory(tenant_id=7, translation_key="hi"),
     "translations_tenant_id_language_code_translation_key_key"),
    ("exchange rate of a day", lambda: ExchangeRateFactory(rate_date=datetime.date(2024, 5, 1)),
     lambda first: ExchangeRateFactory(rate_date=datetime.date(2024, 5, 1)),
     "exchange_rates_pkey"),
    ("language code", lambda: LanguageFactory(code="tr"),
     lambda first: run("INSERT INTO cfg.languages (code) VALUES ('tr')"), "languages_pkey"),
]  # fmt: skip


@pytest.mark.parametrize(
    "make_first, make_clash, constraint",
    [case[1:] for case in UNIQUE_CASES],
    ids=[case[0] for case in UNIQUE_CASES],
)
def test_unique_constraint_refuses_a_duplicate(make_first, make_clash, constraint):
    first = make_first()

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        make_clash(first)

    cause = integrity_cause(error)
    assert isinstance(cause, psycopg.errors.UniqueViolation)
    assert cause.diag.constraint_name == constraint


def test_email_lookups_ignore_case():
    user = UserFactory(email="grace@example.com")

    assert fetchone("SELECT id FROM core.users WHERE email = %s", ["GRACE@EXAMPLE.COM"]) == (
        user.pk,
    )


def test_same_project_and_table_names_are_allowed_in_other_tenants_and_projects():
    first = TableMetadataFactory(project__name="Shop", table_name="orders")

    second = TableMetadataFactory(project__name="Shop", table_name="orders")
    third = TableMetadataFactory(project=first.project, table_name="customers")

    assert first.tenant_id != second.tenant_id
    assert Project.objects.filter(name="Shop").count() == 2
    assert TableMetadata.objects.filter(project=first.project).count() == 2
    assert third.project_id == first.project_id


@pytest.mark.parametrize(
    "table, make_clash",
    [
        (PROJECTS, lambda first: ProjectFactory(tenant=first.tenant, user=first.user,
                                                name=first.name)),
        (TABLE_METADATA, lambda first: TableMetadataFactory(project=first.project,
                                                            table_name=first.table_name)),
    ],
    ids=str,
)  # fmt: skip
def test_the_name_of_a_soft_deleted_row_can_be_used_again(table, make_clash):
    # Not the seed's rule: 0002_tenant_isolation makes these unique among live rows only.
    first = table.factory()
    table.delete(first.pk)

    second = make_clash(first)

    assert second.pk != first.pk
    assert table.select(first.pk, "is_deleted") == (True,)


def test_nulls_do_not_clash_in_unique_columns():
    first, second = TenantFactory(domain=None), TenantFactory(domain=None)
    ApiKeyFactory(key_prefix=None)
    ApiKeyFactory(key_prefix=None)
    UserTwoFactorFactory(user=None, tenant=first)
    UserTwoFactorFactory(user=None, tenant=first)

    assert Tenant.objects.filter(pk__in=[first.pk, second.pk], domain=None).count() == 2
    assert ApiKey.objects.filter(key_prefix=None).count() == 2
    assert UserTwoFactor.objects.filter(tenant=first, user=None).count() == 2


def test_a_global_translation_cannot_be_duplicated():
    # The seed's UNIQUE (tenant_id, language_code, translation_key) treated NULL tenants
    # as distinct and allowed duplicate globals; cfg.0005 makes it NULLS NOT DISTINCT.
    TranslationFactory(tenant_id=None, translation_key="greeting")
    with (
        pytest.raises(
            IntegrityError, match="translations_tenant_id_language_code_translation_key_key"
        ),
        transaction.atomic(),
    ):
        TranslationFactory(tenant_id=None, translation_key="greeting")
    # A tenant's override of the same key is still its own row.
    TranslationFactory(tenant_id=7, translation_key="greeting")
    assert fetchone(
        "SELECT count(*) FROM cfg.translations WHERE translation_key = %s", ["greeting"]
    ) == (2,)


# --- Foreign keys and their ON DELETE rules ------------------------------------------------------

# (table, columns) -> (referenced table, columns, ON DELETE: 'c' CASCADE, 'a' NO ACTION)
SEED_FOREIGN_KEYS = {
    ("cfg.exchange_rates", ("from_currency",)): ("cfg.currencies", ("code",), "a"),
    ("cfg.exchange_rates", ("to_currency",)): ("cfg.currencies", ("code",), "a"),
    ("cfg.translations", ("language_code",)): ("cfg.languages", ("code",), "a"),
    ("core.tenants", ("default_language",)): ("cfg.languages", ("code",), "a"),
    ("core.tenants", ("default_currency",)): ("cfg.currencies", ("code",), "a"),
    ("core.users", ("tenant_id",)): ("core.tenants", ("id",), "a"),
    ("core.user_sessions", ("tenant_id",)): ("core.tenants", ("id",), "a"),
    ("core.user_sessions", ("user_id",)): ("core.users", ("id",), "a"),
    ("core.user_2fa", ("tenant_id",)): ("core.tenants", ("id",), "a"),
    ("core.user_2fa", ("user_id",)): ("core.users", ("id",), "a"),
    ("core.projects", ("tenant_id",)): ("core.tenants", ("id",), "c"),
    ("core.projects", ("user_id",)): ("core.users", ("id",), "c"),
    ("core.table_metadata", ("tenant_id",)): ("core.tenants", ("id",), "c"),
    ("core.table_metadata", ("project_id",)): ("core.projects", ("id",), "c"),
    ("core.api_keys", ("tenant_id",)): ("core.tenants", ("id",), "c"),
    ("core.api_keys", ("project_id",)): ("core.projects", ("id",), "c"),
    ("core.api_keys", ("user_id",)): ("core.users", ("id",), "c"),
    ("core.files", ("tenant_id",)): ("core.tenants", ("id",), "a"),
    ("core.files", ("uploaded_by",)): ("core.users", ("id",), "a"),
    # The seed's app.generic_data (tenant_id), (project_id) and (table_id) keys are gone
    # (generic_data 0008): its composite key below implies them.
}

# Not in the seed: the 0002_tenant_isolation migrations of core and generic_data keep
# references inside one tenant with composite keys beside the seed's, each with the ON
# DELETE rule of its column's own key (a NO ACTION key beside a CASCADE one would make a
# delete depend on the order the foreign key triggers fire in).
SAME_TENANT_FOREIGN_KEYS = {
    ("core.user_sessions", ("tenant_id", "user_id")): ("core.users", ("tenant_id", "id"), "a"),
    ("core.user_2fa", ("tenant_id", "user_id")): ("core.users", ("tenant_id", "id"), "a"),
    ("core.projects", ("tenant_id", "user_id")): ("core.users", ("tenant_id", "id"), "c"),
    ("core.table_metadata", ("tenant_id", "project_id")): (
        "core.projects", ("tenant_id", "id"), "c"
    ),
    ("core.api_keys", ("tenant_id", "project_id")): ("core.projects", ("tenant_id", "id"), "c"),
    ("core.api_keys", ("tenant_id", "user_id")): ("core.users", ("tenant_id", "id"), "c"),
    ("core.files", ("tenant_id", "uploaded_by")): ("core.users", ("tenant_id", "id"), "a"),
    ("app.generic_data", ("tenant_id", "project_id", "table_id")): (
        "core.table_metadata", ("tenant_id", "project_id", "id"), "c"
    ),
}  # fmt: skip

# Not in the seed: generic_data 0004's unique values go with their row (a purge).
GENERIC_DATA_UNIQUE_FOREIGN_KEYS = {
    (GENERIC_DATA_UNIQUE, ("row_id",)): ("app.generic_data", ("id",), "c"),
}

FOREIGN_KEYS_SQL = """
SELECT n.nspname || '.' || t.relname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
             ORDER BY u.pos)::text[],
       rn.nspname || '.' || rt.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
             ORDER BY u.pos)::text[],
       k.confdeltype, k.confupdtype, k.condeferrable, k.condeferred
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_class rt ON rt.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = rt.relnamespace
WHERE k.contype = 'f' AND n.nspname || '.' || t.relname = ANY(%s)
"""


def test_foreign_keys_of_the_seed_tables_have_the_seed_on_delete_rules_and_are_not_deferrable():
    tables = [*SEED_TABLES, GENERIC_DATA_UNIQUE]
    found = {
        (table, tuple(columns)): (ref_table, tuple(ref_columns), *rules)
        for table, columns, ref_table, ref_columns, *rules in fetchall(FOREIGN_KEYS_SQL, [tables])
    }

    # rules: ON DELETE, ON UPDATE (always NO ACTION), deferrable, initially deferred
    expected = {
        key: (ref_table, ref_columns, on_delete, "a", False, False)
        for key, (ref_table, ref_columns, on_delete) in (
            SEED_FOREIGN_KEYS | SAME_TENANT_FOREIGN_KEYS | GENERIC_DATA_UNIQUE_FOREIGN_KEYS
        ).items()
    }
    assert found == expected


def test_hard_deleting_a_project_cascades_to_its_keys_tables_and_rows():
    row = GenericDataFactory()
    project = row.project
    key = ApiKeyFactory(project=project)
    other_key = ApiKeyFactory()
    for table in (PROJECTS, TABLE_METADATA, GENERIC_DATA):
        disable_trigger(table.name, table.trigger("softdel"))

    assert PROJECTS.delete(project.pk) == 1

    assert not Project.objects.filter(pk=project.pk).exists()
    assert not TableMetadata.objects.filter(pk=row.table_id).exists()
    assert not GenericData.objects.filter(pk=row.pk).exists()
    assert API_KEYS.select(key.pk, "id") is None
    assert API_KEYS.select(other_key.pk, "id") == (other_key.pk,)


def test_hard_deleting_a_project_with_soft_deletable_tables_is_refused():
    table = TableMetadataFactory()
    disable_trigger(PROJECTS.name, PROJECTS.trigger("softdel"))

    # The cascaded DELETE on table_metadata becomes the soft delete's UPDATE, so the row
    # stays and still references the project, which a foreign key then refuses.
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        PROJECTS.delete(table.project_id)

    cause = integrity_cause(error)
    assert isinstance(cause, psycopg.errors.ForeignKeyViolation)
    assert cause.diag.table_name == "table_metadata"
    assert PROJECTS.select(table.project_id, "id") == (table.project_id,)


@pytest.fixture
def committed_row(transactional_db) -> Iterator[Any]:
    """A generic_data row and its parents, committed; deleted again afterwards.

    Django's flush after a transactional test empties only the tables on the
    search_path, not the seed's schemas, so the rows made here are removed here.
    """
    had_defaults = fetchone(
        "SELECT EXISTS (SELECT FROM cfg.languages WHERE code = 'en'), "
        "EXISTS (SELECT FROM cfg.currencies WHERE code = 'USD')"
    )
    last_audit = fetchone("SELECT coalesce(max(id), 0) FROM ops.audit_logs")[0]
    row = GenericDataFactory()
    try:
        yield row
    finally:
        with transaction.atomic():
            run("SET LOCAL session_replication_role = replica")  # plain deletes, no triggers
            for table, pk in [
                (GENERIC_DATA, row.pk),
                (TABLE_METADATA, row.table_id),
                (PROJECTS, row.project_id),
                (USERS, row.project.user_id),
                (TENANTS, row.tenant_id),
            ]:
                table.delete(pk)
            run("DELETE FROM ops.audit_logs WHERE id > %s", [last_audit])
            if not had_defaults[0]:
                run("DELETE FROM cfg.languages WHERE code = 'en'")
            if not had_defaults[1]:
                run("DELETE FROM cfg.currencies WHERE code = 'USD'")


def foreign_keys_between(table: str, referenced: str) -> set[str]:
    return {
        name
        for (name,) in fetchall(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = %s::regclass AND confrelid = %s::regclass",
            [ref(table), ref(referenced)],
        )
    }


@pytest.mark.django_db(transaction=True)
def test_known_consequence_hard_deleting_a_project_soft_deletes_committed_tables_twice(
    committed_row,
):
    """Known consequence of the seed's CASCADE into soft-delete tables; purge() is the way."""
    row = committed_row
    keys_to_projects = foreign_keys_between(TABLE_METADATA.name, PROJECTS.name)
    assert "fk_table_metadata_tenant_project" in keys_to_projects and len(keys_to_projects) == 2
    with transaction.atomic():
        disable_trigger(PROJECTS.name, PROJECTS.trigger("softdel"))

        # Each of table_metadata's two keys to the project (the seed's and the composite
        # one) CASCADEs, and the soft-delete trigger turns each cascaded DELETE into an
        # UPDATE that keeps project_id. PostgreSQL does not re-check an unchanged key of a
        # row from an earlier transaction, so the first UPDATE passes; the second changes
        # a row this transaction wrote, is checked, and finds the project gone. Which key
        # reports it follows the foreign key triggers' names, which contain OIDs.
        with pytest.raises(IntegrityError) as error, transaction.atomic():
            PROJECTS.delete(row.project_id)

        cause = integrity_cause(error)
        assert isinstance(cause, psycopg.errors.ForeignKeyViolation)
        assert cause.diag.table_name == "table_metadata"
        assert cause.diag.constraint_name in keys_to_projects
        assert PROJECTS.select(row.project_id, "id") == (row.project_id,)
        assert TABLE_METADATA.select(row.table_id, "is_deleted") == (False,)
        assert GENERIC_DATA.select(row.pk, "is_deleted") == (False,)

        # The refusal hangs on that second cascade: with one key to the project, as in
        # the seed, the project goes and its tables stay, soft deleted and pointing at it.
        # The rows reach the project only through their table since generic_data 0008
        # (the seed's own key of theirs is gone): the table is not deleted, so they stay
        # as they were, under a deleted table, whose rows nothing serves.
        run("ALTER TABLE core.table_metadata DROP CONSTRAINT fk_table_metadata_tenant_project")
        assert PROJECTS.delete(row.project_id) == 1
        assert PROJECTS.select(row.project_id, "id") is None
        assert TABLE_METADATA.select(row.table_id, "project_id", "is_deleted") == (
            row.project_id,
            True,
        )
        assert GENERIC_DATA.select(row.pk, "project_id", "is_deleted") == (row.project_id, False)
        transaction.set_rollback(True)


@pytest.mark.django_db(transaction=True)
def test_purging_a_project_deletes_its_committed_tables_and_rows_for_real(committed_row):
    row = committed_row
    with transaction.atomic():
        assert purge(Project.all_objects.filter(pk=row.project_id)) == 1

        assert PROJECTS.select(row.project_id, "id") is None
        assert TABLE_METADATA.select(row.table_id, "id") is None
        assert GENERIC_DATA.select(row.pk, "id") is None
        transaction.set_rollback(True)


def test_hard_deleting_a_user_cascades_to_projects_and_api_keys():
    key = ApiKeyFactory()
    user_id, project_id = key.user_id, key.project_id
    disable_trigger(USERS.name, USERS.trigger("softdel"))
    disable_trigger(PROJECTS.name, PROJECTS.trigger("softdel"))

    assert USERS.delete(user_id) == 1

    assert PROJECTS.select(project_id, "id") is None
    assert API_KEYS.select(key.pk, "id") is None


@pytest.mark.parametrize(
    "make_child, parent, parent_id, child_table",
    [
        (UserSessionFactory, USERS, lambda s: s.user_id, "user_sessions"),
        (UserTwoFactorFactory, USERS, lambda s: s.user_id, "user_2fa"),
        (FileFactory, USERS, lambda f: f.uploaded_by_id, "files"),
        (UserFactory, TENANTS, lambda u: u.tenant_id, "users"),
    ],
    ids=["user with a session", "user with 2FA", "user with a file", "tenant with a user"],
)
def test_hard_delete_of_a_referenced_row_is_refused(make_child, parent, parent_id, child_table):
    child = make_child()
    disable_trigger(parent.name, parent.trigger("softdel"))

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        parent.delete(parent_id(child))

    cause = integrity_cause(error)
    assert isinstance(cause, psycopg.errors.ForeignKeyViolation)
    assert cause.diag.table_name == child_table


def test_deleting_a_language_a_tenant_uses_is_refused():
    TenantFactory()

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        run("DELETE FROM cfg.languages WHERE code = 'en'")

    assert integrity_cause(error).diag.table_name == "tenants"


@pytest.mark.parametrize(
    "table, column, make_stranger, constraint",
    [
        (GENERIC_DATA, "table_id", TableMetadataFactory, "fk_generic_data_tenant_project_table"),
        (TABLE_METADATA, "project_id", ProjectFactory, "fk_table_metadata_tenant_project"),
        (PROJECTS, "user_id", UserFactory, "fk_projects_tenant_user"),
        (API_KEYS, "user_id", UserFactory, "fk_api_keys_tenant_user"),
        (SESSIONS, "user_id", UserFactory, "fk_user_sessions_tenant_user"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_row_cannot_reference_another_tenants_row(table, column, make_stranger, constraint):
    row = table.factory()
    stranger = make_stranger()  # in a tenant of its own

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        run(
            f"UPDATE {table.ref} SET {quote_identifier(column)} = %s WHERE id = %s",
            [stranger.pk, row.pk],
        )

    cause = integrity_cause(error)
    assert isinstance(cause, psycopg.errors.ForeignKeyViolation)
    assert cause.diag.constraint_name == constraint
