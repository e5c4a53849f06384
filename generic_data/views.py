"""The JSON HTTP API of generic data, under /api/v1/ (a django-ninja router; hzm/urls.py
mounts it, hzm/api.py has what all endpoints share). /api/v1/openapi.json describes it.

    GET    projects/<p>/tables/                     the project's tables
    POST   projects/<p>/tables/                     define one: {"name": ..., "fields": [...]}
    GET    projects/<p>/tables/<t>/                 its definition
    PATCH  projects/<p>/tables/<t>/                 alter: {"add": [...], "rename": {...},
                                                    "remove": [...], "name": ..., "version": n}
    DELETE projects/<p>/tables/<t>/[?version=n]     drop (soft)
    GET    projects/<p>/tables/<t>/rows/            a page of rows (query string below)
    POST   projects/<p>/tables/<t>/rows/            create: {"data": {...}}, or a bulk
                                                    create: {"rows": [{...}, ...]}
    POST   projects/<p>/tables/<t>/rows/query/      a page of rows, the query as a JSON body
    GET    projects/<p>/tables/<t>/rows/<id>/       one row
    PATCH  projects/<p>/tables/<t>/rows/<id>/       change fields: {"data": {...}, "version": n}
    DELETE projects/<p>/tables/<t>/rows/<id>/[?version=n]   delete (soft)
    GET    projects/<p>/tables/<t>/search/?q=...    full-text search, best match first

A page's query: `filter` (JSON, generic_data.query), `sort` ("price", "-price"),
`limit`, `after` (the previous page's next_cursor), `count` (true: count all matches),
`search` (in a query string also `q`); in a query string also `field=value` and
`field__op=value` (`__in` takes comma-separated values), ANDed with the filter.

Optimistic concurrency is `version`, everywhere: a change that names a version the
row (or table) no longer has is 409 and changes nothing.

Authentication: `Authorization: Bearer <API key>` (a key of the project, or of the
whole tenant), exempt from CSRF; or the session of a signed-in tenant user, with
Django's CSRF check for unsafe methods and the permission each operation names
(core.rbac, app.has_permission). Every request runs inside the caller's tenant
context, as the runtime role.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router, Status
from ninja.params.models import Query as QueryParam
from ninja.security import APIKeyCookie, HttpBearer

from core.rbac import has_permission
from generic_data import contract, services
from generic_data import query as q
from generic_data.auth import Caller, authenticate_api_key
from generic_data.contract import (
    MAX_INT,
    NAME_PATTERN,
    Created,
    Page,
    RowOut,
    RowQuery,
    RowsCreate,
    RowUpdate,
    TableAlter,
    TableCreate,
    TableList,
    TableOut,
)
from generic_data.schema import MAX_ROW_ID, FieldError, ValidationFailed, text_problem
from hzm.api import (
    ApiError,
    enforce_csrf,
    errors,
    header_text,
    parse_json,
)
from hzm.db.context import is_platform_staff, request_metadata, tenant_context

# The query string's own keys of a page; any other is a condition (field=value).
PAGE_PARAMETERS = ("filter", "sort", "limit", "after", "count", "search", "q")
# What a session user needs for each kind of operation (core/fixtures/004_default_rbac).
READ_TABLES, MANAGE_TABLES = "projects.view", "projects.edit"
READ_ROWS, WRITE_ROWS, DELETE_ROWS = "data.read", "data.write", "data.delete"


# --- Authentication -----------------------------------------------------------------------------


def _caller(request: HttpRequest) -> Caller:
    header = request.headers.get("Authorization", "")
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    if header:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "unauthorized", "the Authorization header must be 'Bearer <key>'")
        if signed_in:
            raise ApiError(
                400, "ambiguous_credentials", "send either an API key or a session, not both"
            )
        if header_text(key) is None:
            raise ApiError(401, "unauthorized", "the API key is not valid (or no longer usable)")
        caller = authenticate_api_key(key.strip(), request)
        if caller is None:
            raise ApiError(401, "unauthorized", "the API key is not valid (or no longer usable)")
        return caller
    if not signed_in:
        raise ApiError(
            401, "unauthorized", "send an API key (Authorization: Bearer <key>) or sign in"
        )
    if is_platform_staff(user):
        raise ApiError(403, "forbidden", "platform staff have no tenant data; use an API key")
    enforce_csrf(request)
    return Caller(user.tenant_id, user.pk)


class BearerApiKey(HttpBearer):
    """`Authorization: Bearer <API key>`; this one check also admits sessions (_caller)."""

    openapi_description = (
        "An API key of the project, or of the whole tenant: Authorization: Bearer hzm_..."
    )

    def __call__(self, request: HttpRequest) -> Caller:
        return _caller(request)

    def authenticate(self, request: HttpRequest, token: str) -> Caller:  # pragma: no cover
        return _caller(request)


class SessionCookie(APIKeyCookie):
    """A signed-in tenant user's session (POST /api/v1/auth/login); unsafe methods need
    the CSRF token in X-CSRFToken. Checked by BearerApiKey's _caller: documentation only."""

    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = (
        "The session of a tenant user signed in with POST /api/v1/auth/login; unsafe "
        "methods also need X-CSRFToken (GET /api/v1/auth/csrf). Needs the permission each "
        "operation names."
    )

    def __call__(self, request: HttpRequest) -> None:  # pragma: no cover
        return None

    def authenticate(self, request: HttpRequest, key: str | None) -> None:  # pragma: no cover
        return None


router = Router(auth=[BearerApiKey(), SessionCookie(csrf=False)], tags=["generic data"])


def tenant_operation(
    permission: str, *, shorthand: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the handler inside the caller's tenant context, for a project the caller may
    reach and, for a session user, with `permission` (RBAC: app.has_permission).

    A query string may hold only the handler's query parameters (and, with `shorthand`,
    conditions field=value): any other key is refused, naming it.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        known = {
            parameter.default.alias or name
            for name, parameter in inspect.signature(handler).parameters.items()
            if isinstance(parameter.default, QueryParam)
        }

        @functools.wraps(handler)
        def run(request: HttpRequest, project_id: int, **kwargs: Any) -> Any:
            caller: Caller = request.auth  # type: ignore[attr-defined]
            if caller.project_id is not None and caller.project_id != project_id:
                raise ApiError(
                    403, "forbidden", f"this API key is for project {caller.project_id} only"
                )
            unknown = sorted(set(request.GET) - known)
            if unknown and not shorthand:
                raise ApiError(
                    400,
                    "invalid",
                    f"unknown query parameters: {', '.join(map(repr, unknown))}",
                    [{"field": key, "message": "is not a parameter of this request"}
                     for key in unknown],
                )  # fmt: skip
            request_id, ip_address, user_agent = request_metadata(request)
            user_agent = header_text(user_agent)
            # For a session the middleware's context is already open: this nests in it.
            with tenant_context(
                caller.tenant_id,
                caller.user_id,
                request_id=request_id,
                ip_address=ip_address,
                user_agent=user_agent,
            ):
                if caller.api_key_id is None and not has_permission(caller.user_id, permission):
                    raise ApiError(
                        403,
                        "permission_denied",
                        f"this needs the permission '{permission}', which your roles do not "
                        "give you",
                    )
                return handler(request, project_id=project_id, **kwargs)

        run.__doc__ = (
            inspect.cleandoc(handler.__doc__ or "")
            + f"\n\nPermission (session users): `{permission}`."
        )
        return run

    return decorate


# --- Path and query parameters -------------------------------------------------------------------

PROJECT_ID = Path(..., ge=1, le=MAX_INT, description="the project's id")
TABLE = Path(..., pattern=NAME_PATTERN, description="the table's name")
ROW_ID = Path(..., ge=1, le=MAX_ROW_ID, description="the row's id")
VERSION = Query(None, ge=1, le=MAX_INT, description="the version the delete expects (409 if stale)")
# The shorthand conditions of a query string, field=value and field__op=value.
SHORTHAND = {
    "parameters": [
        {
            "name": "conditions",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": True,
            "description": "field=value, field__op=value (op: "
            + ", ".join(q.OPERATORS)
            + "; __in takes comma-separated values), ANDed with `filter`",
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    ]
}


def _no_bad_text(source: dict[str, str], where: str) -> None:
    for key, value in source.items():
        problem = text_problem(key) or text_problem(value)
        if problem is not None:
            raise ApiError(400, "invalid", f"{where} {key!r}: {problem}", [
                {"field": key, "message": problem}
            ])  # fmt: skip


def _page_options(
    filter: str | None,
    sort: str | None,
    limit: int | None,
    after: str | None,
    count: bool,
    search: str | None,
) -> dict[str, Any]:
    options: dict[str, Any] = {"count": count}
    if filter is not None:
        options["filter"] = parse_json(filter, "filter")
    if sort is not None:
        options["sort"] = sort
    if limit is not None:
        options["limit"] = limit
    if after:
        options["after"] = after
    if search is not None:
        options["search"] = search
    return options


def _shorthand_filter(request: HttpRequest) -> list[dict[str, Any]]:
    """?price__gt=10&status=new as conditions: field, operator (eq by default), value."""
    conditions = []
    for key, value in request.GET.items():
        if key in PAGE_PARAMETERS:
            continue
        name, separator, op = key.rpartition("__")
        if not separator:
            name, op = key, "eq"
        if op not in q.OPERATORS:
            hint = q.OPERATOR_SPELLINGS.get(op)
            reason = f"'{op}' is spelled '{hint}'" if hint else f"'{op}' is not an operator"
            raise ApiError(
                400,
                "invalid",
                f"{key}: {reason} (operators: {', '.join(q.OPERATORS)})",
                [{"field": key, "message": reason}],
            )
        if op == "in":
            parsed: Any = value.split(",") if value else []
            if len(parsed) > q.MAX_IN_VALUES:
                parsed = parsed[: q.MAX_IN_VALUES + 1]  # refused by the filter's own check
        elif op == "isnull":
            if value.lower() not in ("true", "false"):
                message = f"expected true or false, got {value[:40]!r}"
                raise ApiError(400, "invalid", f"{key}: {message}", [
                    {"field": key, "message": message}
                ])  # fmt: skip
            parsed = value.lower() == "true"
        else:
            parsed = value
        conditions.append({"field": name, "op": op, "value": parsed})
    return conditions


def _list_options(request: HttpRequest, options: dict[str, Any]) -> dict[str, Any]:
    _no_bad_text(request.GET.dict(), "query parameter")
    conditions = _shorthand_filter(request)
    if conditions:
        if "filter" in options:
            conditions.append(options["filter"])
        options["filter"] = conditions[0] if len(conditions) == 1 else {"and": conditions}
    return options


def _page(project_id: int, table: str, options: dict[str, Any]) -> dict[str, Any]:
    return services.query_rows(project_id, table, **options).as_dict()


# --- Tables -------------------------------------------------------------------------------------


def _table_json(project_id: int, table: services.Table) -> dict[str, Any]:
    return table.as_dict(services.table_names(project_id))


@router.get(
    "/projects/{project_id}/tables/",
    response={200: TableList, **errors(400, 401, 403, 404, 429)},
    url_name="tables",
    summary="List the project's tables",
)
@tenant_operation(READ_TABLES)
def list_tables(request: HttpRequest, project_id: int = PROJECT_ID) -> dict[str, Any]:
    """The project's live tables, by name, with their definitions."""
    tables = services.list_tables(project_id)
    names = {t.id: t.name for t in tables}
    return {"tables": [t.as_dict(names) for t in tables]}


@router.post(
    "/projects/{project_id}/tables/",
    response={201: TableOut, **errors(400, 401, 403, 404, 409, 413, 415, 429)},
    url_name="tables-create",
    summary="Define a table",
)
@tenant_operation(MANAGE_TABLES)
def define_table(
    request: HttpRequest, body: TableCreate, project_id: int = PROJECT_ID
) -> Status:
    """Define a user table: its name and fields. 409 if the name is taken; 403 when the
    tenant's plan allows no more tables."""
    table = services.define_table(project_id, body.name, body.fields)
    return Status(201, _table_json(project_id, table))


@router.get(
    "/projects/{project_id}/tables/{table}/",
    response={200: TableOut, **errors(400, 401, 403, 404, 429)},
    url_name="table",
    summary="A table's definition",
)
@tenant_operation(READ_TABLES)
def get_table(
    request: HttpRequest, project_id: int = PROJECT_ID, table: str = TABLE
) -> dict[str, Any]:
    """The table's definition."""
    return _table_json(project_id, services.get_table(project_id, table))


@router.patch(
    "/projects/{project_id}/tables/{table}/",
    response={200: TableOut, **errors(400, 401, 403, 404, 409, 413, 415, 429)},
    url_name="table-alter",
    summary="Alter a table",
)
@tenant_operation(MANAGE_TABLES)
def alter_table(
    request: HttpRequest, body: TableAlter, project_id: int = PROJECT_ID, table: str = TABLE
) -> dict[str, Any]:
    """Add, rename and remove fields, rename the table; the rows follow. With `version`,
    only if the definition still has that version (409 otherwise)."""
    altered = services.alter_table(
        project_id,
        table,
        add=body.add,
        rename=body.rename,
        remove=body.remove,
        new_name=body.name,
        version=body.version,
    )
    return _table_json(project_id, altered)


@router.delete(
    "/projects/{project_id}/tables/{table}/",
    response={204: None, **errors(400, 401, 403, 404, 409, 429)},
    url_name="table-drop",
    summary="Drop a table",
)
@tenant_operation(MANAGE_TABLES)
def drop_table(
    request: HttpRequest,
    project_id: int = PROJECT_ID,
    table: str = TABLE,
    version: int | None = VERSION,
) -> HttpResponse:
    """Drop the table (soft). 409 while another table refers to it, or for a stale version."""
    services.drop_table(project_id, table, version=version)
    return HttpResponse(status=204)


# --- Rows ----------------------------------------------------------------------------------------


@router.get(
    "/projects/{project_id}/tables/{table}/rows/",
    response={200: Page, **errors(400, 401, 403, 404, 429)},
    url_name="rows",
    summary="A page of rows",
    openapi_extra=SHORTHAND,
    exclude_unset=True,
)
@tenant_operation(READ_ROWS, shorthand=True)
def list_rows(
    request: HttpRequest,
    project_id: int = PROJECT_ID,
    table: str = TABLE,
    filter: str | None = Query(None, description="a Filter as JSON", max_length=200_000),
    sort: str | None = Query(None, description='"field" or "-field"', max_length=100),
    limit: int | None = Query(None, ge=1, le=q.MAX_LIMIT),
    after: str | None = Query(None, description="the previous page's next_cursor"),
    count: bool = Query(False, description="also count every matching row"),
    search: str | None = Query(None, description="full-text search", min_length=1),
    q_: str | None = Query(None, alias="q", description="full-text search", min_length=1),
) -> dict[str, Any]:
    """A page of the table's rows: filtered, sorted, after a cursor; next_cursor is the
    next page's `after` (null on the last page)."""
    options = _page_options(filter, sort, limit, after, count, _search(search, q_))
    return _page(project_id, table, _list_options(request, options))


def _search(search: str | None, q_: str | None) -> str | None:
    if search is not None and q_ is not None:
        raise ApiError(400, "invalid", "search: give it as search or as q, not both")
    return search if search is not None else q_


@router.post(
    "/projects/{project_id}/tables/{table}/rows/query/",
    response={200: Page, **errors(400, 401, 403, 404, 413, 415, 429)},
    url_name="rows-query",
    summary="A page of rows, the query as JSON",
    exclude_unset=True,
)
@tenant_operation(READ_ROWS)
def query_rows(
    request: HttpRequest, body: RowQuery, project_id: int = PROJECT_ID, table: str = TABLE
) -> dict[str, Any]:
    """The query of GET .../rows/ as a JSON body (a filter of any size)."""
    options = body.model_dump(exclude_unset=True)
    options["count"] = body.count
    return _page(project_id, table, options)


@router.post(
    "/projects/{project_id}/tables/{table}/rows/",
    response={201: RowOut | Created, **errors(400, 401, 403, 404, 409, 413, 415, 429)},
    url_name="rows-create",
    summary="Create a row, or many",
)
@tenant_operation(WRITE_ROWS)
def create_rows(
    request: HttpRequest, body: RowsCreate, project_id: int = PROJECT_ID, table: str = TABLE
) -> Status:
    """{"data": {...}}: one row, answered as stored; {"rows": [...]}: up to 10,000 rows,
    all or none, answered with their ids. 403 past the tenant's max_records."""
    if (body.data is None) == (body.rows is None):
        raise ValidationFailed(
            table, [FieldError("send {'data': {...}} for a row or {'rows': [...]}")]
        )
    if body.rows is not None:
        ids = services.create_rows(project_id, table, body.rows)
        return Status(201, {"created": len(ids), "ids": ids})
    return Status(201, services.create_row(project_id, table, body.data).as_dict())


@router.get(
    "/projects/{project_id}/tables/{table}/rows/{row_id}/",
    response={200: RowOut, **errors(400, 401, 403, 404, 429)},
    url_name="row",
    summary="A row",
)
@tenant_operation(READ_ROWS)
def get_row(
    request: HttpRequest, project_id: int = PROJECT_ID, table: str = TABLE, row_id: int = ROW_ID
) -> dict[str, Any]:
    """The row, with its version (send it back with a change)."""
    return services.get_row(project_id, table, row_id).as_dict()


@router.patch(
    "/projects/{project_id}/tables/{table}/rows/{row_id}/",
    response={200: RowOut, **errors(400, 401, 403, 404, 409, 413, 415, 429)},
    url_name="row-update",
    summary="Change a row",
)
@tenant_operation(WRITE_ROWS)
def update_row(
    request: HttpRequest,
    body: RowUpdate,
    project_id: int = PROJECT_ID,
    table: str = TABLE,
    row_id: int = ROW_ID,
) -> dict[str, Any]:
    """Change the fields in `data` (null removes a value). With `version`, only if the row
    still has that version: 409 otherwise, and nothing changes."""
    row = services.update_row(project_id, table, row_id, body.data, version=body.version)
    return row.as_dict()


@router.delete(
    "/projects/{project_id}/tables/{table}/rows/{row_id}/",
    response={204: None, **errors(400, 401, 403, 404, 409, 429)},
    url_name="row-delete",
    summary="Delete a row",
)
@tenant_operation(DELETE_ROWS)
def delete_row(
    request: HttpRequest,
    project_id: int = PROJECT_ID,
    table: str = TABLE,
    row_id: int = ROW_ID,
    version: int | None = VERSION,
) -> HttpResponse:
    """Delete the row (soft). 409 while a row refers to it, or for a stale version."""
    services.delete_row(project_id, table, row_id, version=version)
    return HttpResponse(status=204)


@router.get(
    "/projects/{project_id}/tables/{table}/search/",
    response={200: Page, **errors(400, 401, 403, 404, 429)},
    url_name="search",
    summary="Full-text search",
    openapi_extra=SHORTHAND,
    exclude_unset=True,
)
@tenant_operation(READ_ROWS, shorthand=True)
def search_rows(
    request: HttpRequest,
    project_id: int = PROJECT_ID,
    table: str = TABLE,
    q_: str | None = Query(None, alias="q", description="the text to search for", min_length=1),
    search: str | None = Query(None, description="the same as q", min_length=1),
    filter: str | None = Query(None, description="a Filter as JSON", max_length=200_000),
    sort: str | None = Query(None, description='"-rank" (default) or a field', max_length=100),
    limit: int | None = Query(None, ge=1, le=q.MAX_LIMIT),
    after: str | None = Query(None, description="the previous page's next_cursor"),
    count: bool = Query(False, description="also count every match"),
) -> dict[str, Any]:
    """The rows whose texts, numbers and booleans match, best first (English, web-search
    syntax: words, "a phrase", or, -word)."""
    text = _search(search, q_)
    if text is None:
        raise ApiError(
            400,
            "invalid",
            "q: give the text to search for as ?q=...",
            [{"field": "q", "message": "is required"}],
        )
    options = _page_options(filter, sort, limit, after, count, text)
    return _page(project_id, table, _list_options(request, options))



# The OpenAPI components the bodies above refer to.
COMPONENTS = contract.COMPONENTS
