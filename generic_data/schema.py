"""Field definitions of user tables, and the validation of their rows' values.

A user table's definition is core.table_metadata.fields: a JSON list of fields, each
{"name": ..., "type": ..., "required": bool, "unique": bool} plus the options of its
type. `parse_fields()` checks a definition written by a user and returns it in that
canonical form; `Schema.validate()` checks and normalises rows against it. Every
problem is collected, named (row, field, reason) and reported at once.

Values are stored normalised, so that equal values are equal in jsonb: decimals
without trailing zeros (12.50 -> 12.5), datetimes in UTC, e-mail addresses in lower
case. Decimals travel as JSON numbers (`dumps`, `loads`), never as floats.
"""

import datetime
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

FIELD_TYPES = (
    "text",
    "integer",
    "decimal",
    "boolean",
    "date",
    "datetime",
    "email",
    "url",
    "choice",
    "json",
    "reference",
)
# What each type accepts beyond name/type/required/unique/default.
TYPE_OPTIONS: dict[str, tuple[str, ...]] = {
    "text": ("max_length",),
    "integer": ("min", "max"),
    "decimal": ("min", "max"),
    "boolean": (),
    "date": ("min", "max"),
    "datetime": ("min", "max"),
    "email": ("max_length",),
    "url": ("max_length",),
    "choice": ("options",),
    "json": (),
    "reference": ("to",),
}
COMMON_KEYS = ("name", "type", "required", "unique", "default")
DEFAULT_MAX_LENGTH = {"email": 254, "url": 2048}
# A unique value is a key of app.generic_data_unique's primary key (a btree entry is at
# most ~2700 bytes; 500 characters of UTF-8 stay below it).
MAX_UNIQUE_LENGTH = 500
MAX_TEXT_LENGTH = 1_000_000
MAX_FIELDS = 200
# Every text, number and boolean of a row goes into its search document (search_text)
# and PostgreSQL's tsvector of it, which holds at most 1 MB: a row's texts together may
# take this many bytes of UTF-8 (the database's own refusal is caught as well).
MAX_SEARCHABLE_BYTES = 1_000_000
# Digits of a number (integer or decimal, as written without exponent): more is no
# business value, and thousands of digits cost time in every comparison.
MAX_NUMBER_DIGITS = 100
# Nesting of a json field's value (objects and lists inside each other).
MAX_JSON_DEPTH = 32
# Row ids and references are PostgreSQL bigints.
MAX_ROW_ID = 2**63 - 1
NOT_UNIQUE_TYPES = ("json",)

FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
TABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")
# Names a row's JSON representation uses beside its data.
RESERVED_NAMES = frozenset({"id"})

_url_validator = URLValidator(schemes=["http", "https"])


# --- Errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One problem: with the row (1-based position in a request) and the field it is in."""

    message: str
    field: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, Any]:
        found = {"row": self.row, "field": self.field, "message": self.message}
        return {key: value for key, value in found.items() if value is not None}


class ValidationFailed(ValueError):
    """Values (or a definition) did not validate; `errors` names every problem."""

    def __init__(self, table: str, errors: list[FieldError]) -> None:
        self.table = table
        self.errors = errors
        super().__init__(f"table '{table}': " + "; ".join(str(error) for error in errors))


class InvalidValue(ValueError):
    """A single value's problem; the caller adds the row and the field."""


# --- JSON with exact decimals -------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """A finite decimal as a JSON number, without exponent or trailing zeros."""
    if not value.is_finite():
        raise InvalidValue(f"expected a finite number, got {value}")
    text = format(value, "f")  # exact: normalize() would round to the context's 28 digits
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0") else text


def dumps(value: Any) -> str:
    """JSON text of `value`, decimals as exact JSON numbers (json.dumps refuses Decimal)."""
    text = json.dumps(_jsonable(value), ensure_ascii=False, separators=(",", ":"), default=_mark)
    if _MARK_ESCAPED in text:
        text = _MARKED.sub(r"\1", text)
    return text


def loads(text: str) -> Any:
    """Parse JSON, numbers with a fraction as Decimal (exact, as jsonb stores them)."""
    return json.loads(text, parse_float=Decimal)


class _ExactDecimal:
    """A decimal that no float carries exactly (more than ~15 significant digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


# json.dumps can only write a str quoted, so an exact decimal goes through as a marked
# string and loses its quotes afterwards. The mark starts with NUL, which no stored
# string can contain (jsonb refuses \u0000, and validation refuses it earlier).
_MARK = "\x00hzm-decimal:"
_MARK_ESCAPED = "\\u0000hzm-decimal:"
_MARKED = re.compile(r'"\\u0000hzm-decimal:(-?[0-9]+(?:\.[0-9]+)?)"')


def _mark(value: Any) -> str:
    if isinstance(value, _ExactDecimal):
        return _MARK + value.text
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _jsonable(value: Any) -> Any:
    """Decimals as ints or floats where those are exact, else as _ExactDecimal; dates and
    datetimes in ISO 8601."""
    if isinstance(value, Decimal):
        text = decimal_text(value)
        if "." not in text:
            return int(text)
        as_float = float(text)
        return as_float if repr(as_float) == text else _ExactDecimal(text)
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime.date):  # created_at and the like, in the API's output
        return value.isoformat()
    return value


# --- Values of each type ------------------------------------------------------------------


def _describe(value: Any) -> str:
    """How an error message shows a value the user gave: 'abc', 12, true, null."""
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    if isinstance(value, int) and value.bit_length() > 256:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, Decimal) and number_problem(value):
        return f"a number of more than {MAX_NUMBER_DIGITS} digits"
    return str(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored or searched (NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    if _SURROGATE.search(text):
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None


def _no_nul(text: str) -> str:
    problem = text_problem(text)
    if problem is not None:
        raise InvalidValue(problem)
    return text


def number_problem(value: Any) -> str | None:
    """Why a number is refused (more than MAX_NUMBER_DIGITS digits), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        digits = len(str(abs(value))) if value.bit_length() < 1000 else MAX_NUMBER_DIGITS + 1
    elif isinstance(value, Decimal) and value.is_finite():
        sign_digits, exponent = value.as_tuple()[1:]
        count = len(sign_digits)
        digits = max(count, count + exponent, -exponent) if isinstance(exponent, int) else 0
    else:
        return None
    if digits > MAX_NUMBER_DIGITS:
        return f"has more than {MAX_NUMBER_DIGITS} digits"
    return None


def _bounded_number(value: Any) -> Any:
    problem = number_problem(value)
    if problem is not None:
        raise InvalidValue(problem)
    return value


def json_shape(value: Any) -> tuple[int, int]:
    """(nesting depth, approximate size in characters) of a JSON value, measured without
    recursion, so that any depth can be measured and refused."""
    depth, size = 0, 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        depth = max(depth, level)
        if isinstance(item, dict):
            size += 2
            for key, inner in item.items():
                size += len(key) + 3 if isinstance(key, str) else 3
                stack.append((inner, level + 1))
        elif isinstance(item, list | tuple):
            size += 2
            for inner in item:
                size += 1
                stack.append((inner, level + 1))
        elif isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, int) and not isinstance(item, bool):
            size += item.bit_length() // 3 + 1
        else:
            size += 8
    return depth, size


def searchable_bytes(values: dict[str, Any]) -> int:
    """Bytes of UTF-8 a row's values put into its search document (app.jsonb_to_text)."""
    total = 0
    stack = list(values.values())
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item.encode("utf-8", "surrogatepass")) + 1
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif item is not None:
            total += 8
    return total


def _coerce_text(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"expected text, got {_describe(value)}")
    return _no_nul(value)


def _coerce_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidValue(f"expected an integer, got {_describe(value)}")
    if isinstance(value, int):
        return _bounded_number(value)
    if isinstance(value, Decimal | float) and math.isfinite(value):
        _bounded_number(Decimal(repr(value)) if isinstance(value, float) else value)
        if value == int(value):
            return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]{1,30}\s*", value):
        return int(value)
    raise InvalidValue(f"expected an integer, got {_describe(value)}")


_DECIMAL_TEXT = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*")


def _coerce_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise InvalidValue(f"expected a decimal, got {_describe(value)}")
    try:
        if isinstance(value, int | Decimal):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
            number = Decimal(value.strip())
        else:
            raise InvalidValue(f"expected a decimal, got {_describe(value)}")
    except InvalidOperation:
        raise InvalidValue(f"expected a decimal, got {_describe(value)}") from None
    if not number.is_finite():
        raise InvalidValue(f"expected a decimal, got {_describe(value)}")
    _bounded_number(number)
    return Decimal(decimal_text(number))


def _coerce_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidValue(f"expected true or false, got {_describe(value)}")


def _coerce_date(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        raise InvalidValue(f"expected a date (YYYY-MM-DD), got {_describe(str(value))}")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise InvalidValue(f"expected a date (YYYY-MM-DD), got {_describe(value)}")


def _coerce_datetime(value: Any) -> str:
    """An ISO 8601 date and time in UTC ('2024-05-01T10:00:00Z'); naive values are UTC."""
    moment = None
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ].+", value):
        try:
            moment = datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    if moment is None:
        raise InvalidValue(f"expected a date and time (ISO 8601), got {_describe(value)}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    try:
        in_utc = moment.astimezone(datetime.UTC)
    except OverflowError:
        raise InvalidValue(
            f"{_describe(value)} is outside the calendar (years 1 to 9999) in UTC"
        ) from None
    return in_utc.isoformat().replace("+00:00", "Z")


def _coerce_email(value: Any) -> str:
    text = _coerce_text(value).strip().lower()
    try:
        validate_email(text)
    except ValidationError:
        raise InvalidValue(f"expected an e-mail address, got {_describe(value)}") from None
    return text


def _coerce_url(value: Any) -> str:
    text = _coerce_text(value).strip()
    try:
        _url_validator(text)
    except ValidationError:
        raise InvalidValue(f"expected an http(s) URL, got {_describe(value)}") from None
    return text


def _coerce_json(value: Any) -> Any:
    depth, _size = json_shape(value)
    if depth > MAX_JSON_DEPTH:
        raise InvalidValue(f"is nested {depth} levels deep, more than {MAX_JSON_DEPTH}")
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise InvalidValue(f"expected JSON, got a key {_describe(key)}")
                _no_nul(key)
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float | Decimal) and not math.isfinite(item):
            raise InvalidValue("expected JSON, got a number JSON cannot hold")
        elif isinstance(item, int | float | Decimal) and not isinstance(item, bool):
            _bounded_number(Decimal(repr(item)) if isinstance(item, float) else item)
        elif item is not None and not isinstance(item, bool):
            raise InvalidValue(f"expected JSON, got a {type(item).__name__}")
    return value


def _coerce_reference(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidValue(f"expected the id of a row, got {_describe(value)}")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,18}", value):
            raise InvalidValue(f"expected the id of a row, got {_describe(value)}")
        value = int(value)
    if not 0 < value <= MAX_ROW_ID:  # row ids are positive bigints
        raise InvalidValue(f"expected the id of a row, got {_describe(value)}")
    return value


COERCE: dict[str, Callable[[Any], Any]] = {
    "text": _coerce_text,
    "integer": _coerce_integer,
    "decimal": _coerce_decimal,
    "boolean": _coerce_boolean,
    "date": _coerce_date,
    "datetime": _coerce_datetime,
    "email": _coerce_email,
    "url": _coerce_url,
    "choice": _coerce_text,
    "json": _coerce_json,
    "reference": _coerce_reference,
}


# --- Fields ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a user table, in canonical form."""

    name: str
    type: str
    required: bool = False
    unique: bool = False
    default: Any = None
    max_length: int | None = None
    min: Any = None
    max: Any = None
    options: tuple[str, ...] = ()
    to_table_id: int | None = None

    def coerce(self, value: Any) -> Any:
        """The value converted to this field's type (no constraint checked): for filters."""
        return COERCE[self.type](value)

    def clean(self, value: Any) -> Any:
        """The value converted and checked against every constraint of the field."""
        value = self.coerce(value)
        if self.max_length is not None and len(value) > self.max_length:
            raise InvalidValue(
                f"is {len(value)} characters long, longer than max_length {self.max_length}"
            )
        if self.min is not None and self._ordered(value) < self._ordered(self.min):
            raise InvalidValue(f"must be at least {self._show(self.min)}, got {self._show(value)}")
        if self.max is not None and self._ordered(value) > self._ordered(self.max):
            raise InvalidValue(f"must be at most {self._show(self.max)}, got {self._show(value)}")
        if self.type == "choice" and value not in self.options:
            allowed = ", ".join(repr(option) for option in self.options)
            raise InvalidValue(f"must be one of {allowed}, got {_describe(value)}")
        return value

    def _ordered(self, value: Any) -> Any:
        # Dates and UTC datetimes are compared as the moments they name.
        if self.type == "datetime":
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    def _show(self, value: Any) -> str:
        return str(value) if isinstance(value, int | Decimal) else _describe(value)

    def to_json(self) -> dict[str, Any]:
        """The stored form: decimals as strings, since core.table_metadata.fields is read
        and written by Django's JSONField, which knows no Decimal."""
        stored: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "unique": self.unique,
        }
        for key in ("default", "min", "max"):
            value = getattr(self, key)
            if value is not None:
                stored[key] = decimal_text(value) if isinstance(value, Decimal) else value
        if self.max_length is not None:
            stored["max_length"] = self.max_length
        if self.options:
            stored["options"] = list(self.options)
        if self.to_table_id is not None:
            stored["to_table_id"] = self.to_table_id
        return stored


def parse_field(
    raw: Any, position: int, resolve_table: Callable[[str], int | None]
) -> tuple[Field | None, list[FieldError]]:
    """Check one field definition a user wrote; (the field, []) or (None, its problems).

    `resolve_table` turns a reference's target table name into its id (None: no such
    table in the project).
    """
    where = f"field {position}"
    if not isinstance(raw, dict):
        return None, [FieldError(f"{where}: expected an object, got {_describe(raw)}")]
    name = raw.get("name")
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        return None, [
            FieldError(
                f"{where}: name {_describe(name)} is not a valid field name (lower-case "
                "letters, digits and '_', starting with a letter, at most 63 characters)"
            )
        ]
    errors: list[FieldError] = []

    def problem(message: str) -> None:
        errors.append(FieldError(message, field=name))

    if name in RESERVED_NAMES:
        problem(f"'{name}' is reserved")
    kind = raw.get("type")
    if kind not in FIELD_TYPES:
        problem(f"type {_describe(kind)} is not one of {', '.join(FIELD_TYPES)}")
        return None, errors
    allowed = (*COMMON_KEYS, *TYPE_OPTIONS[kind])
    for key in raw:
        if key not in allowed:
            problem(f"type {kind} has no option {key!r} (it has {', '.join(allowed)})")
    flags = {}
    for flag in ("required", "unique"):
        flags[flag] = raw.get(flag, False)
        if not isinstance(flags[flag], bool):
            problem(f"{flag} must be true or false, got {_describe(flags[flag])}")
            flags[flag] = False
    if flags["unique"] and kind in NOT_UNIQUE_TYPES:
        problem(f"a {kind} field cannot be unique")

    options: dict[str, Any] = {}
    if "max_length" in TYPE_OPTIONS[kind]:
        max_length = raw.get("max_length", DEFAULT_MAX_LENGTH.get(kind))
        if max_length is None and flags["unique"]:
            max_length = MAX_UNIQUE_LENGTH
        if max_length is not None:
            limit = MAX_UNIQUE_LENGTH if flags["unique"] else MAX_TEXT_LENGTH
            if isinstance(max_length, bool) or not isinstance(max_length, int):
                problem(f"max_length must be an integer, got {_describe(max_length)}")
            elif not 1 <= max_length <= limit:
                unique = " for a unique field" if flags["unique"] else ""
                problem(f"max_length must be between 1 and {limit}{unique}, got {max_length}")
            else:
                options["max_length"] = max_length
    for bound in ("min", "max"):
        if bound in raw and bound in TYPE_OPTIONS[kind]:
            try:
                options[bound] = COERCE[kind](raw[bound])
            except InvalidValue as error:
                problem(f"{bound}: {error}")
    if "min" in options and "max" in options:
        probe = Field(name, kind)
        if probe._ordered(options["min"]) > probe._ordered(options["max"]):
            problem(f"min {_describe(raw['min'])} is greater than max {_describe(raw['max'])}")
    if kind == "choice":
        choices = raw.get("options")
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(choice, str) and choice for choice in choices)
        ):
            problem("a choice field needs options: a non-empty list of non-empty strings")
        elif len(set(choices)) != len(choices):
            problem("options repeat a value")
        elif any(text_problem(choice) for choice in choices):
            problem(f"an option {next(filter(None, map(text_problem, choices)))}")
        else:
            options["options"] = tuple(choices)
    if kind == "reference":
        target = raw.get("to")
        if not isinstance(target, str) or not TABLE_NAME.match(target):
            problem(f"a reference field needs 'to': the name of a table, got {_describe(target)}")
        else:
            options["to_table_id"] = resolve_table(target)
            if options["to_table_id"] is None:
                problem(f"'to' names no table of this project: {target!r}")
        if "default" in raw:
            problem("a reference field cannot have a default")
    if errors:
        return None, errors

    field_ = Field(name, kind, required=flags["required"], unique=flags["unique"], **options)
    if raw.get("default") is not None:
        try:
            field_ = Field(**{**field_.__dict__, "default": field_.clean(raw["default"])})
        except InvalidValue as error:
            return None, [FieldError(f"default: {error}", field=name)]
    return field_, []


def field_from_json(stored: dict[str, Any]) -> Field:
    """A field as core.table_metadata stores it (trusted: written by parse_field, or by hand
    with at least a name and a type)."""
    kind = stored["type"]
    values: dict[str, Any] = {"name": stored["name"], "type": kind}
    values["required"] = stored.get("required") is True
    values["unique"] = stored.get("unique") is True
    for key in ("default", "min", "max"):
        if stored.get(key) is not None:
            values[key] = COERCE[kind](stored[key])
    if stored.get("max_length") is not None:
        values["max_length"] = int(stored["max_length"])
    if stored.get("options"):
        values["options"] = tuple(stored["options"])
    if stored.get("to_table_id") is not None:
        values["to_table_id"] = int(stored["to_table_id"])
    return Field(**values)


# --- A table's schema ------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """The fields of one user table, and the validation of its rows."""

    table: str
    fields: tuple[Field, ...]
    by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @classmethod
    def from_json(cls, table: str, stored: Any) -> "Schema":
        return cls(table, tuple(field_from_json(item) for item in stored or []))

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.fields]

    def field(self, name: Any, what: str = "field") -> Field:
        """The field called `name`; an unknown name is a ValidationFailed naming the table."""
        found = self.by_name.get(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(self.by_name) or "none"
            raise ValidationFailed(
                self.table,
                [FieldError(f"{what} {_describe(name)} is not a field (fields: {known})")],
            )
        return found

    @property
    def unique_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.unique)

    @property
    def reference_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.type == "reference")

    def validate(
        self, rows: Iterable[Any], *, partial: bool = False, numbered: bool = True
    ) -> list[dict[str, Any]]:
        """Normalised copies of `rows`, or ValidationFailed naming every problem (check())."""
        cleaned, errors = self.check(rows, partial=partial, numbered=numbered)
        if errors:
            raise ValidationFailed(self.table, errors)
        return cleaned

    def check(
        self, rows: Iterable[Any], *, partial: bool = False, numbered: bool = True
    ) -> tuple[list[dict[str, Any]], list[FieldError]]:
        """Normalised copies of `rows` (without the values that failed), and the problems.

        A full row gets its fields' defaults and must have every required field; a
        partial one (the changes of an update) is checked only for what it names.
        A null value means "no value": dropped from a full row, kept (as None) in a
        partial one, where it removes the value. `numbered` puts the row's 1-based
        position into the errors (for a list of rows).
        """
        cleaned, errors = [], []
        for position, row in enumerate(rows, start=1):
            number = position if numbered else None
            if not isinstance(row, dict):
                errors.append(FieldError(f"expected an object, got {_describe(row)}", row=number))
                cleaned.append({})
                continue
            values: dict[str, Any] = {}
            failed: set[str] = set()
            for name, value in row.items():
                found = self.by_name.get(name)
                if found is None:
                    errors.append(FieldError("is not a field of this table", name, number))
                    continue
                if value is None:
                    values[name] = None
                    continue
                try:
                    values[name] = found.clean(value)
                except InvalidValue as error:
                    errors.append(FieldError(str(error), name, number))
                    failed.add(name)
            if partial:
                # An update may leave a required field out, but not clear it.
                required = [f for f in self.fields if f.required and f.name in values]
            else:
                for found in self.fields:
                    if values.get(found.name) is None and found.default is not None:
                        values[found.name] = found.default
                required = [f for f in self.fields if f.required]
            for found in required:
                if values.get(found.name) is None and found.name not in failed:
                    errors.append(FieldError("is required", found.name, number))
            if not partial:
                too_large = searchable_problem(values, number)
                if too_large is not None:
                    errors.append(too_large)
            cleaned.append(values if partial else _without_nulls(values))
        return cleaned, errors


def searchable_problem(values: dict[str, Any], row: int | None = None) -> FieldError | None:
    """The error of a row whose texts are too large for its search document, or None."""
    size = searchable_bytes(values)
    if size <= MAX_SEARCHABLE_BYTES:
        return None
    largest = max(values, key=lambda name: searchable_bytes({name: values[name]}))
    return FieldError(
        f"the row's texts take {size} bytes, more than the {MAX_SEARCHABLE_BYTES} its search "
        "index can hold (this field is the largest)",
        largest,
        row,
    )


def _without_nulls(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def parse_fields(table: str, raw: Any, resolve_table: Callable[[str], int | None]) -> Schema:
    """A user's definition of a table's fields, checked; ValidationFailed names every problem."""
    if not isinstance(raw, list):
        raise ValidationFailed(
            table, [FieldError(f"fields: expected a list, got {_describe(raw)}")]
        )
    if len(raw) > MAX_FIELDS:
        raise ValidationFailed(
            table, [FieldError(f"fields: {len(raw)} fields, more than the {MAX_FIELDS} allowed")]
        )
    fields_, errors, seen = [], [], set()
    for position, item in enumerate(raw, start=1):
        parsed, problems = parse_field(item, position, resolve_table)
        errors += problems
        if parsed is None:
            continue
        if parsed.name in seen:
            errors.append(FieldError("is defined twice", parsed.name))
        seen.add(parsed.name)
        fields_.append(parsed)
    if errors:
        raise ValidationFailed(table, errors)
    return Schema(table, tuple(fields_))


def check_table_name(name: Any) -> str:
    if not isinstance(name, str) or not TABLE_NAME.match(name):
        raise ValidationFailed(
            str(name),
            [
                FieldError(
                    f"table name {_describe(name)} is not valid: lower-case letters, digits "
                    "and '_', starting with a letter, at most 63 characters"
                )
            ],
        )
    return name
