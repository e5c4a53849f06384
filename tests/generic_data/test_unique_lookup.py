"""An equality on a unique field finds its row through app.generic_data_unique (generic_data
0011): the same rows, orders and counts as the containment it replaces, and the plan of
one row read by its primary key.

Every answer is compared with the same filter on a copy of the table whose fields are
not unique (so served as before, by app.rows_containing() and the table), and with the
ids the rows were created with.
"""

import importlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.state import ProjectState

from generic_data import query as q
from generic_data import services
from tests.generic_data.conftest import as_tenant, bulk_tables
from tests.generic_data.test_plans import plan_of, plans
from tests.support import fetchall, fetchone

MIGRATION = importlib.import_module("generic_data.migrations.0011_unique_value_lookup")
SIGNATURE = "app.unique_value_row(integer,text,text)"

FIELDS = [
    {"name": "sku", "type": "text", "unique": True},
    {"name": "code", "type": "integer", "unique": True},
    {"name": "weight", "type": "decimal", "unique": True},
    {"name": "price", "type": "decimal"},
    {"name": "status", "type": "choice", "options": ["new", "sold"]},
]
ROWS = [
    {"sku": "A", "code": 1, "weight": "1.5", "price": "10", "status": "new"},
    {"sku": "B", "code": 2, "weight": "2", "price": "0", "status": "sold"},
    {"sku": "C", "code": 3, "price": "5", "status": "new"},
    {"sku": "a", "status": "sold"},  # values are case-sensitive, as containment is
    {"price": "7"},
]

pytestmark = pytest.mark.django_db


def eq(field: str, value: Any) -> dict[str, Any]:
    return {"field": field, "op": "eq", "value": value}


@pytest.fixture
def tables(project) -> dict[str, list[int]]:
    """The rows in 'items' (unique fields) and in 'plain' (the same, none unique)."""
    plain = [{**field, "unique": False} for field in FIELDS]
    with as_tenant(project):
        services.define_table(project.pk, "items", FIELDS)
        services.define_table(project.pk, "plain", plain)
        return {name: services.create_rows(project.pk, name, ROWS) for name in ("items", "plain")}


def answer(project, table: str, **options: Any) -> tuple[list[int], int | None, list[int]]:
    """Of a query, by the rows' positions in the table: the first page's (of one row),
    the count, and every page's together."""
    with as_tenant(project):
        ids = dict(
            (row_id, n)
            for n, (row_id, *_) in enumerate(
                fetchall(
                    "SELECT g.id FROM app.generic_data AS g JOIN core.table_metadata AS t "
                    "ON t.id = g.table_id WHERE t.table_name = %s ORDER BY g.id",
                    [table],
                )
            )
        )
        page = services.query_rows(project.pk, table, limit=1, **options)
        every, after = [], None
        while True:
            more = services.query_rows(project.pk, table, limit=1, after=after, **options)
            every += [ids[row.id] for row in more.rows]
            if more.next_cursor is None:
                break
            after = more.next_cursor
    return [ids[row.id] for row in page.rows], page.count, every


@pytest.mark.parametrize(
    "filter_, expected",
    [
        (eq("sku", "A"), [0]),
        (eq("sku", "a"), [3]),
        (eq("sku", "Z"), []),
        (eq("code", "2"), [1]),
        ({"and": [eq("sku", "A"), eq("status", "new")]}, [0]),
        ({"and": [eq("status", "sold"), eq("sku", "A")]}, []),
        ({"and": [eq("sku", "B"), {"field": "price", "op": "gt", "value": 0}]}, []),
        ({"and": [eq("sku", "A"), {"field": "price", "op": "gt", "value": 0}]}, [0]),
        ({"and": [eq("sku", "C"), eq("code", 3), {"field": "price", "op": "lt", "value": 9}]}, [2]),
        ({"and": [eq("sku", "C"), eq("code", 1)]}, []),
        # Not a unique lookup (a decimal, an OR, a list): containment and the table, as before.
        (eq("weight", "1.50"), [0]),
        ({"or": [eq("sku", "A"), eq("sku", "B")]}, [0, 1]),
        ({"field": "sku", "op": "in", "value": ["B", "C"]}, [1, 2]),
    ],
)
@pytest.mark.parametrize("sort", [None, "-id", "price", "-status"])
def test_a_unique_value_finds_what_containment_finds(tables, project, filter_, expected, sort):
    found = answer(project, "items", filter=filter_, sort=sort, count=True)
    assert found == answer(project, "plain", filter=filter_, sort=sort, count=True)
    assert sorted(found[2]) == expected
    assert found[1] == len(expected)


def test_a_deleted_row_is_not_found_and_its_value_is_free_again(tables, project):
    first = tables["items"][0]
    with as_tenant(project):
        services.delete_row(project.pk, "items", first)
        assert services.query_rows(project.pk, "items", filter=eq("sku", "A")).rows == []
        (again,) = services.create_rows(project.pk, "items", [{"sku": "A"}])
        services.update_row(project.pk, "items", tables["items"][1], {"sku": "B2"})
        assert [
            r.id for r in services.query_rows(project.pk, "items", filter=eq("sku", "A")).rows
        ] == [again]
        assert services.query_rows(project.pk, "items", filter=eq("sku", "B")).rows == []
        page = services.query_rows(project.pk, "items", filter=eq("sku", "B2"), count=True)
        assert ([r.id for r in page.rows], page.count) == ([tables["items"][1]], 1)


def test_a_cursor_past_the_row_finds_nothing(tables, project):
    with as_tenant(project):
        (row_id,) = [
            r.id for r in services.query_rows(project.pk, "items", filter=eq("sku", "C")).rows
        ]
        for sort in ("id", "-id"):
            page = services.query_rows(project.pk, "items", filter=eq("sku", "C"), sort=sort)
            assert [r.id for r in page.rows] == [row_id] and page.next_cursor is None
        past = q.encode_cursor(q.Sort(q.ID), row_id, row_id)
        page = services.query_rows(project.pk, "items", filter=eq("sku", "C"), after=past)
        assert page.rows == []


# --- The plan, as the runtime role --------------------------------------------------------------

LOAD = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT %s::int, %s::int, %s::int, jsonb_build_object(
  'sku', 'SKU-' || n, 'status', (ARRAY['new', 'sold'])[1 + n %% 2], 'price', n %% 100)
FROM generate_series(1, %s::int) AS n
"""


@pytest.fixture(scope="module")
def loaded(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Two tenants' tables of 5,000 rows, the same skus in both, their unique values filled
    in as app.sync_unique_values() would have (bulk_tables loads with the triggers off)."""
    fields = [FIELDS[0], FIELDS[3], FIELDS[4]]
    with django_db_blocker.unblock():
        with bulk_tables(2, "items", fields, LOAD, 5000) as (projects, tables):
            scope = [list(tables.values())]
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO app.generic_data_unique (table_id, field, value, row_id) "
                    "SELECT table_id, 'sku', data ->> 'sku', id FROM app.generic_data "
                    "WHERE table_id = ANY(%s)",
                    scope,
                )
                cursor.execute("ANALYZE app.generic_data_unique")
            try:
                yield {"projects": projects, "tables": tables}
            finally:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "DELETE FROM app.generic_data_unique WHERE table_id = ANY(%s)", scope
                    )


@pytest.mark.parametrize(
    "filter_",
    [
        eq("sku", "SKU-77"),
        {"and": [eq("sku", "SKU-77"), {"field": "price", "op": "gt", "value": 0}]},
    ],
    ids=["alone", "with a comparison"],
)
def test_the_row_is_read_by_primary_keys_as_the_runtime_role(loaded, filter_):
    mine, _ = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.query_rows(mine.pk, "items", filter=filter_, count=True)
    assert [row.data["sku"] for row in page.rows] == ["SKU-77"]
    assert page.count == 1  # the page's: no statement to count
    # One statement on the table: generic_data read by its primary key, the id from the
    # function (an InitPlan, run once), under the policy (its InitPlan too).
    outer = plan_of(
        captured, "FROM app.generic_data AS g WHERE g.id = (SELECT app.unique_value_row("
    )
    probe = re.search(
        r"Index Scan using generic_data_pkey on generic_data g\s+\(cost=[\d.]+ rows=1 .*\n"
        r"\s+Index Cond: \(id = (\$\d+)\)",
        outer,
    )
    assert probe and f"(returns {probe.group(1)})" in outer, outer
    assert "InitPlan" in outer, outer
    assert "Seq Scan" not in outer and "idx_generic_data_jsonb" not in outer, outer
    # The function's statement: the side table's primary key.
    inner = plan_of(captured, "FROM app.generic_data_unique AS u")
    assert "generic_data_unique_pkey" in inner, inner
    assert "Seq Scan on generic_data_unique" not in inner, inner
    everything = "\n".join(captured)
    assert "rows_containing" not in everything and "idx_generic_data_jsonb" not in everything


# --- The migration ------------------------------------------------------------------------------


def function_definition() -> tuple[Any, ...] | None:
    return fetchone(
        "SELECT p.prosrc, p.provolatile, p.prosecdef, p.proconfig, "
        "has_function_privilege('public', p.oid, 'EXECUTE') "
        "FROM pg_proc AS p WHERE p.oid = to_regprocedure(%s)",
        [SIGNATURE],
    )


def apply_0011(direction: str) -> None:
    state = ProjectState.from_apps(global_apps)
    operations = MIGRATION.Migration.operations
    with connection.schema_editor(atomic=False, collect_sql=False) as editor:
        for operation in operations if direction == "forwards" else reversed(operations):
            getattr(operation, f"database_{direction}")("generic_data", editor, state, state)


def test_0011_forwards_backwards_forwards():
    installed = (MIGRATION.BODY, "s", True, ["search_path=pg_catalog, pg_temp"], False)
    assert function_definition() == installed
    apply_0011("backwards")
    assert function_definition() is None
    apply_0011("forwards")
    assert function_definition() == installed
