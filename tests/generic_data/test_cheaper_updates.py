"""generic_data 0010 (issue 15): app.sync_unique_values() reads the unique fields with one
jsonpath query, app.count_records() builds its arrays without sorting them again; the same
values and counts, and the migration forwards, backwards and forwards on the catalog."""

import json
from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.state import ProjectState

from generic_data import services
from tests.generic_data.conftest import as_tenant
from tests.support import fetchall, fetchone, run

pytestmark = pytest.mark.django_db

MIGRATION = import_module("generic_data.migrations.0010_cheaper_updates")
UNIQUE_VALUES = import_module("generic_data.migrations.0004_unique_field_values")
CHEAPER_WRITES = import_module("generic_data.migrations.0008_cheaper_writes")

FIELDS = [
    {"name": "title", "type": "text"},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "code", "type": "text", "unique": True},
]

# 0004's reading of a table's unique fields, and 0010's.
BY_ELEMENTS = (
    "SELECT coalesce(array_agg(e.value ->> 'name'), '{}') FROM jsonb_array_elements("
    "CASE WHEN jsonb_typeof(%(f)s::jsonb) = 'array' THEN %(f)s::jsonb ELSE '[]'::jsonb END"
    ") AS e(value) WHERE e.value -> 'unique' = 'true'::jsonb AND e.value ->> 'name' IS NOT NULL"
)
BY_PATH = (
    "SELECT coalesce(array_agg(u.name #>> '{}'), '{}') FROM jsonb_path_query("
    "CASE WHEN jsonb_typeof(%(f)s::jsonb) = 'array' THEN %(f)s::jsonb ELSE '[]'::jsonb END, "
    "%(path)s) AS u(name) WHERE u.name #>> '{}' IS NOT NULL"
)


@pytest.mark.parametrize(
    "fields",
    [
        FIELDS,
        [],
        {"name": "sku", "unique": True},  # not an array
        [{"name": "sku", "unique": "true"}, {"name": "a", "unique": [True]}],
        [{"unique": True}, {"name": None, "unique": True}, "sku", 3, [{"name": "x"}]],
        [{"name": 5, "unique": True}, {"name": "b", "unique": False}, {"name": "c"}],
        [{"name": "x", "unique": True, "type": "text"}, {"name": "y", "unique": True}],
    ],
)
def test_the_unique_fields_are_read_as_0004_read_them(fields):
    # NULL names name no value (0004 looked up data ->> NULL, which is NULL): both skip them.
    values = {"f": json.dumps(fields), "path": MIGRATION.UNIQUE_FIELD_NAMES}
    assert fetchone(BY_PATH, values) == fetchone(BY_ELEMENTS, values)


@pytest.fixture
def items(project):
    with as_tenant(project):
        return services.define_table(project.pk, "items", FIELDS)


def unique_values(table_id: int) -> list[tuple]:
    return fetchall(
        "SELECT field, value, row_id FROM app.generic_data_unique WHERE table_id = %s "
        "ORDER BY field, value",
        [table_id],
    )


def test_unique_values_follow_inserts_updates_deletes_and_swaps(items, project):
    # The side table is the owner's: read outside the context, as the superuser.
    with as_tenant(project):
        a, b = services.create_rows(
            project.pk, "items", [{"title": "a", "sku": "A", "code": "1"}, {"title": "b"}]
        )
    assert unique_values(items.id) == [("code", "1", a), ("sku", "A", a)]
    with as_tenant(project):
        services.update_row(project.pk, "items", b, {"sku": "B"})
        services.update_row(project.pk, "items", a, {"code": None})
    assert unique_values(items.id) == [("sku", "A", a), ("sku", "B", b)]
    # One statement swapping two rows' values: the statement trigger sees both at once.
    run(
        "UPDATE app.generic_data SET data = data || jsonb_build_object('sku', "
        "CASE data ->> 'sku' WHEN 'A' THEN 'B' ELSE 'A' END) WHERE id IN (%s, %s)",
        [a, b],
    )
    assert unique_values(items.id) == [("sku", "A", b), ("sku", "B", a)]
    with as_tenant(project):
        with pytest.raises(services.Conflict, match="value 'A' is already used"):
            services.update_row(project.pk, "items", a, {"sku": "A"})
        services.delete_row(project.pk, "items", b)
    assert unique_values(items.id) == [("sku", "B", a)]
    with as_tenant(project):
        (c,) = services.create_rows(project.pk, "items", [{"title": "c", "sku": "A"}])
    assert unique_values(items.id) == [("sku", "A", c), ("sku", "B", a)]


def test_the_record_limit_still_counts_and_refuses(project):
    from core.models import Tenant

    Tenant.objects.filter(pk=project.tenant_id).update(max_records=2)
    with as_tenant(project):
        services.define_table(project.pk, "items", FIELDS)
        services.create_rows(project.pk, "items", [{"title": "a"}, {"title": "b"}])
        with pytest.raises(services.LimitExceeded, match="the tenant has 2 records; 1 more"):
            services.create_row(project.pk, "items", {"title": "c"})


# --- The migration ------------------------------------------------------------------------------


def body_of(function: str) -> str:
    return fetchone("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", [function])[0]


def definer_settings(function: str) -> tuple:
    return fetchone(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure", [function]
    )


def apply(direction: str) -> None:
    """The migration's operations, forwards or backwards (in reverse order)."""
    state = ProjectState()
    operations = MIGRATION.Migration.operations
    with connection.schema_editor(atomic=False) as editor:
        for operation in operations if direction == "forwards" else reversed(operations):
            getattr(operation, f"database_{direction}")("generic_data", editor, state, state)


def test_the_migration_forwards_backwards_forwards():
    bodies = {
        "app.sync_unique_values()": (
            MIGRATION.SYNC_UNIQUE_VALUES,
            UNIQUE_VALUES.SYNC_UNIQUE_VALUES,
        ),
        "app.count_records()": (MIGRATION.COUNT_RECORDS, CHEAPER_WRITES.COUNT_RECORDS),
    }
    pinned = (True, ["search_path=pg_catalog, pg_temp"])
    for function, (new, _) in bodies.items():
        assert body_of(function) == new  # migrated
    apply("backwards")
    for function, (_, old) in bodies.items():
        assert body_of(function) == old
        assert definer_settings(function) == pinned
    apply("forwards")
    for function, (new, _) in bodies.items():
        assert body_of(function) == new
        assert definer_settings(function) == pinned
    # count_records() never had EXECUTE for PUBLIC (0005); CREATE OR REPLACE kept that.
    assert fetchone(
        "SELECT has_function_privilege('public', 'app.count_records()', 'EXECUTE')"
    ) == (False,)


def test_only_the_aggregates_sorting_changed_in_count_records():
    assert MIGRATION.COUNT_RECORDS.count("array_agg(l.id), array_agg(l.max_records)") == 2
    assert "ORDER BY l.id)" not in MIGRATION.COUNT_RECORDS
    # The locks are still taken in id order.
    assert MIGRATION.COUNT_RECORDS.count("ORDER BY t.id FOR NO KEY UPDATE") == 2
