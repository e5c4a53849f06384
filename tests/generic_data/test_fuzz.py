"""Bad input as classes, not cases: generated garbage (hypothesis) thrown at the filter
parser, the value validators and the HTTP endpoints. A refusal must be the documented
one (ValidationFailed / InvalidValue; a 4xx JSON answer), never another exception and
never a 5xx. Bounded by max_examples, so the whole file runs in well under a minute."""

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generic_data import query as q
from generic_data.schema import (
    FIELD_TYPES,
    Field,
    InvalidValue,
    Schema,
    ValidationFailed,
    dumps,
    text_problem,
)
from tests.generic_data.test_api import Api, issue_key

FIELDS = [
    Field("title", "text"),
    Field("n", "integer"),
    Field("price", "decimal"),
    Field("ok", "boolean"),
    Field("day", "date"),
    Field("at", "datetime"),
    Field("mail", "email"),
    Field("link", "url"),
    Field("kind", "choice", options=("a", "b")),
    Field("doc", "json"),
    Field("ref", "reference", to_table_id=1),
]
SCHEMA = Schema("things", tuple(FIELDS))
NAMES = [f.name for f in FIELDS]

# Strings of every kind: any code point (lone surrogates and NUL included), and the ones
# the audit found.
nasty_text = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfff",
        "9" * 400,
        "1e999999",
        "-0",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+14:00",
        "2024-02-30",
        "",
        " ",
        "x" * 2000,
    ]
)
texts = st.text(alphabet=st.characters(codec=None, categories=None), max_size=30) | nasty_text
numbers = (
    st.integers(min_value=-(10**300), max_value=10**300)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.sampled_from([Decimal("1E+999999"), Decimal("1E-999999"), Decimal("-0.0"), 2**63])
)  # no floats: JSON from a client is parsed with exact decimals (hzm.api.parse_json)
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _condition(value: Any) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "field": st.sampled_from([*NAMES, "id", "nope"]) | texts,
            "op": st.sampled_from([*q.OPERATORS, "is_null", "like"]) | json_values,
        },
        optional={"value": value},
    )


filters = st.recursive(
    _condition(json_values) | json_values,
    lambda inner: st.dictionaries(
        st.sampled_from(["and", "or", "not"]), st.lists(inner, max_size=3), min_size=1, max_size=2
    ),
    max_leaves=10,
) | st.sampled_from([deep(500), {"and": [deep(300)]}])


# --- The filter parser -----------------------------------------------------------------------


@settings(max_examples=400, deadline=None, database=None)
@given(raw=filters, sort=st.none() | texts | st.sampled_from(["-price", "rank", "-rank", "id"]),
       cursor=st.none() | texts | json_values)  # fmt: skip
def test_the_filter_parser_refuses_garbage_only_with_validation_failed(raw, sort, cursor):
    try:
        node = q.parse_filter(SCHEMA, raw)
        if node is not None:
            sql, params = q.filter_sql(node)
            assert isinstance(sql, str)
            dumps(params)  # every parameter can be sent
            for param in params:
                if isinstance(param, str):
                    assert text_problem(param) is None
    except ValidationFailed as error:
        assert error.errors and str(error)
    try:
        order = q.parse_sort(SCHEMA, sort, search=False)
        if cursor is not None:
            q.decode_cursor(SCHEMA, order, cursor)
    except ValidationFailed:
        pass


# --- The value validators ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(kind=st.sampled_from(FIELD_TYPES), value=json_values)
def test_a_value_is_stored_normalised_or_refused_with_invalid_value(kind, value):
    field = next(f for f in FIELDS if f.type == kind)
    try:
        cleaned = field.clean(value)
    except InvalidValue as error:
        assert str(error)
        return
    # What is accepted can be written to jsonb and read back as the same value.
    text = dumps({field.name: cleaned})
    text.encode("utf-8")
    assert "\\u0000" not in text
    assert field.coerce(json.loads(text, parse_float=Decimal)[field.name]) == cleaned


@settings(max_examples=150, deadline=None, database=None)
@given(rows=st.lists(st.dictionaries(st.sampled_from([*NAMES, "x"]) | texts, json_values,
                                     max_size=5) | json_values, max_size=4))  # fmt: skip
def test_rows_are_checked_without_any_other_exception(rows):
    cleaned, errors = SCHEMA.check(rows)
    assert len(cleaned) == len(rows)
    for error in errors:
        assert error.message


# --- The HTTP endpoints ------------------------------------------------------------------------

FIELD_DEFINITIONS = [
    {"name": "title", "type": "text"},
    {"name": "n", "type": "integer"},
    {"name": "price", "type": "decimal"},
    {"name": "at", "type": "datetime"},
    {"name": "doc", "type": "json"},
    {"name": "kind", "type": "choice", "options": ["a", "b"]},
    {"name": "code", "type": "text", "unique": True},
]


@pytest.fixture
def api(project) -> Api:
    api = Api(project.pk, issue_key(project))
    response = api.call("post", body={"name": "things", "fields": FIELD_DEFINITIONS})
    assert response.status_code == 201, response.content
    created = api.call("post", "things/rows/", {"rows": [{"title": "a", "n": 1}, {"n": 2}]})
    assert created.status_code == 201
    api.row_ids = created.json_body["ids"]
    return api


def client_json(value: Any) -> str:
    """JSON as a client may send it: decimals as written (1E+999999 too), lone surrogates
    as escapes."""
    text = json.dumps(value, default=lambda d: f"@@{d}@@")
    return re.sub(r'"@@([^@]+)@@"', r"\1", text)


def _answer(api: Api, method: str, path: str, body: Any) -> Any:
    response = api.client.generic(
        method,
        api.base + path,
        client_json(body),
        content_type="application/json",
        headers=api.headers,
    )
    assert response.status_code < 500, (method, path, body, response.content[:500])
    if response.content:
        assert response["Content-Type"] == "application/json"
        json.loads(response.content)
    return response


bodies = st.dictionaries(
    st.sampled_from(["data", "rows", "version", "filter", "sort", "limit", "after", "count",
                     "search", "add", "rename", "remove", "name", "expected_version"]) | texts,
    json_values | filters,
    max_size=4,
) | st.fixed_dictionaries({"data": st.dictionaries(st.sampled_from(
    [f["name"] for f in FIELD_DEFINITIONS]) | texts, json_values, max_size=4)},
    optional={"version": json_values})  # fmt: skip


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, target=st.sampled_from(["rows", "row", "query", "table"]))
def test_the_endpoints_answer_garbage_with_4xx_json_never_5xx(api, body, target):
    method, path = {
        "rows": ("POST", "things/rows/"),
        "row": ("PATCH", f"things/rows/{api.row_ids[0]}/"),
        "query": ("POST", "things/rows/query/"),
        "table": ("PATCH", "things/"),
    }[target]
    if target == "table" and "name" in body:
        body = {**body, "name": "things"}  # a renamed table would end the other examples
    _answer(api, method, path, body)


query_values = st.text(
    alphabet=st.characters(codec="utf-8", categories=None), max_size=40
) | nasty_text.filter(lambda t: "\ud800" not in t and "\udfff" not in t)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.dictionaries(
        st.sampled_from(["filter", "sort", "limit", "after", "count", "q", "search",
                         "n__gt", "title__contains", "id__in", "at__lt", "price", "x__isnull"])
        | query_values,
        query_values,
        max_size=4,
    ),
    path=st.sampled_from(["things/rows/", "things/search/", "things/", "things/rows/1/"]),
)  # fmt: skip
def test_query_strings_of_garbage_are_4xx_json_never_5xx(api, query, path):
    response = Client().get(api.base + path, data=query, headers=api.headers)
    assert response.status_code < 500, (path, query, response.content[:500])
    assert response["Content-Type"] == "application/json"
