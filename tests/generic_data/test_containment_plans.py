"""Containment is served by idx_generic_data_jsonb where that is cheaper (generic_data 0007,
decided without the planner's estimate since 0009).

Two tenants' tables of 12,000 rows each (the same values in both, so every rare value
also matches the other tenant's rows, which the GIN index returns too) are loaded once
for the module and removed afterwards. Which index app.rows_containing() used is read
from the transaction's own index statistics (pg_stat_get_xact_numscans: no auto_explain),
around calls made as the runtime role; the statements it runs are EXPLAINed as frozen in
the migration (0009), as its owner (they run as the owner). Every answer, on each path, is
compared with a naive reference query: the same rows, pages, orders and counts as
before the change.
"""

import importlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.state import ProjectState

from generic_data import services
from tests.generic_data.conftest import as_tenant, bulk_tables
from tests.support import fetchall, fetchone

MIGRATION = importlib.import_module("generic_data.migrations.0009_search_plans")
PREVIOUS = importlib.import_module("generic_data.migrations.0007_containment_gin_first")
# The static statements' PL/pgSQL variables, bound as EXECUTE ... USING binds $1..$6.
VARIABLES = {"v_tenant": 1, "p_project_id": 2, "p_table_id": 3, "p_doc": 4, "v_after": 5,
             "v_last": 5, "v_want": 6, "v_keys": 6}  # fmt: skip

ROWS = 12_000
FIELDS = [
    {"name": "sku", "type": "text"},
    {"name": "status", "type": "choice", "options": ["new", "active", "sold", "archived", "draft"]},
    {"name": "batch", "type": "integer"},
    {"name": "qty", "type": "integer"},
]
# sku unique in the table, status in a fifth of the rows, batch in runs of 8 consecutive
# rows, qty spread (hashed) over 97 values.
LOAD = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT %s::int, %s::int, %s::int, jsonb_build_object(
  'sku', 'SKU-' || n,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'batch', n / 8,
  'qty', abs(hashtext(n::text)) %% 97)
FROM generate_series(1, %s::int) AS n
"""
JSONB_INDEX = "app.idx_generic_data_jsonb"
TABLE_INDEX = "app.unique_generic_data_per_table"

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def loaded(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    with django_db_blocker.unblock():
        with bulk_tables(2, "items", FIELDS, LOAD, ROWS) as (projects, tables):
            yield {"projects": projects, "tables": tables}


def scans() -> dict[str, int]:
    """Index scans of this transaction so far, of the two indexes a containment can use."""
    return {
        index: fetchone("SELECT pg_stat_get_xact_numscans(%s::regclass)", [index])[0]
        for index in (JSONB_INDEX, TABLE_INDEX)
    }


def scanned(before: dict[str, int]) -> dict[str, int]:
    return {index: count - before[index] for index, count in scans().items()}


def reference(project: Any, table_id: int, document: dict[str, Any]) -> list[int]:
    """The ids the function must find, by the plainest query (as the superuser)."""
    return [
        row_id
        for (row_id,) in fetchall(
            "SELECT id FROM app.generic_data WHERE tenant_id = %s AND project_id = %s "
            "AND table_id = %s AND NOT is_deleted AND data @> %s::jsonb ORDER BY id",
            [project.tenant_id, project.pk, table_id, json.dumps(document)],
        )
    ]


def explain(statement: str, *params: Any) -> str:
    """EXPLAIN of one of the function's frozen statements, ascending, as it runs it: with
    the settings the function runs with, its parameters bound as EXECUTE ... USING binds
    them (so planned for these values; PL/pgSQL binds a static statement's variables
    the same way)."""
    text = statement.replace("%1$s", ">").replace("%2$s", "ASC")
    if statement in (MIGRATION.WINDOW_STATEMENT, MIGRATION.SCAN_STATEMENT):
        text = statement.format(op=">", order="ASC", last="max")
        text = re.sub(r"\s+INTO [^\n]*\n", "\n", text).rstrip(";")
        text = re.sub(r"\b(v_\w+|p_\w+)\b", lambda m: f"${VARIABLES[m.group(1)]}", text)
    bound = [params[int(number) - 1] for number in re.findall(r"\$(\d)", text)]
    (config,) = fetchone(
        "SELECT proconfig FROM pg_proc WHERE oid = "
        "'app.rows_containing(integer,integer,jsonb,bigint,integer,boolean)'::regprocedure"
    )
    settings = dict(entry.split("=", 1) for entry in config if not entry.startswith("search_path"))
    assert settings == MIGRATION.SETTINGS
    previous = {name: fetchone("SELECT current_setting(%s)", [name])[0] for name in settings}
    for name, value in {**settings, **extra_settings(statement)}.items():
        fetchone("SELECT set_config(%s, %s, true)", [name, value])
    try:
        rows = fetchall("EXPLAIN " + re.sub(r"\$\d", "%s", text), bound)
    finally:
        for name, value in previous.items():
            fetchone("SELECT set_config(%s, %s, true)", [name, value])
    return "\n".join(line for (line,) in rows)


def extra_settings(statement: str) -> dict[str, str]:
    """What the function sets around a statement: bitmap scans only for the AND."""
    return {"enable_indexscan": "off"} if statement is MIGRATION.AND_SQL else {}


def rare_batch(loaded: dict[str, Any]) -> int:
    """A batch (8 rows in each table) far from the window (the table's first rows), so the
    function takes the GIN path for it; the test of that path needs one."""
    return 777


def test_the_gin_statement_uses_idx_generic_data_jsonb_and_no_scope_index(loaded):
    mine = loaded["projects"][0]
    plan = explain(
        MIGRATION.GIN_SQL,
        mine.tenant_id,
        mine.pk,
        loaded["tables"][mine.pk],
        '{"sku": "SKU-7777"}',
        0,
        300,
    )
    assert "Bitmap Index Scan on idx_generic_data_jsonb" in plan, plan
    assert not re.search(r"(?<!Bitmap )Index Scan|Seq Scan|BitmapAnd", plan), plan


def test_the_window_reads_the_first_rows_in_order(loaded):
    mine = loaded["projects"][0]
    plan = explain(
        MIGRATION.WINDOW_STATEMENT,
        mine.tenant_id,
        mine.pk,
        loaded["tables"][mine.pk],
        '{"sku": "SKU-7777"}',
        0,
        1,
    )
    # The table's rows in the index's order: no sort of the whole table.
    assert "Index Scan using unique_generic_data_per_table" in plan, plan
    assert "Limit" in plan and "Sort" not in plan, plan


def test_the_ordered_scan_reads_the_table_in_order(loaded):
    mine = loaded["projects"][0]
    plan = explain(
        MIGRATION.SCAN_STATEMENT,
        mine.tenant_id,
        mine.pk,
        loaded["tables"][mine.pk],
        '{"status": "active"}',
        0,
        51,
    )
    assert "Index Scan using unique_generic_data_per_table" in plan, plan
    assert "Sort" not in plan, plan


def test_a_unique_value_is_found_through_the_gin_index_as_the_runtime_role(loaded):
    mine, theirs = loaded["projects"]
    table_id = loaded["tables"][mine.pk]
    before = scans()
    with as_tenant(mine):
        page = services.query_rows(
            mine.pk, "items", filter={"field": "sku", "op": "eq", "value": "SKU-7777"}
        )
    # One window, one GIN scan, no scan through the table's rows.
    assert scanned(before) == {JSONB_INDEX: 1, TABLE_INDEX: 1}
    # The other tenant's SKU-7777 came out of the index too, and stayed out.
    assert [row.id for row in page.rows] == reference(mine, table_id, {"sku": "SKU-7777"})
    assert len(page.rows) == 1
    assert reference(theirs, loaded["tables"][theirs.pk], {"sku": "SKU-7777"}) != []


def test_a_common_value_takes_the_ordered_scan_and_pages_as_before(loaded):
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    expected = reference(mine, table_id, {"status": "active"})
    assert len(expected) == ROWS // 5
    for sort in ("id", "-id"):
        order = expected if sort == "id" else expected[::-1]
        found, after, before = [], None, scans()
        with as_tenant(mine):
            for _ in range(3):
                page = services.query_rows(
                    mine.pk,
                    "items",
                    filter={"field": "status", "op": "eq", "value": "active"},
                    sort=sort,
                    limit=30,
                    after=after,
                )
                found += [row.id for row in page.rows]
                after = page.next_cursor
            # Never the GIN index for a common value's pages (a count of every row is
            # 0003's query, which the planner may answer with either index).
            assert scanned(before)[JSONB_INDEX] == 0
            total = services.query_rows(
                mine.pk,
                "items",
                filter={"field": "status", "op": "eq", "value": "active"},
                limit=1,
                count=True,
            ).count
        assert found == order[:90]
        assert total == len(expected)


def test_a_rare_value_pages_through_the_gin_path_as_before(loaded):
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    batch = rare_batch(loaded)
    expected = reference(mine, table_id, {"batch": batch})
    assert len(expected) == 8
    for sort in ("id", "-id"):
        order = expected if sort == "id" else expected[::-1]
        found, after, first = [], None, None
        with as_tenant(mine):
            while True:
                before = scans()
                page = services.query_rows(
                    mine.pk,
                    "items",
                    filter={"field": "batch", "op": "eq", "value": batch},
                    sort=sort,
                    limit=3,
                    after=after,
                )
                first = first or scanned(before)
                found += [row.id for row in page.rows]
                after = page.next_cursor
                if after is None:
                    break
            count = services.query_rows(
                mine.pk, "items", filter={"field": "batch", "op": "eq", "value": batch},
                count=True,
            ).count  # fmt: skip
        assert found == order
        assert count == len(expected)
        # The first page: the window (no match in it), then the GIN index; the next ones
        # start after the cursor, where the window finds them (a batch is 8 rows in a row).
        assert first == {JSONB_INDEX: 1, TABLE_INDEX: 1}


def test_containment_with_a_comparison_reads_its_candidates_by_id(loaded):
    """Equalities and a comparison: the probe returns a rare value's ids from the GIN
    index, and for a common value answers 'too many' from the window alone."""
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    batch = rare_batch(loaded)
    cases = [
        ({"field": "batch", "op": "eq", "value": batch}, {"batch": batch}, 1),
        ({"field": "status", "op": "eq", "value": "sold"}, {"status": "sold"}, 0),
    ]
    for equality, document, gin_scans in cases:
        comparison = {"field": "qty", "op": "gte", "value": 50}
        expected = [
            row_id
            for row_id in reference(mine, table_id, document)
            if fetchone("SELECT (data ->> 'qty')::int FROM app.generic_data WHERE id = %s",
                        [row_id])[0] >= 50
        ]  # fmt: skip
        before = scans()
        with as_tenant(mine):
            page = services.query_rows(
                mine.pk, "items", filter={"and": [equality, comparison]}, limit=20, count=True
            )
        assert [row.id for row in page.rows] == expected[:20]
        assert page.count == len(expected)
        assert scanned(before)[JSONB_INDEX] == gin_scans


def test_the_candidate_mode_returns_every_id_or_null_for_too_many(loaded):
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    batch = rare_batch(loaded)

    def candidates(document: dict[str, Any], cap: int) -> list[int | None]:
        rows = fetchall(
            "SELECT * FROM app.rows_containing(%s, %s, %s::jsonb, NULL, %s, NULL)",
            [mine.pk, table_id, json.dumps(document), cap],
        )
        return sorted((row_id for (row_id,) in rows), key=lambda i: (i is None, i))

    with as_tenant(mine):
        assert candidates({"batch": batch}, 100) == reference(mine, table_id, {"batch": batch})
        assert candidates({"batch": batch}, 7) == [None]  # eight of them
        assert candidates({"status": "sold"}, 1000) == [None]  # 2,400
        assert candidates({"status": "sold"}, 5000) == reference(mine, table_id, {"status": "sold"})
        assert candidates({"sku": "nowhere"}, 10) == []
        # All in the window, which estimates the table by them: "too many" (a hint, and
        # a good one: the table path finds such rows at its start).
        assert len(reference(mine, table_id, {"batch": 2})) == 8
        assert candidates({"batch": 2}, 10) == [None]
        assert candidates({"batch": 2}, 5000) == reference(mine, table_id, {"batch": 2})


def test_every_mode_agrees_with_the_reference_for_any_document(loaded):
    """Pages (both directions, after a cursor), unpaged and candidates, for rare, common,
    combined and absent documents, against the reference query."""
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    documents = [
        {"sku": "SKU-9001"},
        {"sku": "SKU-5"},  # in the window
        {"status": "draft"},
        {"status": "active", "qty": 3},
        {"sku": "SKU-9001", "status": "active"},
        {"batch": rare_batch(loaded)},
        {"qty": 11},
        {"status": "gone"},
        {},
    ]
    with as_tenant(mine):
        for document in documents:
            expected = reference(mine, table_id, document)
            middle = expected[len(expected) // 2] if expected else 6000

            def call(*args: Any, document: dict[str, Any] = document) -> list[int | None]:
                return [
                    row_id
                    for (row_id,) in fetchall(
                        "SELECT * FROM app.rows_containing(%s, %s, %s::jsonb, %s, %s, %s)",
                        [mine.pk, table_id, json.dumps(document), *args],
                    )
                ]

            assert sorted(call(None, None, False)) == expected, document
            assert call(None, 5, False) == expected[:5], document
            assert call(None, 5, True) == expected[::-1][:5], document
            assert call(middle, 5, False) == [i for i in expected if i > middle][:5], document
            assert call(middle, 5, True) == [i for i in expected if i < middle][::-1][:5], document
            # Candidates: all of them, or NULL when there are more than the cap (or, a
            # hint, when the window estimates more).
            capped = call(None, 200, None)
            assert capped == [None] or (len(expected) <= 200 and sorted(capped) == expected)


def test_the_and_statement_uses_the_gin_index_and_no_plain_index_scan(loaded):
    """Two values rare together (each common): bitmap scans only, the GIN index's among
    them (AND-ed with the tenant's rows when the planner finds that cheaper)."""
    mine = loaded["projects"][0]
    plan = explain(
        MIGRATION.AND_SQL,
        mine.tenant_id,
        mine.pk,
        loaded["tables"][mine.pk],
        '{"status": "active", "qty": 3}',
        0,
        51,
    )
    assert "Bitmap Index Scan on idx_generic_data_jsonb" in plan, plan
    assert not re.search(r"(?<!Bitmap )Index Scan|Seq Scan", plan), plan


def test_two_values_rare_together_take_the_and_not_the_ordered_scan(loaded):
    mine = loaded["projects"][0]
    table_id = loaded["tables"][mine.pk]
    document = {"status": "active", "qty": 3}
    expected = reference(mine, table_id, document)
    assert 0 < len(expected) < 100
    before = scans()
    with as_tenant(mine):
        page = services.query_rows(
            mine.pk, "items", filter={"and": [{"field": k, "op": "eq", "value": v}
                                              for k, v in document.items()]}, limit=10,
        )  # fmt: skip
        # The window (the table's index), then one bitmap scan of the GIN index; the
        # ordered scan would have been a second scan of the table's index.
        assert scanned(before) == {JSONB_INDEX: 1, TABLE_INDEX: 1}
    assert [row.id for row in page.rows] == expected[:10]


def test_reversing_restores_the_body_of_0003_exactly():
    previous = importlib.import_module("generic_data.migrations.0003_search_and_api_key_functions")
    assert PREVIOUS.PREVIOUS_BODY == previous.ROWS_CONTAINING


def function_definition() -> tuple[str, list[str]]:
    return fetchone(
        "SELECT prosrc, proconfig FROM pg_proc WHERE oid = "
        "'app.rows_containing(integer,integer,jsonb,bigint,integer,boolean)'::regprocedure"
    )


def apply_0009(direction: str) -> None:
    state = ProjectState.from_apps(global_apps)
    with connection.schema_editor(atomic=False, collect_sql=False) as editor:
        for operation in MIGRATION.Migration.operations:
            getattr(operation, f"database_{direction}")("generic_data", editor, state, state)


def test_0009_forwards_backwards_forwards():
    """Backwards: 0007's body and settings exactly (CREATE OR REPLACE replaces every SET
    clause, so both come back in one statement); forwards again: 0009's."""
    search_path = "search_path=pg_catalog, pg_temp"
    settings_0009 = [search_path, *(f"{k}={v}" for k, v in MIGRATION.SETTINGS.items())]
    assert function_definition() == (MIGRATION.BODY, settings_0009)
    apply_0009("backwards")
    settings_0007 = [search_path, *(f"{k}={v}" for k, v in PREVIOUS.SETTINGS.items())]
    assert function_definition() == (PREVIOUS.BODY, settings_0007)
    apply_0009("forwards")
    assert function_definition() == (MIGRATION.BODY, settings_0009)
