"""The filter language (generic_data.query): parsing, and the SQL it renders, to the string."""

import dataclasses
from decimal import Decimal

import pytest

from generic_data import query as q
from generic_data.schema import ValidationFailed, parse_fields

SCHEMA = parse_fields(
    "products",
    [
        {"name": "title", "type": "text"},
        {"name": "price", "type": "decimal"},
        {"name": "qty", "type": "integer"},
        {"name": "day", "type": "date"},
        {"name": "status", "type": "choice", "options": ["new", "sold"]},
        {"name": "paid", "type": "boolean"},
        {"name": "meta", "type": "json"},
    ],
    lambda name: None,
)


def where(raw) -> tuple[str, list]:
    return q.filter_sql(q.parse_filter(SCHEMA, raw))


def test_each_operator_renders_a_typed_parameterised_condition():
    assert where({"field": "price", "op": "gte", "value": "9.90"}) == (
        "((g.data ->> %s)::numeric) >= %s::numeric",
        ["price", Decimal("9.9")],
    )
    assert where({"field": "day", "op": "lt", "value": "2024-01-31"}) == (
        "((g.data ->> %s)::date) < %s::date",
        ["day", "2024-01-31"],
    )
    assert where({"field": "title", "op": "gt", "value": "m"}) == (
        "(g.data ->> %s) > %s::text",
        ["title", "m"],
    )
    # Equality is jsonb containment, which idx_generic_data_jsonb serves.
    assert where({"field": "qty", "op": "eq", "value": "3"}) == (
        "g.data @> %s::jsonb",
        ['{"qty":3}'],
    )
    assert where({"field": "status", "op": "ne", "value": "new"}) == (
        "NOT (g.data @> %s::jsonb)",
        ['{"status":"new"}'],
    )
    assert where({"field": "status", "op": "in", "value": ["new", "sold"]}) == (
        "(g.data -> %s) = ANY(%s::jsonb[])",
        ["status", ['"new"', '"sold"']],
    )
    assert where({"field": "title", "op": "contains", "value": "50%_off\\"}) == (
        "(g.data ->> %s) ILIKE %s",
        ["title", "%50\\%\\_off\\\\%"],
    )
    assert where({"field": "meta", "op": "contains", "value": {"a": 1}}) == (
        "(g.data -> %s) @> %s::jsonb",
        ["meta", '{"a":1}'],
    )
    assert where({"field": "paid", "op": "isnull", "value": True}) == (
        "(g.data ->> %s) IS NULL",
        ["paid"],
    )
    assert where({"field": "id", "op": "in", "value": [1, 2]}) == (
        "g.id = ANY(%s::bigint[])",
        [[1, 2]],
    )


def test_and_or_nest():
    assert where(
        {
            "or": [
                {"field": "qty", "op": "lt", "value": 1},
                {"and": [{"field": "paid", "op": "eq", "value": True},
                         {"field": "title", "op": "contains", "value": "x"}]},
            ]
        }
    ) == (
        "(((g.data ->> %s)::numeric) < %s::numeric) OR "
        "((g.data @> %s::jsonb) AND ((g.data ->> %s) ILIKE %s))",
        ["qty", 1, '{"paid":true}', "title", "%x%"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"field": "colour", "op": "eq", "value": "red"}, "filter on 'colour' is not a field"),
        ({"field": "price", "op": "contains", "value": "1"}, "operator 'contains' does not apply"),
        ({"field": "price", "op": "gt", "value": "abc"}, "expected a decimal, got 'abc'"),
        ({"field": "paid", "op": "lt", "value": True}, "does not apply to a boolean field"),
        ({"field": "qty", "op": "eq"}, "a value is needed"),
        ({"field": "qty", "op": "isnull", "value": "yes"}, "expected true or false"),
        ({"field": "qty", "op": "in", "value": 3}, "expected a list"),
        ({"and": []}, "expected a non-empty list"),
        ({"and": [{"field": "qty"}], "or": []}, "no other keys"),
        ({"field": "qty", "op": "eq", "value": 1, "x": 2}, "expected {'field'"),
        ("price > 3", "expected an object"),
        ({"field": "title; DROP TABLE x", "op": "eq", "value": 1}, "is not a field"),
    ],
)
def test_bad_filters_are_refused_naming_the_problem(raw, message):
    with pytest.raises(ValidationFailed, match=message.replace("(", r"\(")) as error:
        q.parse_filter(SCHEMA, raw)
    assert str(error.value).startswith("table 'products': ")


def test_too_many_conditions_are_refused():
    raw = {"and": [{"field": "qty", "op": "eq", "value": n} for n in range(q.MAX_CONDITIONS + 1)]}
    with pytest.raises(ValidationFailed, match="more than 100 conditions"):
        q.parse_filter(SCHEMA, raw)


def test_the_equalities_of_a_filter_become_one_containment_document():
    parse = lambda raw: q.containment(q.parse_filter(SCHEMA, raw))  # noqa: E731
    assert parse({"field": "status", "op": "eq", "value": "new"}) == ({"status": "new"}, True)
    assert parse(
        {"and": [{"field": "status", "op": "eq", "value": "new"},
                 {"field": "qty", "op": "eq", "value": 2}]}
    ) == ({"status": "new", "qty": 2}, True)  # fmt: skip
    assert parse(
        {"and": [{"field": "status", "op": "eq", "value": "new"},
                 {"field": "qty", "op": "gt", "value": 2}]}
    ) == ({"status": "new"}, False)  # fmt: skip
    # Under OR no single equality holds for every row; json equality is not containment.
    assert parse(
        {"or": [{"field": "status", "op": "eq", "value": "new"},
                {"field": "qty", "op": "eq", "value": 2}]}
    ) == (None, False)  # fmt: skip
    assert parse({"field": "meta", "op": "eq", "value": {"a": 1}}) == (None, False)


# --- Sorting and pages ---------------------------------------------------------------------


def test_sorts():
    assert q.parse_sort(SCHEMA, None) == q.Sort(q.ID)
    assert q.parse_sort(SCHEMA, None, search=True) == q.Sort(q.RANK, True)
    assert q.parse_sort(SCHEMA, "-price") == q.Sort(SCHEMA.by_name["price"], True)
    with pytest.raises(ValidationFailed, match="a json field cannot be sorted by"):
        q.parse_sort(SCHEMA, "meta")
    with pytest.raises(ValidationFailed, match="sorts the results of a search"):
        q.parse_sort(SCHEMA, "-rank")
    with pytest.raises(ValidationFailed, match="sort by 'weight' is not a field"):
        q.parse_sort(SCHEMA, "weight")


def test_a_cursor_carries_the_sort_value_and_id_and_only_fits_its_own_sort():
    by_price = q.parse_sort(SCHEMA, "-price")
    cursor = q.encode_cursor(by_price, Decimal("12.5"), 41)
    assert q.decode_cursor(SCHEMA, by_price, cursor) == (Decimal("12.5"), 41)
    assert q.decode_cursor(SCHEMA, by_price, q.encode_cursor(by_price, None, 7)) == (None, 7)
    with pytest.raises(ValidationFailed, match="not a cursor of this query"):
        q.decode_cursor(SCHEMA, q.parse_sort(SCHEMA, "price"), cursor)
    with pytest.raises(ValidationFailed, match="not a cursor of this query"):
        q.decode_cursor(SCHEMA, by_price, "garbage!")


def test_a_plain_page_reads_the_table_under_the_policy():
    query = q.Query(5, 9, q.parse_filter(SCHEMA, {"field": "qty", "op": "gt", "value": 1}),
                    q.parse_sort(SCHEMA, "-price"), 51, (Decimal("3.5"), 40))  # fmt: skip
    assert query.select() == (
        "SELECT q.id, q.data, q.version, q.created_at, q.updated_at, q.sort_key FROM "
        "(SELECT g.id, g.data, g.version, g.created_at, g.updated_at, "
        "((g.data ->> %s)::numeric) AS sort_key FROM app.generic_data AS g "
        "WHERE g.project_id = %s AND g.table_id = %s AND g.is_deleted = false "
        "AND (((g.data ->> %s)::numeric) > %s::numeric)) AS q "
        "WHERE (q.sort_key < %s::numeric OR (q.sort_key = %s::numeric AND q.id < %s)) "
        "ORDER BY q.sort_key DESC NULLS FIRST, q.id DESC LIMIT %s",
        ["price", 5, 9, "qty", 1, Decimal("3.5"), Decimal("3.5"), 40, 51],
    )


def test_a_page_of_equalities_sorted_by_id_is_served_by_rows_containing():
    query = q.Query(5, 9, q.parse_filter(SCHEMA, {"field": "status", "op": "eq", "value": "new"}),
                    q.Sort(q.ID), 51, (None, 40))  # fmt: skip
    sql, params = query.select()
    assert (
        "FROM app.rows_containing(%s, %s, %s::jsonb, %s, %s, %s) AS c(id) CROSS JOIN LATERAL "
        "(SELECT * FROM app.generic_data AS g0 WHERE g0.id = c.id OFFSET 0) AS g "
        "WHERE g.project_id = %s AND g.table_id = %s AND g.is_deleted = false "
        "AND (g.data @> %s::jsonb)) AS q WHERE q.id > %s ORDER BY q.sort_key ASC, q.id ASC LIMIT %s"
    ) in sql
    assert params == [5, 9, '{"status":"new"}', 40, 51, False, 5, 9, '{"status":"new"}', 40, 51]
    assert query.count() == (
        "SELECT count(*) FROM app.rows_containing(%s, %s, %s::jsonb)",
        [5, 9, '{"status":"new"}'],
    )


def test_a_search_takes_its_candidates_from_search_rows_and_ranks_them():
    query = q.Query(5, 9, None, q.Sort(q.RANK, True), 11, None, "blue shirt")
    sql, params = query.select()
    assert sql.startswith(
        "SELECT q.id, q.data, q.version, q.created_at, q.updated_at, q.sort_key FROM "
        "(SELECT g.id, g.data, g.version, g.created_at, g.updated_at, "
        "ts_rank(to_tsvector('english'::regconfig, g.search_text), "
        "websearch_to_tsquery('english'::regconfig, %s)) AS sort_key "
        "FROM app.search_rows(%s, %s) AS c(id) CROSS JOIN LATERAL"
    )
    assert sql.endswith("ORDER BY q.sort_key DESC, q.id DESC LIMIT %s")
    assert params == ["blue shirt", 9, "blue shirt", 5, 9, 11]
    assert query.count() == ("SELECT count(*) FROM app.search_rows(%s, %s)", [9, "blue shirt"])


def test_equalities_and_more_probe_for_candidates_in_the_same_statement():
    parsed = q.parse_filter(
        SCHEMA,
        {"and": [{"field": "status", "op": "eq", "value": "new"},
                 {"field": "qty", "op": "gt", "value": 1}]},
    )  # fmt: skip
    query = q.Query(5, 9, parsed, q.Sort(q.ID), 51)
    probe = "SELECT c.id FROM app.rows_containing(%s, %s, %s::jsonb, NULL, %s, NULL) AS c(id)"
    assert query.probe() == (probe, [5, 9, '{"status":"new"}', q.MAX_CANDIDATES])
    where = (
        "g.project_id = %s AND g.table_id = %s AND g.is_deleted = false "
        "AND ((g.data @> %s::jsonb) AND (((g.data ->> %s)::numeric) > %s::numeric))"
    )
    where_params = [5, 9, '{"status":"new"}', "qty", 1]
    page = (
        "SELECT q.id, q.data, q.version, q.created_at, q.updated_at, q.sort_key FROM "
        "(SELECT g.id, g.data, g.version, g.created_at, g.updated_at, g.id AS sort_key FROM "
        "{source} WHERE {gate}" + where + ") AS q ORDER BY q.sort_key ASC, q.id ASC LIMIT %s"
    )
    by_id = (
        "c AS c(id) CROSS JOIN LATERAL "
        "(SELECT * FROM app.generic_data AS g0 WHERE g0.id = c.id OFFSET 0) AS g"
    )
    # The probe's ids read by id, or (its NULL: too many) the table, under the policy.
    assert query.select() == (
        f"WITH c AS MATERIALIZED ({probe}) "
        "SELECT u.id, u.data, u.version, u.created_at, u.updated_at, u.sort_key FROM (("
        + page.format(source=by_id, gate="")
        + ") UNION ALL ("
        + page.format(source="app.generic_data AS g", gate=q.TOO_MANY)
        + ")) AS u ORDER BY u.sort_key ASC, u.id ASC LIMIT %s",
        [5, 9, '{"status":"new"}', q.MAX_CANDIDATES, *where_params, 51, *where_params, 51, 51],
    )
    assert query.count() == (
        f"WITH c AS MATERIALIZED ({probe}) SELECT (SELECT count(*) FROM {by_id} WHERE {where})"
        f" + (SELECT count(*) FROM app.generic_data AS g WHERE {q.TOO_MANY}{where})",
        [5, 9, '{"status":"new"}', q.MAX_CANDIDATES, *where_params, *where_params],
    )
    # Candidates given: read by id, no probe.
    sql, params = dataclasses.replace(query, candidate_ids=(3, 4)).select()
    assert sql == page.format(
        source=by_id.replace("c AS c(id)", "unnest(%s::bigint[]) AS c(id)"), gate=""
    )
    assert params == [[3, 4], *where_params, 51]
    # A search or a page of equalities alone need no probe.
    assert q.Query(5, 9, None, q.Sort(q.RANK, True), 51, None, "x").probe() is None
    only_equal = q.parse_filter(SCHEMA, {"field": "status", "op": "eq", "value": "new"})
    assert q.Query(5, 9, only_equal, q.Sort(q.ID), 51).probe() is None


UNIQUE = parse_fields(
    "products",
    [
        {"name": "sku", "type": "text", "unique": True},
        {"name": "code", "type": "integer", "unique": True},
        {"name": "flag", "type": "boolean", "unique": True},
        {"name": "weight", "type": "decimal", "unique": True},
        {"name": "price", "type": "decimal"},
        {"name": "status", "type": "choice", "options": ["new", "sold"]},
    ],
    lambda name: None,
)


def test_an_equality_on_a_unique_field_names_its_value_as_the_side_table_holds_it():
    lookup = lambda raw: q.unique_lookup(q.parse_filter(UNIQUE, raw))  # noqa: E731
    assert lookup({"field": "sku", "op": "eq", "value": "A-1"}) == ("sku", "A-1")
    assert lookup({"field": "code", "op": "eq", "value": "7"}) == ("code", "7")
    assert lookup({"field": "flag", "op": "eq", "value": False}) == ("flag", "false")
    assert lookup(
        {"and": [{"field": "status", "op": "eq", "value": "new"},
                 {"field": "price", "op": "gt", "value": 1},
                 {"field": "sku", "op": "eq", "value": "A-1"}]}
    ) == ("sku", "A-1")  # fmt: skip
    # A decimal compares as a number (10.5 contains 10.50): no one text stands for it.
    assert lookup({"field": "weight", "op": "eq", "value": "10.5"}) is None
    # Not a condition every row must meet, or not an equality, or not a unique field.
    assert lookup(
        {"or": [{"field": "sku", "op": "eq", "value": "A-1"},
                {"field": "status", "op": "eq", "value": "new"}]}
    ) is None  # fmt: skip
    assert lookup({"and": [{"or": [{"field": "sku", "op": "eq", "value": "A-1"}]}]}) is None
    assert lookup({"field": "sku", "op": "ne", "value": "A-1"}) is None
    assert lookup({"field": "sku", "op": "in", "value": ["A-1"]}) is None
    assert lookup({"field": "status", "op": "eq", "value": "new"}) is None
    assert lookup({"field": "id", "op": "eq", "value": 3}) is None
    assert q.unique_lookup(None) is None


def test_a_unique_value_reads_its_one_row_by_id_under_the_policy():
    parsed = q.parse_filter(
        UNIQUE,
        {"and": [{"field": "sku", "op": "eq", "value": "A-1"},
                 {"field": "price", "op": "gt", "value": 0}]},
    )  # fmt: skip
    query = q.Query(5, 9, parsed, q.Sort(q.ID, True), 51, (None, 40))
    where = (
        "g.id = (SELECT app.unique_value_row(%s, %s, %s)) "
        "AND g.project_id + 0 = %s AND g.table_id + 0 = %s AND g.is_deleted = false "
        "AND ((g.data @> %s::jsonb) AND (((g.data ->> %s)::numeric) > %s::numeric))"
    )
    where_params = [9, "sku", "A-1", 5, 9, '{"sku":"A-1"}', "price", 0]
    assert query.probe() is None
    assert query.select() == (
        "SELECT q.id, q.data, q.version, q.created_at, q.updated_at, q.sort_key FROM "
        "(SELECT g.id, g.data, g.version, g.created_at, g.updated_at, g.id AS sort_key "
        f"FROM app.generic_data AS g WHERE {where}) AS q WHERE q.id < %s "
        "ORDER BY q.sort_key DESC, q.id DESC LIMIT %s",
        [*where_params, 40, 51],
    )
    assert query.count() == (
        f"SELECT count(*) FROM app.generic_data AS g WHERE {where}",
        where_params,
    )
    # The equality alone, sorted by id: the same one row, not app.rows_containing().
    alone = q.parse_filter(UNIQUE, {"field": "sku", "op": "eq", "value": "A-1"})
    sql, params = q.Query(5, 9, alone, q.Sort(q.ID), 51).select()
    assert (
        "FROM app.generic_data AS g WHERE g.id = (SELECT app.unique_value_row(%s, %s, %s)) AND"
        in sql
    )
    assert "rows_containing" not in sql
    assert params[:3] == [9, "sku", "A-1"]
    assert (
        q.Query(5, 9, alone, q.Sort(q.ID), 51)
        .count()[0]
        .startswith(
            "SELECT count(*) FROM app.generic_data AS g WHERE g.id = (SELECT app.unique_value_row("
        )
    )
    # A search, or candidates given, keep their own source; a decimal keeps containment.
    searched = q.Query(5, 9, alone, q.Sort(q.RANK, True), 51, None, "x").select()[0]
    assert "unique_value_row" not in searched and "app.search_rows" in searched
    given = dataclasses.replace(query, candidate_ids=(3,)).select()[0]
    assert "unique_value_row" not in given and "unnest(%s::bigint[])" in given
    weight = q.parse_filter(UNIQUE, {"field": "weight", "op": "eq", "value": "10.5"})
    assert "app.rows_containing(" in q.Query(5, 9, weight, q.Sort(q.ID), 51).select()[0]
