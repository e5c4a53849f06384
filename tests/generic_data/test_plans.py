"""Searches are served by the GIN indexes on the runtime path, under row level security.

Two tenants' tables of 20,000 rows each are loaded once for the module (committed, so
ANALYZE sees them) and removed afterwards. Plans are read with auto_explain, which
also logs the statements a function runs: the query inside app.search_rows() is what
has to use idx_generic_data_search, and it runs nested in the service's query.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.models import TableMetadata
from generic_data import services
from tests.generic_data.conftest import as_tenant, bulk_tables
from tests.support import fetchall, fetchone

ROWS_PER_TENANT = 20_000
ITEMS = [
    {"name": "title", "type": "text"},
    {"name": "sku", "type": "text"},
    {"name": "status", "type": "choice", "options": ["new", "active", "sold", "archived", "draft"]},
    {"name": "price", "type": "decimal"},
]
LOAD = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT %s::int, %s::int, %s::int, jsonb_build_object(
  'title', 'item ' || n || CASE WHEN n %% 7000 = 0 THEN ' zebra'
                                 WHEN n %% 10 = 0 THEN ' linen shirt'
                                 ELSE ' plain cotton shirt' END,
  'sku', 'SKU-' || n,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'price', n %% 1000)
FROM generate_series(1, %s::int) AS n
"""


@pytest.fixture(scope="module")
def loaded(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """Two tenants, each with a table 'items' of ROWS_PER_TENANT rows, vacuumed and analysed."""
    with django_db_blocker.unblock():
        with bulk_tables(2, "items", ITEMS, LOAD, ROWS_PER_TENANT) as (projects, tables):
            yield {"projects": projects, "tables": tables}


@contextmanager
def plans() -> Iterator[list[str]]:
    """The plans of every statement run in the block, nested ones (in functions) included."""
    captured: list[str] = []
    psycopg_connection = connection.connection

    def collect(diagnostic: Any) -> None:
        if "plan:" in (diagnostic.message_primary or ""):
            captured.append(diagnostic.message_primary)

    with connection.cursor() as cursor:
        cursor.execute("LOAD 'auto_explain'")  # as the superuser, before the role switch
        for setting, value in [
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_level", "notice"),
            # The plans arrive as notices: whatever the client asked for (PGOPTIONS='-c
            # client_min_messages=warning'), this transaction takes them.
            ("client_min_messages", "notice"),
        ]:
            cursor.execute("SELECT set_config(%s, %s, true)", [setting, value])
    psycopg_connection.add_notice_handler(collect)
    try:
        yield captured
    finally:
        psycopg_connection.remove_notice_handler(collect)


def plan_of(captured: list[str], *marks: str) -> str:
    found = [plan for plan in captured if all(mark in plan for mark in marks)]
    assert len(found) == 1, f"expected one plan with {marks}, got {len(found)}:\n" + "\n".join(
        captured
    )
    return found[0]


pytestmark = pytest.mark.django_db


def test_full_text_search_uses_idx_generic_data_search_as_the_runtime_role(loaded):
    mine, _theirs = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.search_rows(mine.pk, "items", "zebra", count=True)
    # The rows are this tenant's: the other tenant's zebras exist, and stay out.
    assert [row.data["title"] for row in page.rows] == ["item 14000 zebra", "item 7000 zebra"]
    assert page.count == 2
    # The page runs the function once; the count is the page's, which holds every match.
    inner = [plan for plan in captured if "Query Text: SELECT g.id FROM app.generic_data" in plan]
    assert len(inner) == 1
    assert all("Bitmap Index Scan on idx_generic_data_search" in plan for plan in inner)
    outer = plan_of(captured, "FROM app.search_rows(", "LIMIT")
    assert "Index Scan using generic_data_pkey" in outer
    assert "Seq Scan on generic_data" not in outer


def test_an_equality_filter_uses_idx_generic_data_jsonb_as_the_runtime_role(loaded):
    mine, _ = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.query_rows(
            mine.pk, "items", filter={"field": "sku", "op": "eq", "value": "SKU-77"}, count=True
        )
    assert [row.data["sku"] for row in page.rows] == ["SKU-77"]
    assert page.count == 1
    # The page runs the function once, and so its GIN statement (generic_data 0007), the
    # scope compared outside the index; the count is the page's, which holds every match.
    inner = [plan for plan in captured if "WHERE g.data @> $4 LIMIT $6" in plan]
    assert len(inner) == 1, "\n".join(captured)
    assert all("Bitmap Index Scan on idx_generic_data_jsonb" in plan for plan in inner), "\n".join(
        inner
    )
    # ... and the ordered scan through the table's rows does not follow.
    assert not any("SELECT array_agg(s.id)" in plan for plan in captured)


def test_a_common_value_is_paged_without_reading_the_whole_table(loaded):
    mine, _ = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.query_rows(
            mine.pk, "items", filter={"field": "status", "op": "eq", "value": "active"}, limit=20
        )
    assert len(page.rows) == 20
    # The function's window of the table's first rows, read in id order through an index
    # (generic_data 0007), sees the value; the ordered scan goes on from there.
    window = plan_of(captured, "ORDER BY w.id", "LIMIT 32")
    assert "Index Scan using" in window and "Sort" not in window, window
    # (Of app.generic_data: a small table such as core.table_metadata may well be read
    # whole, as its statistics decide.)
    assert "Seq Scan on generic_data" not in "\n".join(captured)
    assert "idx_generic_data_jsonb" not in "\n".join(captured)


def test_a_comparison_is_served_by_an_index_on_the_table_under_the_policy(loaded):
    mine, _ = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.query_rows(
            mine.pk, "items", filter={"field": "price", "op": "lt", "value": 3}, sort="-price"
        )
    assert {row.data["price"] for row in page.rows} == {0, 1, 2}
    outer = plan_of(captured, "FROM app.generic_data AS g", "LIMIT")
    assert "Seq Scan" not in outer
    # The policy, reading the tenant once for the statement (hzm 0005): an InitPlan.
    assert "InitPlan" in outer and re.search(r"tenant_id = \$\d", outer), outer


def test_the_reason_under_the_policy_postgresql_15_cannot_use_the_gin_indexes(loaded):
    """Why the search functions exist: the same query as the runtime role filters the
    tenant's rows one by one; as the superuser, with the tenant filter written out, it
    uses the index. (Should a PostgreSQL release make these operators leakproof, this
    fails, and the functions could go.)"""
    mine, _ = loaded["projects"]
    table_id = loaded["tables"][mine.pk]
    search = (
        "EXPLAIN SELECT id FROM app.generic_data WHERE table_id = %s {tenant}AND "
        "to_tsvector('english'::regconfig, search_text) @@ websearch_to_tsquery('english', %s)"
    )
    with as_tenant(mine):
        under_policy = "\n".join(r[0] for r in fetchall(search.format(tenant=""), [table_id, "x"]))
    as_owner = "\n".join(
        r[0]
        for r in fetchall(
            search.format(tenant="AND tenant_id = %s "), [table_id, mine.tenant_id, "x"]
        )
    )
    assert "idx_generic_data_search" not in under_policy
    assert "idx_generic_data_search" in as_owner


def test_rows_of_the_module_are_where_the_plans_expect_them(loaded):
    assert TableMetadata.objects.filter(pk__in=loaded["tables"].values()).count() == 2
    assert fetchone("SELECT count(*) FROM app.generic_data") == (2 * ROWS_PER_TENANT,)


def test_a_common_word_is_searched_by_bitmaps_not_row_by_row(loaded):
    """'linen' is in a tenth of the rows: the tenant's rows are AND-ed with the full-text
    index, not filtered one by one through to_tsvector() in a plain index scan (which the
    cost model prefers at 1M rows, hence enable_indexscan = off: bench/RESULTS.md)."""
    mine, _ = loaded["projects"]
    with plans() as captured, as_tenant(mine):
        page = services.search_rows(mine.pk, "items", "linen", limit=10)
    assert len(page.rows) == 10
    inner = plan_of(captured, "Query Text: SELECT g.id FROM app.generic_data", "to_tsvector")
    assert "BitmapAnd" in inner
    assert "Bitmap Index Scan on idx_generic_data_search" in inner
    assert not re.search(r"(?<!Bitmap )Index Scan", inner), inner


def test_two_values_rare_together_are_found_by_the_gin_index_not_the_whole_table(loaded):
    """Status 'new' is in a fifth of the rows, so the window sees it; price 500 in one row
    of 1,000, and with 'new' in the same rows: the ordered scan would read all 20,000 of
    the table's rows for them. The GIN index serves it (generic_data 0009), bitmap scans
    only, AND-ed with the tenant's rows if the planner finds that cheaper."""
    mine, _ = loaded["projects"]
    both = {"and": [{"field": "status", "op": "eq", "value": "new"},
                    {"field": "price", "op": "eq", "value": 500}]}  # fmt: skip
    with plans() as captured, as_tenant(mine):
        page = services.query_rows(mine.pk, "items", filter=both, sort="-id", limit=5)
    assert [row.data["sku"] for row in page.rows] == [f"SKU-{n}500" for n in (19, 18, 17, 16, 15)]
    inner = plan_of(captured, "(array_agg(g.id ORDER BY g.id DESC))[1:")
    assert "Bitmap Index Scan on idx_generic_data_jsonb" in inner, inner
    assert not re.search(r"(?<!Bitmap )Index Scan|Seq Scan", inner), inner
    # Neither the ordered scan nor the GIN index alone (the window saw 'new'): the window
    # and this statement.
    assert not any("SELECT array_agg(s.id)" in plan for plan in captured)
    assert not any("LIMIT $6) AS c" in plan for plan in captured)


def test_equalities_and_a_comparison_are_one_statement_served_by_the_gin_index(loaded):
    """The probe for candidates is the page's own CTE (no round trip of its own); a unique
    value's candidates come from idx_generic_data_jsonb, and the table is not read."""
    mine, _ = loaded["projects"]
    both = {"and": [{"field": "sku", "op": "eq", "value": "SKU-77"},
                    {"field": "price", "op": "gte", "value": 0}]}  # fmt: skip
    with plans() as captured, as_tenant(mine), CaptureQueriesContext(connection) as queries:
        page = services.query_rows(mine.pk, "items", filter=both, count=True)
    assert [row.data["sku"] for row in page.rows] == ["SKU-77"]
    assert page.count == 1
    statements = [q["sql"] for q in queries if "app.generic_data" in q["sql"] or
                  "app.rows_containing" in q["sql"]]  # fmt: skip
    assert len(statements) == 1 and statements[0].startswith("WITH c AS MATERIALIZED"), statements
    gin = plan_of(captured, "WHERE g.data @> $4 LIMIT $6")
    assert "Bitmap Index Scan on idx_generic_data_jsonb" in gin, gin
    assert not any("array_agg(s.id)" in plan for plan in captured)
