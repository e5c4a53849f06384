"""The query language of user tables: filters, sorting, keyset pages, full-text search.

A filter is JSON, checked against the table's fields before any SQL exists:

    {"field": "price", "op": "gte", "value": 10}
    {"and": [<filter>, ...]}            {"or": [<filter>, ...]}

Operators, by field type (`id`, the row's id, can be filtered as an integer too):

    eq, ne, in (a list), isnull (true/false)   every type ('is_null' is refused: isnull)
    lt, lte, gt, gte                           integer, decimal, date, datetime, text, email, url
    contains                                   text, email, url (case-insensitive substring),
                                               json (JSON containment)

Comparisons are typed: numbers as numeric, dates as date, datetimes as timestamptz,
text as text. `ne` is also true where the field has no value. Field names are looked
up in the definition and values always travel as query parameters; the SQL text is
made only of the fixed fragments below.

A sort is "field" or "-field" (descending), "id" by default, "-rank" (relevance, the
default of a search). Rows without a value come last in ascending order and first in
descending order, and the row id breaks ties, so a page ends at a well-defined row and
the next page starts after it (`after`, an opaque cursor): keyset pagination.

Where the runtime role's plan could not use a GIN index (row level security: see
generic_data/migrations/0003), candidate ids come from a SECURITY DEFINER function:
app.search_rows() for a search, app.rows_containing() for the equalities of a filter
(together a jsonb containment document), app.unique_value_row() for an equality on a
unique field (its one row, through app.generic_data_unique: generic_data/migrations/0011).
The rows are then read as the runtime role by id, and every condition is applied again,
under the tenant policy (see Query).

Everything here is pure: a Query in, SQL text and parameters out (services.py runs it).
"""

import base64
import binascii
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Union

from generic_data.schema import (
    MAX_ROW_ID,
    Field,
    FieldError,
    InvalidValue,
    Schema,
    ValidationFailed,
    _describe,
    dumps,
    json_shape,
    loads,
    text_problem,
)

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "isnull")
# Other spellings clients try, refused with the right one named.
OPERATOR_SPELLINGS = {"is_null": "isnull", "null": "isnull", "neq": "ne", "=": "eq"}
_ALL = ("eq", "ne", "in", "isnull")
_ORDERED = ("lt", "lte", "gt", "gte")
OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "text": (*_ALL, *_ORDERED, "contains"),
    "email": (*_ALL, *_ORDERED, "contains"),
    "url": (*_ALL, *_ORDERED, "contains"),
    "choice": _ALL,
    "integer": (*_ALL, *_ORDERED),
    "decimal": (*_ALL, *_ORDERED),
    "date": (*_ALL, *_ORDERED),
    "datetime": (*_ALL, *_ORDERED),
    "boolean": ("eq", "ne", "isnull"),
    "reference": _ALL,
    "json": ("eq", "ne", "isnull", "contains"),
}
# The SQL type a field's value is compared and sorted as; text-like fields stay text.
CASTS = {
    "integer": "numeric",
    "decimal": "numeric",
    "date": "date",
    "datetime": "timestamptz",
    "boolean": "boolean",
    "reference": "bigint",
}
COMPARISONS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
SORTABLE = ("text", "email", "url", "choice", "integer", "decimal", "date", "datetime", "boolean")
# Bounds of a query's input, each refused with a 400 naming it (README, Limits).
MAX_IN_VALUES = 1000  # values of one `in` list
MAX_CONDITIONS = 100  # conditions of a filter, all levels together
MAX_FILTER_DEPTH = 8  # and/or inside each other
MAX_FILTER_SIZE = 100_000  # characters of a filter as JSON, all values together
MAX_FILTER_VALUE_LENGTH = 1000  # characters of one text value in a filter
MAX_SEARCH_LENGTH = 1000  # characters of a full-text search
# A cursor carries the sort value of a page's last row, which can be a long text.
MAX_CURSOR_LENGTH = 1_500_000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
# Candidate ids worth reading one by one; past this, scanning the table is cheaper.
MAX_CANDIDATES = 1000
# The table's branch of a probed statement runs only if the probe found too many ids.
TOO_MANY = "EXISTS (SELECT FROM c WHERE c.id IS NULL) AND "

# The row's own id, filterable and sortable like an integer field.
ID = Field("id", "integer")
# Relevance of a full-text search, as PostgreSQL ranks it.
RANK = "rank"

SEARCH_CONFIG = "'english'::regconfig"
RANK_SQL = (
    f"ts_rank(to_tsvector({SEARCH_CONFIG}, g.search_text), "
    f"websearch_to_tsquery({SEARCH_CONFIG}, %s))"
)
COLUMNS = "g.id, g.data, g.version, g.created_at, g.updated_at"


# --- The filter tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str
    value: Any


@dataclass(frozen=True)
class Junction:
    kind: str  # "and" or "or"
    children: tuple["Node", ...]


Node = Union[Condition, Junction]  # noqa: UP007 (a forward reference)


def _invalid(schema: Schema, message: str) -> ValidationFailed:
    return ValidationFailed(schema.table, [FieldError(message)])


def parse_filter(schema: Schema, raw: Any) -> Node | None:
    """The filter `raw` checked against the table's fields; None for no filter."""
    if raw is None or raw == {}:
        return None
    size = json_shape(raw)[1]
    if size > MAX_FILTER_SIZE:
        raise _invalid(
            schema, f"filter: about {size} characters as JSON, more than {MAX_FILTER_SIZE}"
        )
    counter = [0]
    return _parse_node(schema, raw, "filter", counter, 0)


def _parse_node(schema: Schema, raw: Any, where: str, counter: list[int], depth: int) -> Node:
    if not isinstance(raw, dict):
        raise _invalid(schema, f"{where}: expected an object, got {_describe(raw)}")
    junctions = [key for key in ("and", "or") if key in raw]
    if junctions:
        kind = junctions[0]
        if len(raw) != 1:
            raise _invalid(schema, f"{where}: an '{kind}' object has no other keys")
        if depth >= MAX_FILTER_DEPTH:
            raise _invalid(
                schema, f"{where}: and/or nested more than {MAX_FILTER_DEPTH} levels deep"
            )
        items = raw[kind]
        if not isinstance(items, list) or not items:
            raise _invalid(schema, f"{where}.{kind}: expected a non-empty list of filters")
        if len(items) > MAX_CONDITIONS:
            raise _invalid(schema, f"filter: more than {MAX_CONDITIONS} conditions")
        children = tuple(
            _parse_node(schema, item, f"{where}.{kind}[{n}]", counter, depth + 1)
            for n, item in enumerate(items)
        )
        return Junction(kind, children)
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _invalid(schema, f"filter: more than {MAX_CONDITIONS} conditions")
    unknown = set(raw) - {"field", "op", "value"}
    if unknown or "field" not in raw:
        raise _invalid(
            schema,
            f"{where}: expected {{'field': ..., 'op': ..., 'value': ...}}, "
            "{'and': [...]} or {'or': [...]}",
        )
    return parse_condition(schema, raw["field"], raw.get("op", "eq"), raw.get("value"))


def parse_condition(schema: Schema, name: Any, op: Any, value: Any) -> Condition:
    """One condition: the field must exist, the operator suit its type, the value its type."""
    field = ID if name == "id" else schema.field(name, "filter on")
    allowed = ("eq", "ne", "in", *_ORDERED) if field is ID else OPERATORS_BY_TYPE[field.type]
    if op not in allowed:
        if isinstance(op, str) and op in OPERATOR_SPELLINGS:
            reason = f"operator {op!r} is spelled {OPERATOR_SPELLINGS[op]!r}"
        elif op in OPERATORS:
            reason = f"operator {_describe(op)} does not apply to a {field.type} field"
        else:
            reason = f"{_describe(op)} is not an operator"
        raise ValidationFailed(
            schema.table,
            [FieldError(f"{reason} (use {', '.join(allowed)})", field.name)],
        )
    try:
        return Condition(field, op, _filter_value(field, op, value))
    except InvalidValue as error:
        raise ValidationFailed(
            schema.table, [FieldError(f"filter {op}: {error}", field.name)]
        ) from None


def _filter_value(field: Field, op: str, value: Any) -> Any:
    if op == "isnull":
        if not isinstance(value, bool):
            raise InvalidValue(f"expected true or false, got {_describe(value)}")
        return value
    if op == "in":
        if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
            raise InvalidValue(f"expected a list of at most {MAX_IN_VALUES} values")
        return tuple(_one_value(field, item) for item in value)
    if op == "contains" and field.type != "json":
        if not isinstance(value, str) or not value:
            raise InvalidValue(f"expected some text, got {_describe(value)}")
        return _bounded_text(value)
    if value is None:
        raise InvalidValue("a value is needed (to test for no value, use isnull)")
    return _one_value(field, value)


def _bounded_text(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise InvalidValue(problem)
    if len(text) > MAX_FILTER_VALUE_LENGTH:
        raise InvalidValue(
            f"is {len(text)} characters long; a filter's text is at most "
            f"{MAX_FILTER_VALUE_LENGTH}"
        )
    return text


def _one_value(field: Field, value: Any) -> Any:
    """A value compared with the field: of its type, a text of bounded length, and an id
    within bigint's range."""
    coerced = field.coerce(value)
    if isinstance(coerced, str):
        _bounded_text(coerced)
    if field is ID and not -MAX_ROW_ID <= coerced <= MAX_ROW_ID:
        raise InvalidValue(f"{_describe(coerced)} is beyond the range of row ids")
    return coerced


# --- Sorting and cursors --------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    key: Field | str  # a field, ID, or RANK
    descending: bool = False

    @property
    def spec(self) -> str:
        name = self.key if isinstance(self.key, str) else self.key.name
        return f"-{name}" if self.descending else name


def parse_sort(schema: Schema, raw: Any, *, search: bool = False) -> Sort:
    """'price', '-price', 'id', '-rank'; the default is id, or relevance for a search."""
    if raw in (None, ""):
        return Sort(RANK, descending=True) if search else Sort(ID)
    if not isinstance(raw, str):
        raise _invalid(schema, f"sort: expected a field name, got {_describe(raw)}")
    descending = raw.startswith("-")
    name = raw.removeprefix("-")
    if name == RANK:
        if not search or not descending:
            raise _invalid(schema, "sort: '-rank' sorts the results of a search, best first")
        return Sort(RANK, True)
    if name == "id":
        return Sort(ID, descending)
    field = schema.field(name, "sort by")
    if field.type not in SORTABLE:
        raise ValidationFailed(
            schema.table, [FieldError(f"a {field.type} field cannot be sorted by", field.name)]
        )
    return Sort(field, descending)


def sort_value(sort: Sort, row_id: int, data: dict[str, Any], rank: float | None) -> Any:
    """The value a row has for the sort: what the next page's cursor starts after."""
    if sort.key == RANK:
        return rank
    if sort.key is ID:
        return row_id
    return data.get(sort.key.name)


def encode_cursor(sort: Sort, value: Any, row_id: int) -> str:
    payload = dumps({"s": sort.spec, "v": value, "i": row_id})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(schema: Schema, sort: Sort, cursor: str) -> tuple[Any, int]:
    """The (sort value, row id) a cursor carries; a cursor of another sort is refused."""
    bad = _invalid(schema, "after: not a cursor of this query (use next_cursor of a page)")
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, UnicodeError, json.JSONDecodeError, ValueError, RecursionError):
        raise bad from None
    if not isinstance(payload, dict) or payload.get("s") != sort.spec:
        raise bad
    row_id, value = payload.get("i"), payload.get("v")
    if isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 < row_id <= MAX_ROW_ID:
        raise bad
    try:
        if sort.key == RANK:
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise bad
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise bad
        elif value is not None:
            value = sort.key.coerce(value)
            if sort.key is ID and not 0 < value <= MAX_ROW_ID:
                raise bad
    except (InvalidValue, OverflowError):
        raise bad from None
    return value, row_id


# --- SQL ----------------------------------------------------------------------------------


def field_sql(field: Field) -> tuple[str, list[Any]]:
    """The field's value in row g, as the SQL type it compares as."""
    if field is ID:
        return "g.id", []
    cast = CASTS.get(field.type)
    if cast is None:
        return "(g.data ->> %s)", [field.name]
    return f"((g.data ->> %s)::{cast})", [field.name]


def _typed_param(field: Field) -> str:
    if field is ID:
        return "%s::bigint"
    return f"%s::{CASTS.get(field.type, 'text')}"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def condition_sql(condition: Condition) -> tuple[str, list[Any]]:
    field, op, value = condition.field, condition.op, condition.value
    if field is ID:
        if op == "in":
            return "g.id = ANY(%s::bigint[])", [list(value)]
        operator = {"eq": "=", "ne": "<>", **COMPARISONS}[op]
        return f"g.id {operator} %s::bigint", [value]
    if op == "isnull":
        return f"(g.data ->> %s) IS {'' if value else 'NOT '}NULL", [field.name]
    if op in ("eq", "ne"):
        if field.type == "json":
            # Whole-value equality; a json field's containment is `contains`.
            operator = "IS NOT DISTINCT FROM" if op == "eq" else "IS DISTINCT FROM"
            return f"(g.data -> %s) {operator} %s::jsonb", [field.name, dumps(value)]
        test = "g.data @> %s::jsonb"
        return (test if op == "eq" else f"NOT ({test})"), [dumps({field.name: value})]
    if op == "in":
        if not value:
            return "false", []
        return "(g.data -> %s) = ANY(%s::jsonb[])", [field.name, [dumps(v) for v in value]]
    if op == "contains":
        if field.type == "json":
            return "(g.data -> %s) @> %s::jsonb", [field.name, dumps(value)]
        return "(g.data ->> %s) ILIKE %s", [field.name, f"%{_escape_like(value)}%"]
    expression, params = field_sql(field)
    return f"{expression} {COMPARISONS[op]} {_typed_param(field)}", [*params, value]


def filter_sql(node: Node) -> tuple[str, list[Any]]:
    if isinstance(node, Condition):
        return condition_sql(node)
    parts, params = [], []
    for child in node.children:
        text, child_params = filter_sql(child)
        parts.append(f"({text})")
        params += child_params
    return f" {node.kind.upper()} ".join(parts), params


def containment(node: Node | None) -> tuple[dict[str, Any] | None, bool]:
    """The filter's equalities on scalar fields as one jsonb document, and whether they
    are the whole filter. Only equalities every row must satisfy (a condition, or the
    conditions of a top-level AND) can narrow the candidates."""
    if node is None:
        return None, False
    conditions = [node] if isinstance(node, Condition) else []
    if isinstance(node, Junction) and node.kind == "and":
        conditions = list(node.children)
    document: dict[str, Any] = {}
    for condition in conditions:
        if (
            isinstance(condition, Condition)
            and condition.op == "eq"
            and condition.field is not ID
            and condition.field.type != "json"
            and condition.field.name not in document
        ):
            document[condition.field.name] = condition.value
    if not document:
        return None, False
    whole = len(document) == len(conditions) and (
        isinstance(node, Condition) or len(conditions) == len(node.children)
    )
    return document, whole


def unique_lookup(node: Node | None) -> tuple[str, str] | None:
    """(field, value as text) of an equality on a unique field that every row must satisfy
    (as in containment()), its value's text exactly as app.generic_data_unique holds it
    (`data ->> field`, generic_data/migrations/0004), or None.

    A text (every text-like, choice, date and datetime value), a boolean or an integer
    only: a containment of one of these matches exactly the rows whose `data ->> field` is
    that text. A decimal is compared as a number (10.5 contains 10.50), which one text
    cannot stand for, so it keeps the containment's path."""
    if node is None:
        return None
    conditions = [node] if isinstance(node, Condition) else []
    if isinstance(node, Junction) and node.kind == "and":
        conditions = list(node.children)
    for condition in conditions:
        if not (
            isinstance(condition, Condition)
            and condition.op == "eq"
            and condition.field is not ID
            and condition.field.unique
        ):
            continue
        value = condition.value
        if isinstance(value, bool):
            return condition.field.name, "true" if value else "false"
        if isinstance(value, int | str):
            return condition.field.name, str(value)
    return None


@dataclass(frozen=True)
class Query:
    """A query of one user table's rows, checked; `select()` and `count()` render it.

    How the rows are found, by what the query is:
    - a search: candidates from app.search_rows() (idx_generic_data_search);
    - a filter with an equality on a unique field (unique_lookup()): its one row, by id
      from app.unique_value_row() (generic_data_unique_pkey, then generic_data_pkey);
    - a filter of equalities only, sorted by id: the page itself from
      app.rows_containing() (idx_generic_data_jsonb for a rare value, an ordered scan
      for a common one: generic_data/migrations/0007 and 0009);
    - a filter with equalities and more: the ids of probe() (at most MAX_CANDIDATES),
      which select() and count() run in the same statement, else the table; or
      `candidate_ids`, when given;
    - anything else: the table, under the tenant policy.
    Candidates are always read back by id as the runtime role, every condition applied.
    """

    project_id: int
    table_id: int
    filter: Node | None = None
    sort: Sort = Sort(ID)
    limit: int = DEFAULT_LIMIT
    after: tuple[Any, int] | None = None  # (sort value, row id) of the previous page's end
    search: str | None = None
    candidate_ids: tuple[int, ...] | None = None

    def probe(self) -> tuple[str, list[Any]] | None:
        """The ids matching the filter's equalities if there are at most MAX_CANDIDATES
        of them (reading them by id then beats scanning the table), in no particular
        order, else one NULL; select() and count() run it as their CTE `c`."""
        document, whole = containment(self.filter)
        if self.search is not None or document is None or (whole and self.sort.key is ID):
            return None
        if self._unique() is not None:
            return None
        # p_descending NULL: the function's candidate mode, which can answer "too many"
        # from a glance at the table instead of finding MAX_CANDIDATES + 1 rows.
        return (
            "SELECT c.id FROM app.rows_containing(%s, %s, %s::jsonb, NULL, %s, NULL) AS c(id)",
            [self.project_id, self.table_id, dumps(document), MAX_CANDIDATES],
        )

    def _unique(self) -> tuple[str, str] | None:
        """The unique field's equality that finds the query's one row (see
        unique_lookup()), when the rows come from no search or given candidates."""
        if self.search is not None or self.candidate_ids is not None:
            return None
        return unique_lookup(self.filter)

    def _source(self, *, page: bool, probed: bool = False) -> tuple[str, list[Any]]:
        """The FROM clause and its parameters; `probed`: the ids of the statement's
        probe (the CTE `c`, see select())."""
        document, whole = containment(self.filter)
        if self.search is not None:
            candidates, params = "app.search_rows(%s, %s)", [self.table_id, self.search]
        elif self._unique() is not None:
            # The row's id is an index condition of generic_data_pkey (see _where()).
            return "app.generic_data AS g", []
        elif page and whole and self.sort.key is ID:
            after = self.after[1] if self.after else None
            candidates = "app.rows_containing(%s, %s, %s::jsonb, %s, %s, %s)"
            params = [self.project_id, self.table_id, dumps(document), after, self.limit]
            params.append(self.sort.descending)
        elif probed:
            candidates, params = "c", []
        elif self.candidate_ids is not None:
            candidates, params = "unnest(%s::bigint[])", [list(self.candidate_ids)]
        else:
            return "app.generic_data AS g", []
        # Each candidate is read by id as the runtime role (the tenant policy applies
        # again); OFFSET 0 keeps the planner from trading the id lookups for a scan.
        source = (
            f"{candidates} AS c(id) CROSS JOIN LATERAL "
            "(SELECT * FROM app.generic_data AS g0 WHERE g0.id = c.id OFFSET 0) AS g"
        )
        return source, params

    def _where(self) -> tuple[str, list[Any]]:
        where = "g.project_id = %s AND g.table_id = %s AND g.is_deleted = false"
        params: list[Any] = [self.project_id, self.table_id]
        unique = self._unique()
        if unique is not None:
            # The row by generic_data_pkey. A subquery (an InitPlan, run once): called as
            # an expression, the STABLE function would also run while the statement is
            # planned, for an estimate. The scope compared outside any index: the planner
            # takes its columns for independent, estimates the table at one row, and
            # would read all of it through idx_generic_data_composite, the id a filter.
            where = (
                "g.id = (SELECT app.unique_value_row(%s, %s, %s)) AND g.project_id + 0 = %s "
                "AND g.table_id + 0 = %s AND g.is_deleted = false"
            )
            params = [self.table_id, *unique, *params]
        if self.filter is not None:
            text, filter_params = filter_sql(self.filter)
            where += f" AND ({text})"
            params += filter_params
        return where, params

    def _sort_sql(self) -> tuple[str, list[Any]]:
        if self.sort.key == RANK:
            return RANK_SQL, [self.search]
        return field_sql(self.sort.key)

    def _probed(self) -> tuple[str, list[Any]] | None:
        """The statement's probe as a CTE, when the query has one and no candidates yet."""
        probe = self.probe() if self.candidate_ids is None else None
        if probe is None:
            return None
        return f"WITH c AS MATERIALIZED ({probe[0]}) ", probe[1]

    def _order(self, alias: str) -> str:
        direction = "DESC" if self.sort.descending else "ASC"
        nulls = ""
        if self.sort.key not in (ID, RANK):
            nulls = " NULLS FIRST" if self.sort.descending else " NULLS LAST"
        return f"ORDER BY {alias}.sort_key {direction}{nulls}, {alias}.id {direction} LIMIT %s"

    def select(self) -> tuple[str, list[Any]]:
        """The page: id, data, version, created_at, updated_at, sort_key of each row.

        With a probe (equalities and more): one statement, the probe's ids (a CTE, run
        once) read by id, or the table when the probe answers "too many" (its NULL, which
        reads no row by id); only one of the two branches finds rows.
        """
        probed = self._probed()
        if probed is None:
            return self._page(probed=False)
        cte, cte_params = probed
        candidates, candidate_params = self._page(probed=True)
        table, table_params = self._page(probed=False, gate=TOO_MANY)
        text = (
            f"{cte}SELECT u.id, u.data, u.version, u.created_at, u.updated_at, u.sort_key "
            f"FROM (({candidates}) UNION ALL ({table})) AS u {self._order('u')}"
        )
        return text, [*cte_params, *candidate_params, *table_params, self.limit]

    def _page(self, *, probed: bool, gate: str = "") -> tuple[str, list[Any]]:
        source, source_params = self._source(page=True, probed=probed)
        where, where_params = self._where()
        key, key_params = self._sort_sql()
        inner = f"SELECT {COLUMNS}, {key} AS sort_key FROM {source} WHERE {gate}{where}"
        outer_where, outer_params = self._keyset()
        text = (
            f"SELECT q.id, q.data, q.version, q.created_at, q.updated_at, q.sort_key "
            f"FROM ({inner}) AS q{outer_where} {self._order('q')}"
        )
        params = [*key_params, *source_params, *where_params, *outer_params, self.limit]
        return text, params

    def _keyset(self) -> tuple[str, list[Any]]:
        """The rows after the cursor, in the order of the sort (nulls last ascending)."""
        if self.after is None:
            return "", []
        value, row_id = self.after
        if self.sort.key is ID:
            return (" WHERE q.id < %s" if self.sort.descending else " WHERE q.id > %s"), [row_id]
        param = "%s::real" if self.sort.key == RANK else _typed_param(self.sort.key)
        if self.sort.descending:
            if value is None:
                return " WHERE (q.sort_key IS NOT NULL OR q.id < %s)", [row_id]
            return (
                f" WHERE (q.sort_key < {param} OR (q.sort_key = {param} AND q.id < %s))",
                [value, value, row_id],
            )
        if value is None:
            return " WHERE (q.sort_key IS NULL AND q.id > %s)", [row_id]
        return (
            f" WHERE (q.sort_key > {param} OR (q.sort_key = {param} AND q.id > %s) "
            "OR q.sort_key IS NULL)",
            [value, value, row_id],
        )

    def count(self) -> tuple[str, list[Any]]:
        """How many rows match, all pages together."""
        document, whole = containment(self.filter)
        if self.search is not None and self.filter is None:
            return "SELECT count(*) FROM app.search_rows(%s, %s)", [self.table_id, self.search]
        if self.search is None and whole and self._unique() is None:
            return (
                "SELECT count(*) FROM app.rows_containing(%s, %s, %s::jsonb)",
                [self.project_id, self.table_id, dumps(document)],
            )
        where, where_params = self._where()
        probed = self._probed()
        if probed is None:
            source, params = self._source(page=False)
            return f"SELECT count(*) FROM {source} WHERE {where}", [*params, *where_params]
        cte, cte_params = probed
        candidates, _ = self._source(page=False, probed=True)
        text = (
            f"{cte}SELECT (SELECT count(*) FROM {candidates} WHERE {where}) + "
            f"(SELECT count(*) FROM app.generic_data AS g WHERE {TOO_MANY}{where})"
        )
        return text, [*cte_params, *where_params, *where_params]
