"""The generic data API's request and response bodies, as pydantic models: what
/api/v1/openapi.json says about them (generic_data/views.py uses them).

The models check the envelope: which keys a body has (any other is refused, naming
it), and their JSON types. A table's field definitions, a filter and a row's values are
checked by generic_data.schema and generic_data.query, whose errors name the row,
the field and the reason; their JSON Schemas here (FIELD_DEFINITION, FILTER) are made
from the same constants, so the document and the server say the same.
"""

from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema

from generic_data import query as q
from generic_data.schema import (
    COMMON_KEYS,
    FIELD_TYPES,
    MAX_FIELDS,
    MAX_ROW_ID,
    MAX_TEXT_LENGTH,
    TYPE_OPTIONS,
)

# Versions are PostgreSQL integers (hzm.db.columns.Versioned); projects' ids too.
MAX_INT = 2**31 - 1
# Rows of one bulk create; the body must also fit DATA_UPLOAD_MAX_MEMORY_SIZE.
MAX_ROWS_PER_REQUEST = 10_000
NAME_PATTERN = "^[a-z][a-z0-9_]{0,62}$"


def _ref(name: str) -> dict[str, str]:
    """A reference to a component; hzm.api.HzmApi writes it as a $ref once the document
    is made (pydantic would try to resolve a $ref among its own models)."""
    return {"x-component": name}


_OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": NAME_PATTERN},
    "type": {"enum": list(FIELD_TYPES)},
    "required": {"type": "boolean", "default": False},
    "unique": {"type": "boolean", "default": False, "description": "not for json fields"},
    "default": {"description": "a value of the field's type (not for references)"},
    "max_length": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_TEXT_LENGTH,
        "description": "text, email, url (a unique field: at most 500)",
    },
    "min": {"description": "integer, decimal, date, datetime: the smallest value"},
    "max": {"description": "integer, decimal, date, datetime: the largest value"},
    "options": {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "uniqueItems": True,
        "description": "choice: the values it may take",
    },
    "to": {
        "type": "string",
        "pattern": NAME_PATTERN,
        "description": "reference: the table (of this project) whose rows it names",
    },
}
assert set(_OPTION_SCHEMAS) == {*COMMON_KEYS, *(o for opts in TYPE_OPTIONS.values() for o in opts)}

FIELD_DEFINITION: dict[str, Any] = {
    "type": "object",
    "title": "FieldDefinition",
    "description": "A field of a user table. Options by type: "
    + "; ".join(f"{kind}: {', '.join(opts) or 'none'}" for kind, opts in TYPE_OPTIONS.items()),
    "properties": _OPTION_SCHEMAS,
    "required": ["name", "type"],
    "additionalProperties": False,
}

FILTER: dict[str, Any] = {
    "title": "Filter",
    "description": (
        "A condition {field, op, value}, or {and: [...]} / {or: [...]} of filters. "
        f"Operators: {', '.join(q.OPERATORS)}. At most {q.MAX_CONDITIONS} conditions, "
        f"{q.MAX_FILTER_DEPTH} levels of and/or, {q.MAX_IN_VALUES} values in an `in` list, "
        f"{q.MAX_FILTER_VALUE_LENGTH} characters in a text value, {q.MAX_FILTER_SIZE} "
        "characters in all."
    ),
    "anyOf": [_ref("FilterCondition"), _ref("FilterAnd"), _ref("FilterOr")],
}
FILTER_CONDITION: dict[str, Any] = {
    "type": "object",
    "title": "FilterCondition",
    "properties": {
        "field": {"type": "string", "description": "a field of the table, or id"},
        "op": {"enum": list(q.OPERATORS), "default": "eq"},
        "value": {
            "description": "of the field's type; a list for in, true or false for isnull"
        },
    },
    "required": ["field"],
    "additionalProperties": False,
}


def _junction(kind: str) -> dict[str, Any]:
    return {
        "type": "object",
        "title": f"Filter{kind.capitalize()}",
        "properties": {
            kind: {
                "type": "array",
                "items": _ref("Filter"),
                "minItems": 1,
                "maxItems": q.MAX_CONDITIONS,
            }
        },
        "required": [kind],
        "additionalProperties": False,
    }


COMPONENTS = {
    "FieldDefinition": FIELD_DEFINITION,
    "Filter": FILTER,
    "FilterCondition": FILTER_CONDITION,
    "FilterAnd": _junction("and"),
    "FilterOr": _junction("or"),
}

# Checked by generic_data.schema / generic_data.query, described by the schemas above.
FieldDefinitions = Annotated[
    list[Any],
    WithJsonSchema({"type": "array", "items": _ref("FieldDefinition"), "maxItems": MAX_FIELDS}),
]
FilterValue = Annotated[Any, WithJsonSchema(_ref("Filter"))]
RowValues = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "description": "the row's values by field name; null removes a value",
            "additionalProperties": True,
        }
    ),
]
Version = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=MAX_INT,
        description="the version the change expects (optimistic concurrency): a stale one "
        "is 409 and nothing changes",
    ),
]
TableName = Annotated[str, Field(json_schema_extra={"pattern": NAME_PATTERN})]


class Body(Schema):
    model_config = ConfigDict(extra="forbid")


# --- Requests ----------------------------------------------------------------------------------


class TableCreate(Body):
    """Define a table: its name and its fields."""

    name: TableName
    fields: FieldDefinitions = []


class TableAlter(Body):
    """Change a table's definition; every part is optional, all happen together."""

    add: FieldDefinitions | None = None
    rename: dict[str, str] | None = Field(
        None, description="old field name -> new field name", max_length=MAX_FIELDS
    )
    remove: list[str] | None = Field(
        None, description="names of the fields to remove", max_length=MAX_FIELDS
    )
    name: TableName | None = Field(None, description="the table's new name")
    version: Version | None = None


class RowsCreate(Body):
    """One row ({"data": {...}}, answered with the row) or many ({"rows": [...]}, all or
    none, answered with their ids): exactly one of the two."""

    data: RowValues | None = None
    rows: list[RowValues] | None = Field(None, max_length=MAX_ROWS_PER_REQUEST)


class RowUpdate(Body):
    """Change some fields of a row (the others keep their values)."""

    data: RowValues
    version: Version | None = None


class RowQuery(Body):
    """A page of rows, the query as JSON (POST .../rows/query/)."""

    filter: FilterValue = None
    sort: str | None = Field(
        None, description='"field" or "-field" (descending); "id" by default, "-rank" '
        "(best match first) for a search", max_length=100,
    )  # fmt: skip
    limit: Annotated[StrictInt, Field(ge=1, le=q.MAX_LIMIT)] = q.DEFAULT_LIMIT
    after: str | None = Field(
        None, description="the previous page's next_cursor", max_length=q.MAX_CURSOR_LENGTH
    )
    count: StrictBool = Field(False, description="also count every matching row")
    search: str | None = Field(
        None,
        description="full-text search (English; words, \"a phrase\", or, -word)",
        min_length=1,
        max_length=q.MAX_SEARCH_LENGTH,
    )


# --- Responses ---------------------------------------------------------------------------------


class FieldOut(Schema):
    """A field as the table's definition holds it (options only where set)."""

    name: str
    type: str
    required: bool
    unique: bool
    default: Any = None
    max_length: int | None = None
    min: Any = None
    max: Any = None
    options: list[str] | None = None
    to: str | None = Field(None, description="a reference's table")


class TableOut(Schema):
    id: int
    project_id: int
    name: str
    physical_table_name: str
    fields: list[FieldOut]
    version: int | None
    created_at: Any = Field(json_schema_extra={"type": "string", "format": "date-time"})
    updated_at: Any = Field(json_schema_extra={"type": "string", "format": "date-time"})


class TableList(Schema):
    tables: list[TableOut]


class RowOut(Schema):
    id: Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
    data: dict[str, Any]
    version: int | None
    created_at: Any = Field(json_schema_extra={"type": "string", "format": "date-time"})
    updated_at: Any = Field(json_schema_extra={"type": "string", "format": "date-time"})


class Page(Schema):
    rows: list[RowOut]
    next_cursor: str | None = Field(
        description="pass as `after` for the next page; null on the last page"
    )
    count: int | None = Field(None, description="every matching row, when asked for")


class Created(Schema):
    created: int
    ids: list[int]
