"""Field definitions and value validation (generic_data.schema): pure, no database."""

import datetime
from decimal import Decimal

import pytest

from generic_data.schema import (
    FieldError,
    Schema,
    ValidationFailed,
    check_table_name,
    dumps,
    loads,
    parse_fields,
)

TABLES = {"customers": 7}


def resolve(name: str) -> int | None:
    return TABLES.get(name)


def schema(*fields: dict) -> Schema:
    return parse_fields("products", list(fields), resolve)


def messages(error: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [str(e) for e in error.value.errors]


# --- Definitions --------------------------------------------------------------------------


def test_a_definition_is_stored_in_canonical_form():
    products = schema(
        {"name": "title", "type": "text", "required": True, "max_length": 80},
        {"name": "sku", "type": "text", "unique": True},
        {"name": "price", "type": "decimal", "min": 0, "max": "1000.00"},
        {"name": "status", "type": "choice", "options": ["new", "sold"], "default": "new"},
        {"name": "customer", "type": "reference", "to": "customers"},
        {"name": "email", "type": "email"},
    )
    assert products.to_json() == [
        {"name": "title", "type": "text", "required": True, "unique": False, "max_length": 80},
        # A unique value is a btree key: its length is bounded.
        {"name": "sku", "type": "text", "required": False, "unique": True, "max_length": 500},
        # Decimals as strings: Django's JSONField stores core.table_metadata.fields.
        {"name": "price", "type": "decimal", "required": False, "unique": False, "min": "0",
         "max": "1000"},
        {"name": "status", "type": "choice", "required": False, "unique": False,
         "default": "new", "options": ["new", "sold"]},
        {"name": "customer", "type": "reference", "required": False, "unique": False,
         "to_table_id": 7},
        {"name": "email", "type": "email", "required": False, "unique": False, "max_length": 254},
    ]  # fmt: skip
    assert Schema.from_json("products", products.to_json()) == products


def test_every_problem_of_a_definition_is_named_at_once():
    with pytest.raises(ValidationFailed) as error:
        schema(
            {"name": "price", "type": "money"},
            {"name": "Bad Name", "type": "text"},
            {"name": "id", "type": "integer"},
            {"name": "status", "type": "choice"},
            {"name": "qty", "type": "integer", "min": 5, "max": 1, "max_length": 3},
            {"name": "owner", "type": "reference", "to": "nobody"},
            {"name": "meta", "type": "json", "unique": True},
            {"name": "code", "type": "text", "unique": True, "max_length": 5000},
            {"name": "day", "type": "date", "default": "yesterday"},
            {"name": "day", "type": "date"},
        )
    assert messages(error) == [
        "field 'price': type 'money' is not one of text, integer, decimal, boolean, date, "
        "datetime, email, url, choice, json, reference",
        "field 2: name 'Bad Name' is not a valid field name (lower-case letters, digits and "
        "'_', starting with a letter, at most 63 characters)",
        "field 'id': 'id' is reserved",
        "field 'status': a choice field needs options: a non-empty list of non-empty strings",
        "field 'qty': type integer has no option 'max_length' (it has name, type, required, "
        "unique, default, min, max)",
        "field 'qty': min 5 is greater than max 1",
        "field 'owner': 'to' names no table of this project: 'nobody'",
        "field 'meta': a json field cannot be unique",
        "field 'code': max_length must be between 1 and 500 for a unique field, got 5000",
        "field 'day': default: expected a date (YYYY-MM-DD), got 'yesterday'",
    ]
    assert str(error.value).startswith("table 'products': field 'price': type 'money'")


def test_a_field_defined_twice_is_refused():
    with pytest.raises(ValidationFailed, match="field 'a': is defined twice"):
        schema({"name": "a", "type": "text"}, {"name": "a", "type": "integer"})


@pytest.mark.parametrize("name", ["products", "t_1", "a" * 63])
def test_table_names(name):
    assert check_table_name(name) == name


@pytest.mark.parametrize("name", ["Products", "1st", "a-b", "a" * 64, "", None, "drop table"])
def test_bad_table_names(name):
    with pytest.raises(ValidationFailed, match="is not valid"):
        check_table_name(name)


# --- Values ---------------------------------------------------------------------------------

ALL_TYPES = schema(
    {"name": "title", "type": "text", "max_length": 10},
    {"name": "qty", "type": "integer", "min": 0, "max": 100},
    {"name": "price", "type": "decimal", "min": "0.01"},
    {"name": "paid", "type": "boolean"},
    {"name": "day", "type": "date", "max": "2030-12-31"},
    {"name": "at", "type": "datetime", "min": "2020-01-01T00:00:00Z"},
    {"name": "email", "type": "email"},
    {"name": "site", "type": "url"},
    {"name": "status", "type": "choice", "options": ["new", "sold"]},
    {"name": "meta", "type": "json"},
    {"name": "customer", "type": "reference", "to": "customers"},
)


def test_values_are_normalised():
    (row,) = ALL_TYPES.validate(
        [
            {
                "title": "Shirt",
                "qty": "42",
                "price": "12.50",
                "paid": "true",
                "day": datetime.date(2024, 5, 1),
                "at": "2024-05-01T12:00:00+02:00",
                "email": " Ann@Example.COM ",
                "site": "https://example.com/a",
                "status": "new",
                "meta": {"tags": ["a", 1.5]},
                "customer": "12",
            }
        ]
    )
    assert row == {
        "title": "Shirt",
        "qty": 42,
        "price": Decimal("12.5"),
        "paid": True,
        "day": "2024-05-01",
        "at": "2024-05-01T10:00:00Z",
        "email": "ann@example.com",
        "site": "https://example.com/a",
        "status": "new",
        "meta": {"tags": ["a", 1.5]},
        "customer": 12,
    }


def test_every_invalid_value_is_named_with_its_row_and_field():
    with pytest.raises(ValidationFailed) as error:
        ALL_TYPES.validate(
            [
                {"title": "ok"},
                {"title": "far too long", "qty": 1.5, "price": "abc", "paid": "yes"},
                {"day": "2031-01-01", "at": "2019-12-31T23:59:59Z", "email": "nope"},
                {"site": "ftp://x", "status": "lost", "customer": -3, "colour": "red"},
                "not a row",
                {"qty": 101, "price": "0", "meta": {"a": "\x00"}},
            ]
        )
    assert messages(error) == [
        "row 2, field 'title': is 12 characters long, longer than max_length 10",
        "row 2, field 'qty': expected an integer, got 1.5",
        "row 2, field 'price': expected a decimal, got 'abc'",
        "row 2, field 'paid': expected true or false, got 'yes'",
        "row 3, field 'day': must be at most '2030-12-31', got '2031-01-01'",
        "row 3, field 'at': must be at least '2020-01-01T00:00:00Z', got '2019-12-31T23:59:59Z'",
        "row 3, field 'email': expected an e-mail address, got 'nope'",
        "row 4, field 'site': expected an http(s) URL, got 'ftp://x'",
        "row 4, field 'status': must be one of 'new', 'sold', got 'lost'",
        "row 4, field 'customer': expected the id of a row, got -3",
        "row 4, field 'colour': is not a field of this table",
        "row 5: expected an object, got 'not a row'",
        "row 6, field 'qty': must be at most 100, got 101",
        "row 6, field 'price': must be at least 0.01, got 0",
        "row 6, field 'meta': contains a NUL character (\\u0000), which PostgreSQL cannot store",
    ]


def test_required_fields_and_defaults():
    products = schema(
        {"name": "title", "type": "text", "required": True},
        {"name": "status", "type": "choice", "options": ["new", "sold"], "default": "new",
         "required": True},
        {"name": "note", "type": "text"},
    )  # fmt: skip
    assert products.validate([{"title": "a", "note": None}]) == [{"title": "a", "status": "new"}]
    with pytest.raises(ValidationFailed) as error:
        products.validate([{"note": "x"}, {"title": None}])
    assert messages(error) == [
        "row 1, field 'title': is required",
        "row 2, field 'title': is required",
    ]
    # A partial row (an update) may leave a required field out, but not clear it.
    assert products.validate([{"note": None}], partial=True, numbered=False) == [{"note": None}]
    with pytest.raises(ValidationFailed) as error:
        products.validate([{"title": None}], partial=True, numbered=False)
    assert messages(error) == ["field 'title': is required"]


def test_a_bad_value_is_not_also_reported_missing():
    products = schema({"name": "qty", "type": "integer", "required": True})
    with pytest.raises(ValidationFailed) as error:
        products.validate([{"qty": "many"}])
    assert messages(error) == ["row 1, field 'qty': expected an integer, got 'many'"]


def test_booleans_are_not_numbers_and_numbers_are_not_text():
    with pytest.raises(ValidationFailed) as error:
        ALL_TYPES.validate([{"qty": True, "price": False, "title": 5, "customer": True}])
    assert messages(error) == [
        "row 1, field 'qty': expected an integer, got true",
        "row 1, field 'price': expected a decimal, got false",
        "row 1, field 'title': expected text, got 5",
        "row 1, field 'customer': expected the id of a row, got true",
    ]


def test_field_error_formats():
    assert str(FieldError("is required", "price", 3)) == "row 3, field 'price': is required"
    assert str(FieldError("is required", "price")) == "field 'price': is required"
    assert FieldError("bad", None, 2).as_dict() == {"row": 2, "message": "bad"}


# --- JSON with exact decimals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (Decimal("12.50"), "12.5"),
        (Decimal("100"), "100"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.00"), "0"),
        (Decimal("0.1000000000000000000001"), "0.1000000000000000000001"),
        (Decimal("123456789012345678901234567890.5"), "123456789012345678901234567890.5"),
        (Decimal("0.0000001"), "0.0000001"),
    ],
)
def test_decimals_are_written_as_exact_json_numbers(value, text):
    assert dumps({"price": value}) == '{"price":' + text + "}"
    assert loads(dumps(value)) == value


def test_strings_that_look_like_the_decimal_mark_stay_strings():
    tricky = "\\u0000hzm-decimal:5"
    assert loads(dumps({"a": tricky, "b": Decimal("0.1000000000000000000001")})) == {
        "a": tricky,
        "b": Decimal("0.1000000000000000000001"),
    }


def test_datetimes_are_written_in_iso_8601():
    moment = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)
    assert dumps({"at": moment}) == '{"at":"2024-05-01T10:00:00+00:00"}'
