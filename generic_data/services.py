"""The service API of generic data: user tables defined, and their rows written, read,
queried and searched.

Every function runs inside the caller's tenant context (hzm.db.context.tenant_context(),
which the HTTP API and TenantContextMiddleware open), that is as the runtime role:
row level security decides which projects, tables and rows exist, and a project or a
table of another tenant is simply not found. Without a context they refuse to run.

Tables are named within their project; a table's fields are checked by
generic_data.schema and its rows are validated and normalised against them. Writes
are atomic: when any row of a call is invalid, nothing is written, and every error
(row, field, reason) is reported at once.

Errors are exceptions with an HTTP status (`status`): ValidationFailed (400, from
generic_data.schema), LimitExceeded (403), NotFound (404) and Conflict (409).

    with tenant_context(tenant_id, user_id):
        define_table(project_id, "products", [{"name": "sku", "type": "text", "unique": True},
                                              {"name": "price", "type": "decimal"}])
        ids = create_rows(project_id, "products", [{"sku": "A-1", "price": "9.90"}])
        page = query_rows(project_id, "products",
                          filter={"field": "price", "op": "lt", "value": 10}, sort="-price")
        hits = query_rows(project_id, "products", search="blue shirt")
"""

import dataclasses
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, OperationalError, connection, transaction

from core.models import Project, TableMetadata, Tenant
from generic_data import query as q
from generic_data.schema import (
    FIELD_NAME,
    MAX_ROW_ID,
    MAX_SEARCHABLE_BYTES,
    RESERVED_NAMES,
    TABLE_NAME,
    Field,
    FieldError,
    Schema,
    ValidationFailed,
    _describe,
    check_table_name,
    decimal_text,
    dumps,
    loads,
    parse_field,
    parse_fields,
    searchable_bytes,
    searchable_problem,
    text_problem,
)
from hzm.db.context import TenantContextError, current_tenant

# Rows per INSERT statement of a bulk create: bounds the statement's memory.
INSERT_CHUNK = 5000
MAX_BULK_ROWS = 100_000
UNIQUE_CONSTRAINT = "generic_data_unique_pkey"
TABLE_NAME_CONSTRAINT = "unique_table_per_project"
PHYSICAL_NAME_CONSTRAINT = "table_metadata_physical_table_name_key"
# PostgreSQL's program_limit_exceeded: a row's tsvector over 1 MB, among others.
PROGRAM_LIMIT_EXCEEDED = "54000"


# --- Errors ---------------------------------------------------------------------------------


class ServiceError(Exception):
    """A request the data cannot satisfy; `status` is its HTTP status, `code` its name."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class LimitExceeded(ServiceError):
    status = 403
    code = "limit_exceeded"


# --- What the API returns ---------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    id: int
    project_id: int
    name: str
    physical_table_name: str
    schema: Schema
    version: int | None
    created_at: datetime | None
    updated_at: datetime | None

    def as_dict(self, table_names: dict[int, str] | None = None) -> dict[str, Any]:
        """JSON form; a reference names its target table (`to`) when `table_names` is given."""
        fields = []
        for stored in self.schema.to_json():
            target = stored.pop("to_table_id", None)
            if target is not None:
                stored["to"] = (table_names or {}).get(target)
            fields.append(stored)
        return {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "physical_table_name": self.physical_table_name,
            "fields": fields,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Row:
    id: int
    data: dict[str, Any]
    version: int | None
    created_at: datetime | None
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "data": self.data,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None  # pass as `after` for the next page; None on the last page
    count: int | None = None  # all matching rows, when asked for

    def as_dict(self) -> dict[str, Any]:
        page: dict[str, Any] = {
            "rows": [row.as_dict() for row in self.rows],
            "next_cursor": self.next_cursor,
        }
        if self.count is not None:
            page["count"] = self.count
        return page


# --- Helpers ------------------------------------------------------------------------------------


def _tenant() -> int:
    tenant = current_tenant()
    if tenant is None:
        raise TenantContextError(
            "generic data runs inside a tenant context: wrap the call in "
            "hzm.db.context.tenant_context(tenant_id, user_id)"
        )
    return tenant


def _fetchall(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def _execute(sql: str, params: Sequence[Any] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def _json(value: Any) -> Any:
    """A jsonb column's value (Django's connection hands jsonb over as text)."""
    return loads(value) if isinstance(value, str) else value


def _constraint(error: IntegrityError) -> tuple[str | None, str]:
    cause = error.__cause__
    if isinstance(cause, psycopg.Error) and cause.diag is not None:
        return cause.diag.constraint_name, cause.diag.message_detail or ""
    return None, ""


def _table_from(metadata: TableMetadata) -> Table:
    return Table(
        id=metadata.pk,
        project_id=metadata.project_id,
        name=metadata.table_name,
        physical_table_name=metadata.physical_table_name,
        schema=Schema.from_json(metadata.table_name, metadata.fields),
        version=metadata.version,
        created_at=metadata.created_at,
        updated_at=metadata.updated_at,
    )


def _not_found_table(project_id: int, name: str) -> NotFound:
    return NotFound(f"table '{name}' not found in project {project_id}")


def _live_tables(project_id: int) -> list[TableMetadata]:
    """The live tables of a live project (a deleted project's tables are gone with it)."""
    return list(
        TableMetadata.objects.filter(project_id=project_id, project__is_deleted=False).order_by(
            "table_name"
        )
    )


def _plausible_table(name: Any) -> bool:
    """Whether `name` can be a table's name at all (others are not looked up: a NUL or a
    lone surrogate could not even be sent to the database)."""
    return isinstance(name, str) and TABLE_NAME.match(name) is not None


def _plausible_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


def _stale(what: str, version: int | None, expected: int | None) -> Conflict | None:
    """The refusal of a change that expected another version (optimistic concurrency)."""
    if expected is None or version == expected:
        return None
    return Conflict(
        f"{what} has version {version}, not {expected}: it was changed since it was read",
        [FieldError(f"is {expected}, but the current version is {version}", "version")],
    )


def table_names(project_id: int) -> dict[int, str]:
    """The live tables of a project: id -> name."""
    return {t.pk: t.table_name for t in _live_tables(project_id)}


def _locked_table(project_id: int, name: str, *, for_update: bool = False) -> Table:
    """The live table, locked for the transaction.

    Writers of rows take FOR KEY SHARE: many may write at once, but not while the
    definition changes (alter and drop take FOR UPDATE), so a batch is validated
    against the definition it is stored under.
    """
    _tenant()
    if not _plausible_table(name) or not _plausible_id(project_id):
        raise _not_found_table(project_id, name)
    lock = "UPDATE" if for_update else "KEY SHARE"
    found = list(
        TableMetadata.objects.raw(
            'SELECT * FROM "core"."table_metadata" AS t WHERE t.project_id = %s '
            "AND t.table_name = %s AND t.is_deleted = false AND EXISTS (SELECT FROM "
            '"core"."projects" AS p WHERE p.id = t.project_id AND p.is_deleted = false) '
            f"FOR {lock} OF t",
            [project_id, name],
        )
    )
    metadata = found[0] if found else None
    if metadata is None:
        raise _not_found_table(project_id, name)
    return _table_from(metadata)


def _project(project_id: int, *, lock: bool = False) -> Project:
    if not _plausible_id(project_id):
        raise NotFound(f"project {project_id} not found")
    projects = Project.objects.filter(pk=project_id)
    project = (projects.select_for_update() if lock else projects).first()
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def _resolver(project_id: int, defining: str | None = None) -> Any:
    names = {name: table_id for table_id, name in table_names(project_id).items()}

    def resolve(name: str) -> int | None:
        # A table may refer to itself; its id is known once it exists (-1 until then).
        if name == defining and name not in names:
            return -1
        return names.get(name)

    return resolve


# --- Tables ------------------------------------------------------------------------------------


def list_tables(project_id: int) -> list[Table]:
    """The project's live tables, by name."""
    _tenant()
    _project(project_id)
    return [_table_from(t) for t in _live_tables(project_id)]


def get_table(project_id: int, name: str) -> Table:
    """The live table called `name` in the project (NotFound otherwise)."""
    _tenant()
    metadata = None
    if _plausible_table(name) and _plausible_id(project_id):
        metadata = TableMetadata.objects.filter(
            project_id=project_id, table_name=name, project__is_deleted=False
        ).first()
    if metadata is None:
        raise _not_found_table(project_id, name)
    return _table_from(metadata)


@transaction.atomic
def define_table(project_id: int, name: str, fields: Any) -> Table:
    """Create a user table in the project.

    `fields` is a list of field definitions (generic_data.schema): {"name", "type",
    "required", "unique", "default", and per type max_length, min, max, options, to}.
    The project's tenant limits the number of tables per project
    (core.tenants.max_tables_per_project). The physical table name is generated once,
    t_<tenant>_<project>_<random>, and never changes.
    """
    tenant = _tenant()
    check_table_name(name)
    project = _project(project_id, lock=True)  # serialises the count below per project
    schema = parse_fields(name, fields, _resolver(project_id, defining=name))
    limit = Tenant.objects.get(pk=tenant).max_tables_per_project
    existing = TableMetadata.objects.filter(project_id=project_id).count()
    if limit is not None and existing >= limit:
        raise LimitExceeded(
            f"project '{project.name}' has {existing} tables, the most its tenant's plan "
            f"allows (max_tables_per_project = {limit})"
        )
    if name in table_names(project_id).values():
        raise Conflict(f"table '{name}' already exists in project {project_id}")
    for _attempt in range(3):
        physical = f"t_{tenant}_{project_id}_{secrets.token_hex(4)}"
        try:
            with transaction.atomic():
                metadata = TableMetadata.objects.create(
                    tenant_id=tenant,
                    project_id=project_id,
                    table_name=name,
                    physical_table_name=physical,
                    fields=schema.to_json(),
                )
            break
        except IntegrityError as error:
            constraint, _detail = _constraint(error)
            if constraint == TABLE_NAME_CONSTRAINT:
                raise Conflict(f"table '{name}' already exists in project {project_id}") from None
            if constraint != PHYSICAL_NAME_CONSTRAINT:
                raise
    else:  # pragma: no cover - three random 32-bit collisions in a row
        raise Conflict(f"could not generate a unique physical name for table '{name}'")
    if any(f.to_table_id == -1 for f in schema.fields):
        metadata.fields = [
            {**stored, "to_table_id": metadata.pk} if stored.get("to_table_id") == -1 else stored
            for stored in schema.to_json()
        ]
        metadata.save(update_fields=["fields", "updated_at"])
        metadata.refresh_from_db()
    return _table_from(metadata)


@transaction.atomic
def alter_table(
    project_id: int,
    name: str,
    *,
    add: Iterable[Any] = (),
    rename: dict[str, str] | None = None,
    remove: Iterable[str] = (),
    new_name: str | None = None,
    version: int | None = None,
) -> Table:
    """Add, rename and remove fields, and rename the table; its rows follow.

    A renamed or removed field is renamed or removed in every row; an added field
    with a default gets it in every existing row. A required field without a default
    cannot be added to a table that has rows. The physical table name never changes.
    With `version`, the change happens only if the definition still has that version.
    """
    add, rename, remove = _alterations(name, add, rename, remove)
    table = _locked_table(project_id, name, for_update=True)
    stale = _stale(f"table '{name}'", table.version, version)
    if stale is not None:
        raise stale
    current = table.schema.by_name
    errors: list[FieldError] = []
    for old in [*remove, *rename]:
        if old not in current:
            errors.append(FieldError("is not a field of this table", old))
    renamed: dict[str, Field] = {}
    for old, new in rename.items():
        if old not in current:
            continue
        if not isinstance(new, str) or not FIELD_NAME.match(new) or new in RESERVED_NAMES:
            errors.append(FieldError(f"cannot be renamed to {new!r}: not a valid field name", old))
        else:
            renamed[old] = dataclasses.replace(current[old], name=new)
    added = []
    resolve = _resolver(project_id)
    for position, raw in enumerate(add, start=1):
        parsed, problems = parse_field(raw, position, resolve)
        errors += problems
        if parsed is not None:
            added.append(parsed)
    # The surviving fields keep their place, renamed ones under their new name.
    result = [renamed.get(f.name, f) for f in table.schema.fields if f.name not in remove] + added
    names = [f.name for f in result]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        errors.append(FieldError("would be defined twice", duplicate))
    needs_value = [f for f in added if f.required and f.default is None]
    if needs_value and _has_rows(table):
        for f in needs_value:
            errors.append(
                FieldError("is required but has no default, and the table has rows", f.name)
            )
    if new_name is not None:
        check_table_name(new_name)
    if errors:
        raise ValidationFailed(name, errors)

    schema = Schema(new_name or name, tuple(result))
    metadata = TableMetadata.objects.get(pk=table.id)
    metadata.fields = schema.to_json()
    if new_name is not None:
        metadata.table_name = new_name
    try:
        with transaction.atomic():
            metadata.save(update_fields=["fields", "table_name", "updated_at"])
    except IntegrityError as error:
        if _constraint(error)[0] == TABLE_NAME_CONSTRAINT:
            raise Conflict(f"table '{new_name}' already exists in project {project_id}") from None
        raise
    scope = [project_id, table.id]
    if remove:
        _execute(
            "UPDATE app.generic_data SET data = data - %s::text[], "
            "updated_by = app.current_user_id() "
            "WHERE project_id = %s AND table_id = %s AND data ?| %s::text[]",
            [remove, *scope, remove],
        )
    if renamed:
        # One statement, from each row's values as they were: renames may swap names.
        olds, news = list(renamed), [field.name for field in renamed.values()]
        _execute(
            "UPDATE app.generic_data SET data = (data - %s::text[]) || coalesce("
            "(SELECT jsonb_object_agg(m.new, data -> m.old) FROM unnest(%s::text[], %s::text[]) "
            "AS m(old, new) WHERE data ? m.old), '{}'::jsonb), "
            "updated_by = app.current_user_id() "
            "WHERE project_id = %s AND table_id = %s AND data ?| %s::text[]",
            [olds, olds, news, *scope, olds],
        )
    for field in added:
        if field.default is not None:
            try:
                with transaction.atomic():
                    _execute(
                        "UPDATE app.generic_data SET data = data || %s::jsonb, "
                        "updated_by = app.current_user_id() "
                        "WHERE project_id = %s AND table_id = %s AND NOT data ? %s",
                        [dumps({field.name: field.default}), *scope, field.name],
                    )
            except IntegrityError as error:
                if _constraint(error)[0] == UNIQUE_CONSTRAINT:
                    raise Conflict(
                        f"table '{name}': field '{field.name}' is unique, so its default cannot "
                        "be given to the table's rows, which are more than one",
                        [
                            FieldError(
                                "unique field with a default on a table with rows", field.name
                            )
                        ],
                    ) from None
                raise
    metadata.refresh_from_db()
    return _table_from(metadata)


def _alterations(
    table: str, add: Any, rename: Any, remove: Any
) -> tuple[list[Any], dict[str, str], list[str]]:
    """alter_table's arguments checked for their shape: a list of field definitions, an
    object of old name -> new name, a list of names."""
    errors = []
    add = [] if add is None else add
    rename = {} if rename is None else rename
    remove = [] if remove is None else remove
    if not isinstance(add, list | tuple):
        errors.append(
            FieldError(f"add: expected a list of field definitions, got {_describe(add)}")
        )
    if not isinstance(rename, dict) or not all(
        isinstance(old, str) and isinstance(new, str) for old, new in rename.items()
    ):
        errors.append(FieldError("rename: expected an object of field names to their new names"))
    if not isinstance(remove, list | tuple) or not all(isinstance(n, str) for n in remove):
        errors.append(FieldError("remove: expected a list of field names"))
    if errors:
        raise ValidationFailed(table if isinstance(table, str) else "?", errors)
    for old, new in [*rename.items(), *((n, n) for n in remove)]:
        for text in (old, new):
            problem = text_problem(text)
            if problem:
                raise ValidationFailed(table, [FieldError(f"{_describe(text)}: {problem}")])
    return list(add), dict(rename), list(remove)


def _has_rows(table: Table) -> bool:
    return bool(
        _fetchall(
            "SELECT EXISTS (SELECT FROM app.generic_data WHERE project_id = %s "
            "AND table_id = %s AND is_deleted = false)",
            [table.project_id, table.id],
        )[0][0]
    )


@transaction.atomic
def drop_table(project_id: int, name: str, *, version: int | None = None) -> None:
    """Soft-delete the table; its rows stay (unreachable) and no longer count as records.

    Refused while another table of the project has a reference field to it; with
    `version`, refused (Conflict) unless the definition still has that version.
    """
    table = _locked_table(project_id, name, for_update=True)
    stale = _stale(f"table '{name}'", table.version, version)
    if stale is not None:
        raise stale
    for other in _live_tables(project_id):
        if other.pk == table.id:
            continue
        schema = Schema.from_json(other.table_name, other.fields)
        for field in schema.reference_fields:
            if field.to_table_id == table.id:
                raise Conflict(
                    f"table '{name}' is referenced by field '{field.name}' of table "
                    f"'{other.table_name}': remove that field first"
                )
    TableMetadata.objects.get(pk=table.id).delete()


# --- Rows -----------------------------------------------------------------------------------------


def _value_text(value: Any) -> str:
    """A value as `data ->> field` shows it: what the unique side table stores."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    try:
        return decimal_text(value)
    except (AttributeError, TypeError):
        return dumps(value)


def _unique_within(schema: Schema, rows: list[dict[str, Any]]) -> list[FieldError]:
    """A unique field's value repeated inside one batch."""
    errors = []
    for field in schema.unique_fields:
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            if row.get(field.name) is None:
                continue
            key = _value_text(row[field.name])
            if key in seen:
                errors.append(
                    FieldError(
                        f"value {row[field.name]!r} repeats row {seen[key]} (the field is unique)",
                        field.name,
                        number,
                    )
                )
            else:
                seen[key] = number
    return errors


def _missing_references(
    table: Table, rows: list[dict[str, Any]], *, numbered: bool = True
) -> list[FieldError]:
    """References that name no live row of their table. The rows found are locked FOR
    SHARE until commit, so none can be deleted under its new reference (delete_row
    locks the row first, then looks for references)."""
    errors = []
    names = None
    for field in table.schema.reference_fields:
        wanted = {row[field.name] for row in rows if row.get(field.name) is not None}
        if not wanted:
            continue
        found = {
            row_id
            for (row_id,) in _fetchall(
                "SELECT id FROM app.generic_data WHERE project_id = %s AND table_id = %s "
                "AND is_deleted = false AND id = ANY(%s::bigint[]) FOR SHARE",
                [table.project_id, field.to_table_id, sorted(wanted)],
            )
        }
        if wanted <= found:
            continue
        names = names or table_names(table.project_id)
        target = names.get(field.to_table_id, f"#{field.to_table_id}")
        for number, row in enumerate(rows, start=1):
            value = row.get(field.name)
            if value is not None and value not in found:
                errors.append(
                    FieldError(
                        f"no row {value} in table '{target}'",
                        field.name,
                        number if numbered else None,
                    )
                )
    return errors


# The record limit (core.tenants.max_records) is the database's: app.count_records(),
# a trigger of app.generic_data (generic_data/migrations/0005), keeps each table's live
# rows and refuses a statement that takes the tenant past its limit with this constraint.
RECORD_LIMIT_CONSTRAINT = "tenant_max_records"


def _limit_exceeded(error: IntegrityError) -> "LimitExceeded | None":
    constraint, _detail = _constraint(error)
    if constraint != RECORD_LIMIT_CONSTRAINT:
        return None
    cause = error.__cause__
    message = cause.diag.message_primary if isinstance(cause, psycopg.Error) else str(error)
    return LimitExceeded(message or "the tenant's max_records would be exceeded")


_UNIQUE_DETAIL = re.compile(r"\(table_id, field, value\)=\((\d+), ([a-z][a-z0-9_]*), (.*)\)")


def _unique_conflict(
    table: Table, error: IntegrityError, rows: list[dict[str, Any]], *, numbered: bool = True
) -> Conflict | None:
    constraint, detail = _constraint(error)
    if constraint != UNIQUE_CONSTRAINT:
        return None
    match = _UNIQUE_DETAIL.search(detail)
    if match is None:
        return Conflict(f"table '{table.name}': a unique field's value is already used")
    field, value = match.group(2), match.group(3)
    errors = [
        FieldError(
            f"value {row[field]!r} is already used by another row (the field is unique)",
            field,
            number if numbered else None,
        )
        for number, row in enumerate(rows, start=1)
        if field in row and _value_text(row[field]) == value
    ] or [FieldError(f"value {value!r} is already used by another row", field)]
    return Conflict(f"table '{table.name}': " + "; ".join(str(e) for e in errors), errors)


# The tenant and the actor are read once per statement (a materialised CTE), not once per
# row: app.current_tenant() and app.current_user_id() are the trusted context, and dearer
# than a column. The rows come out in the order of the array.
INSERT_ROWS = (
    "INSERT INTO app.generic_data "
    "(tenant_id, project_id, table_id, data, created_by, updated_by) "
    "WITH context AS MATERIALIZED ("
    "SELECT app.current_tenant() AS tenant_id, app.current_user_id() AS user_id) "
    "SELECT c.tenant_id, %s, %s, r.value, c.user_id, c.user_id "
    "FROM context AS c, jsonb_array_elements(%s::jsonb) AS r "
    "RETURNING {returning}"
)


def create_rows(project_id: int, table: str, rows: Sequence[Any]) -> list[int]:
    """Insert rows (a bulk create), all or none; returns their ids in the given order.

    Each row is a {field: value} object, validated and normalised; fields left out get
    their default. Unique fields must be unique within the batch and against the
    table (ValidationFailed, Conflict); references must name live rows; the tenant's
    max_records must have room for all of them (LimitExceeded).
    """
    return [row_id for (row_id,) in _insert_rows(project_id, table, rows, "id")]


@transaction.atomic
def _insert_rows(
    project_id: int, table: str, rows: Sequence[Any], returning: str
) -> list[tuple[Any, ...]]:
    """create_rows(), returning the columns `returning` (trusted SQL) of each new row.

    One savepoint (the caller's transaction survives a refusal), the table looked up and
    locked, and one INSERT per INSERT_CHUNK rows: a single row is four round trips. The
    record limit, the unique values and the audit trail are the database's statement
    triggers, whose errors are translated here.
    """
    if not isinstance(rows, list | tuple):
        raise ValidationFailed(table, [FieldError("expected a list of rows")])
    if len(rows) > MAX_BULK_ROWS:
        raise ValidationFailed(
            table, [FieldError(f"{len(rows)} rows: at most {MAX_BULK_ROWS} in one call")]
        )
    definition = _locked_table(project_id, table)
    cleaned, errors = definition.schema.check(rows)
    errors += _unique_within(definition.schema, cleaned)
    errors += _missing_references(definition, cleaned)
    if errors:
        raise ValidationFailed(table, sorted(errors, key=lambda e: e.row or 0))
    statement = INSERT_ROWS.format(returning=returning)
    inserted: list[tuple[Any, ...]] = []
    # A refusal propagates out of this function's savepoint, which rolls the chunks
    # already inserted back: no savepoint of its own is needed around the INSERTs.
    try:
        for start in range(0, len(cleaned), INSERT_CHUNK):
            chunk = cleaned[start : start + INSERT_CHUNK]
            inserted += _fetchall(statement, [project_id, definition.id, dumps(chunk)])
    except IntegrityError as error:
        refusal = _limit_exceeded(error) or _unique_conflict(definition, error, cleaned)
        if refusal is None:
            raise
        raise refusal from None
    except OperationalError as error:
        raise _too_large_to_index(definition, error, cleaned) from None
    return inserted


def _too_large_to_index(
    table: Table, error: OperationalError, rows: list[dict[str, Any]], *, numbered: bool = True
) -> ValidationFailed:
    """The refusal of rows whose search document PostgreSQL could not index (a tsvector
    over 1 MB), naming the row with the largest texts; any other error is raised again."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) != PROGRAM_LIMIT_EXCEEDED:
        raise error
    sizes = [searchable_bytes(row) for row in rows]
    largest = max(range(len(rows)), key=sizes.__getitem__) if rows else 0
    detail = cause.diag.message_primary if isinstance(cause, psycopg.Error) else str(error)
    return ValidationFailed(
        table.name,
        [
            FieldError(
                f"its texts are too large for the search index ({detail}); a row's texts "
                f"take at most {MAX_SEARCHABLE_BYTES} bytes, and fewer if they hold many "
                "different words",
                row=largest + 1 if numbered else None,
            )
        ],
    )


def create_row(project_id: int, table: str, data: Any) -> Row:
    """Insert one row; returns it as stored (normalised, with its defaults)."""
    try:
        (values,) = _insert_rows(project_id, table, [data], _ROW_COLUMNS)
    except (ServiceError, ValidationFailed) as error:
        raise _unnumbered(error) from None
    return _row(values)


def _unnumbered(error: Exception) -> Exception:
    """The same error without "row 1" in it: a single row is not a list."""
    errors = [FieldError(e.message, e.field) for e in getattr(error, "errors", [])]
    if isinstance(error, ValidationFailed):
        return ValidationFailed(error.table, errors)
    message = re.sub(r"\brow 1, ", "", str(error))
    return type(error)(message, errors)


_ROW_COLUMNS = "id, data, version, created_at, updated_at"
# The actor once per statement (an InitPlan), as in INSERT_ROWS.
UPDATE_ROW = (
    "UPDATE app.generic_data SET data = %s::jsonb, updated_by = (SELECT app.current_user_id()) "
    f"WHERE id = %s RETURNING {_ROW_COLUMNS}"
)


def _row(values: tuple[Any, ...]) -> Row:
    return Row(values[0], _json(values[1]), values[2], values[3], values[4])


def get_row(project_id: int, table: str, row_id: int) -> Row:
    """The live row `row_id` of the table (NotFound otherwise)."""
    definition = get_table(project_id, table)
    if not _plausible_id(row_id):
        raise NotFound(f"row {row_id} not found in table '{table}'")
    found = _fetchall(
        f"SELECT {_ROW_COLUMNS} FROM app.generic_data WHERE id = %s AND project_id = %s "
        "AND table_id = %s AND is_deleted = false",
        [row_id, project_id, definition.id],
    )
    if not found:
        raise NotFound(f"row {row_id} not found in table '{table}'")
    return _row(found[0])


def _locked_row(definition: Table, row_id: int) -> tuple[dict[str, Any], int | None]:
    if not _plausible_id(row_id):
        raise NotFound(f"row {row_id} not found in table '{definition.name}'")
    found = _fetchall(
        "SELECT data, version FROM app.generic_data WHERE id = %s AND project_id = %s "
        "AND table_id = %s AND is_deleted = false FOR UPDATE",
        [row_id, definition.project_id, definition.id],
    )
    if not found:
        raise NotFound(f"row {row_id} not found in table '{definition.name}'")
    return _json(found[0][0]), found[0][1]


@transaction.atomic
def update_row(
    project_id: int,
    table: str,
    row_id: int,
    changes: Any,
    *,
    version: int | None = None,
) -> Row:
    """Change some fields of a row (a partial update); null removes a value.

    With `version`, the update happens only if the row still has that version
    (Conflict otherwise): optimistic concurrency for clients that read, then write.
    """
    definition = _locked_table(project_id, table)
    data, current = _locked_row(definition, row_id)
    stale = _stale(f"row {row_id} of table '{table}'", current, version)
    if stale is not None:
        raise stale
    (cleaned,), errors = definition.schema.check([changes], partial=True, numbered=False)
    errors += _missing_references(definition, [cleaned], numbered=False)
    if errors:
        raise ValidationFailed(table, errors)
    merged = {**data, **cleaned}
    merged = {name: value for name, value in merged.items() if value is not None}
    too_large = searchable_problem(merged)
    if too_large is not None:
        raise ValidationFailed(table, [too_large])
    # A refusal propagates out of this function's savepoint: none is needed around it.
    try:
        found = _fetchall(UPDATE_ROW, [dumps(merged), row_id])
    except IntegrityError as error:
        conflict = _unique_conflict(definition, error, [merged], numbered=False)
        if conflict is None:
            raise
        raise conflict from None
    except OperationalError as error:
        raise _too_large_to_index(definition, error, [merged], numbered=False) from None
    return _row(found[0])


@transaction.atomic
def delete_row(project_id: int, table: str, row_id: int, *, version: int | None = None) -> None:
    """Soft-delete a row. Refused (Conflict) while a live row of the project refers to it,
    and, with `version`, unless the row still has that version."""
    definition = _locked_table(project_id, table)
    # Before looking for references: see _missing_references.
    _data, current = _locked_row(definition, row_id)
    stale = _stale(f"row {row_id} of table '{table}'", current, version)
    if stale is not None:
        raise stale
    for other in _live_tables(project_id):
        schema = Schema.from_json(other.table_name, other.fields)
        for field in schema.reference_fields:
            if field.to_table_id != definition.id:
                continue
            # Two at most: a row referring to itself does not hold itself back.
            referring = [
                found
                for (found,) in _fetchall(
                    "SELECT c.id FROM app.rows_containing(%s, %s, %s::jsonb, NULL, 2) AS c(id)",
                    [project_id, other.pk, dumps({field.name: row_id})],
                )
                if found != row_id
            ]
            if referring:
                raise Conflict(
                    f"row {row_id} of table '{table}' is referred to by row {referring[0]} "
                    f"of table '{other.table_name}' (field '{field.name}')"
                )
    _execute("DELETE FROM app.generic_data WHERE id = %s", [row_id])


# --- Queries --------------------------------------------------------------------------------------


def query_rows(
    project_id: int,
    table: str,
    *,
    filter: Any = None,
    sort: str | None = None,
    limit: int = q.DEFAULT_LIMIT,
    after: str | None = None,
    search: str | None = None,
    count: bool = False,
) -> Page:
    """A page of the table's live rows.

    `filter`: the filter language of generic_data.query; `sort`: "field" or "-field"
    ("id" by default, best match first for a search); `limit`: rows per page (at most
    1000); `after`: the previous page's next_cursor; `search`: full-text search
    (English, web-search syntax: words, "a phrase", or, -word); `count`: also count
    every matching row.
    """
    definition = get_table(project_id, table)
    schema = definition.schema
    if search is not None and (not isinstance(search, str) or not search.strip()):
        raise ValidationFailed(table, [FieldError("search: expected some text")])
    if search is not None and (text_problem(search) or len(search) > q.MAX_SEARCH_LENGTH):
        reason = text_problem(search) or (
            f"is {len(search)} characters long, more than {q.MAX_SEARCH_LENGTH}"
        )
        raise ValidationFailed(table, [FieldError(f"search: {reason}")])
    if after is not None and not isinstance(after, str):
        raise ValidationFailed(
            table, [FieldError(f"after: expected a cursor (a string), got {_describe(after)}")]
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= q.MAX_LIMIT:
        raise ValidationFailed(
            table, [FieldError(f"limit: expected 1 to {q.MAX_LIMIT}, got {limit!r}")]
        )
    parsed = q.parse_filter(schema, filter)
    order = q.parse_sort(schema, sort, search=search is not None)
    cursor = q.decode_cursor(schema, order, after) if after else None
    query = q.Query(project_id, definition.id, parsed, order, limit + 1, cursor, search)
    sql, params = query.select()
    found = _fetchall(sql, params)
    rows = [_row(values) for values in found[:limit]]
    next_cursor = None
    if len(found) > limit:
        last = found[limit - 1]
        value = q.sort_value(order, last[0], rows[-1].data, last[5])
        next_cursor = q.encode_cursor(order, value, last[0])
    total = None
    if count and cursor is None and len(found) <= limit:
        total = len(rows)  # the first page holds every match: no statement to count them
    elif count:
        sql, params = query.count()
        total = _fetchall(sql, params)[0][0]
    return Page(rows, next_cursor, total)


def search_rows(project_id: int, table: str, text: str, **options: Any) -> Page:
    """Full-text search of the table's rows (all their text, numbers and booleans),
    best match first; `options` as query_rows'."""
    return query_rows(project_id, table, search=text, **options)
