"""The JSON HTTP API of generic data, mounted at /api/v1/ (generic_data/urls.py).

    GET    projects/<p>/tables/                     the project's tables
    POST   projects/<p>/tables/                     define one: {"name": ..., "fields": [...]}
    GET    projects/<p>/tables/<t>/                 its definition
    PATCH  projects/<p>/tables/<t>/                 alter: {"add": [...], "rename": {...},
                                                    "remove": [...], "name": "new name"}
    DELETE projects/<p>/tables/<t>/                 drop (soft)
    GET    projects/<p>/tables/<t>/rows/            a page of rows (query string below)
    POST   projects/<p>/tables/<t>/rows/            create: {"data": {...}}, or a bulk
                                                    create: {"rows": [{...}, ...]}
    POST   projects/<p>/tables/<t>/rows/query/      a page of rows, the query as a JSON body
    GET    projects/<p>/tables/<t>/rows/<id>/       one row
    PATCH  projects/<p>/tables/<t>/rows/<id>/       change fields: {"data": {...}, "version": n}
    DELETE projects/<p>/tables/<t>/rows/<id>/       delete (soft)
    GET    projects/<p>/tables/<t>/search/?q=...    full-text search, best match first

A page's query: `filter` (JSON, generic_data.query), `sort` ("price", "-price"),
`limit`, `after` (the previous page's next_cursor), `count` (true: count all matches),
`search` (or `q`); in a query string also `field=value` and `field__op=value`
(`__in` takes comma-separated values), ANDed with the filter.

Authentication: `Authorization: Bearer <API key>` (a key of the project, or of the
whole tenant), exempt from CSRF; or the session of a signed-in tenant user, with
Django's CSRF check for unsafe methods. Every request runs inside the caller's tenant
context, as the runtime role. Errors are JSON, {"error": {"code", "message",
"errors": [{"row", "field", "message"}]}}, with status 400, 401, 403, 404, 405, 409
or 413.
"""

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from generic_data import services
from generic_data.auth import Caller, authenticate_api_key
from generic_data.query import OPERATORS
from generic_data.schema import ValidationFailed, dumps, loads
from hzm.db.context import is_platform_staff, request_id_for, tenant_context

# A bulk create per request; the body must also fit DATA_UPLOAD_MAX_MEMORY_SIZE.
MAX_ROWS_PER_REQUEST = 10_000
QUERY_PARAMETERS = ("filter", "sort", "limit", "after", "count", "search", "q")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.errors = status, code, errors or []


def json_response(payload: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(payload), status=status, content_type="application/json")


def error_response(
    status: int, code: str, message: str, errors: list | None = None
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = [e if isinstance(e, dict) else e.as_dict() for e in errors]
    response = json_response({"error": body}, status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


# --- Authentication -----------------------------------------------------------------------------


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def enforce_csrf(request: HttpRequest) -> None:
    """Django's CSRF check for a session request (the view itself is csrf_exempt)."""
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise ApiError(403, "csrf_failed", f"CSRF check failed: {reason}")


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
        caller = authenticate_api_key(key.strip())
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


def api_view(**handlers: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view dispatching on the method to `handlers` (get=..., post=...), each called as
    handler(request, project_id, **url_kwargs) inside the caller's tenant context."""

    @csrf_exempt
    def view(request: HttpRequest, project_id: int, **kwargs: Any) -> HttpResponse:
        handler = handlers.get(request.method.lower())
        if handler is None:
            response = error_response(
                405, "method_not_allowed", f"{request.method} is not allowed here"
            )
            response["Allow"] = ", ".join(method.upper() for method in handlers)
            return response
        try:
            caller = _caller(request)
            if caller.project_id is not None and caller.project_id != project_id:
                raise ApiError(
                    403, "forbidden", f"this API key is for project {caller.project_id} only"
                )
            # For a session the middleware's context is already open: this nests in it.
            with tenant_context(
                caller.tenant_id,
                caller.user_id,
                request_id=getattr(request, "request_id", None) or request_id_for(request),
                ip_address=request.META.get("REMOTE_ADDR") or None,
                user_agent=request.headers.get("User-Agent") or None,
            ):
                return handler(request, project_id, **kwargs)
        except ApiError as error:
            return error_response(error.status, error.code, str(error), error.errors)
        except ValidationFailed as error:
            return error_response(400, "invalid", str(error), error.errors)
        except services.ServiceError as error:
            return error_response(error.status, error.code, str(error), error.errors)
        except RequestDataTooBig:
            return error_response(413, "too_large", "the request body is too large")

    return view


# --- Request bodies and query strings ---------------------------------------------------------


def read_body(request: HttpRequest) -> dict[str, Any]:
    try:
        payload = loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_json", f"the request body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", "the request body must be a JSON object")
    return payload


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid", f"{name}: expected an integer, got {value!r}") from None
    return number


def _page_options(source: dict[str, Any], *, from_query_string: bool) -> dict[str, Any]:
    options: dict[str, Any] = {}
    raw_filter = source.get("filter")
    if from_query_string and raw_filter is not None:
        try:
            raw_filter = loads(raw_filter)
        except json.JSONDecodeError as error:
            raise ApiError(400, "invalid", f"filter: not JSON: {error}") from None
    if raw_filter is not None:
        options["filter"] = raw_filter
    if source.get("sort") is not None:
        options["sort"] = source["sort"]
    if source.get("limit") is not None:
        options["limit"] = _int(source["limit"], "limit")
    if source.get("after"):
        options["after"] = source["after"]
    count = source.get("count")
    options["count"] = count is True or (isinstance(count, str) and count.lower() == "true")
    search = source.get("search", source.get("q"))
    if search is not None:
        options["search"] = search
    return options


def _shorthand_filter(request: HttpRequest) -> list[dict[str, Any]]:
    """?price__gt=10&status=new as conditions: field, operator (eq by default), value."""
    conditions = []
    for key, value in request.GET.items():
        if key in QUERY_PARAMETERS:
            continue
        name, _, op = key.partition("__")
        op = op or "eq"
        if op not in OPERATORS:
            raise ApiError(400, "invalid", f"{key}: '{op}' is not an operator")
        if op == "in":
            parsed: Any = value.split(",") if value else []
        elif op == "isnull":
            parsed = value.lower() == "true"
        else:
            parsed = value
        conditions.append({"field": name, "op": op, "value": parsed})
    return conditions


def _list_options(request: HttpRequest) -> dict[str, Any]:
    options = _page_options(request.GET.dict(), from_query_string=True)
    conditions = _shorthand_filter(request)
    if conditions:
        if "filter" in options:
            conditions.append(options["filter"])
        options["filter"] = conditions[0] if len(conditions) == 1 else {"and": conditions}
    return options


# --- Handlers -------------------------------------------------------------------------------------


def _tables_list(request: HttpRequest, project_id: int) -> HttpResponse:
    tables = services.list_tables(project_id)
    names = {t.id: t.name for t in tables}
    return json_response({"tables": [t.as_dict(names) for t in tables]})


def _tables_create(request: HttpRequest, project_id: int) -> HttpResponse:
    body = read_body(request)
    table = services.define_table(project_id, body.get("name"), body.get("fields"))
    return json_response(table.as_dict(services.table_names(project_id)), 201)


def _table_get(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    found = services.get_table(project_id, table)
    return json_response(found.as_dict(services.table_names(project_id)))


def _table_alter(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    body = read_body(request)
    unknown = set(body) - {"add", "rename", "remove", "name"}
    if unknown:
        raise ApiError(400, "invalid", f"unknown keys: {', '.join(sorted(unknown))}")
    rename = body.get("rename") or {}
    add, remove = body.get("add") or [], body.get("remove") or []
    if not isinstance(rename, dict) or not isinstance(add, list) or not isinstance(remove, list):
        raise ApiError(400, "invalid", "add and remove are lists, rename is an object")
    altered = services.alter_table(
        project_id, table, add=add, rename=rename, remove=remove, new_name=body.get("name")
    )
    return json_response(altered.as_dict(services.table_names(project_id)))


def _table_drop(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    services.drop_table(project_id, table)
    return HttpResponse(status=204)


def _rows_list(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    page = services.query_rows(project_id, table, **_list_options(request))
    return json_response(page.as_dict())


def _rows_query(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    body = read_body(request)
    unknown = set(body) - set(QUERY_PARAMETERS)
    if unknown:
        raise ApiError(400, "invalid", f"unknown keys: {', '.join(sorted(unknown))}")
    page = services.query_rows(project_id, table, **_page_options(body, from_query_string=False))
    return json_response(page.as_dict())


def _rows_create(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    body = read_body(request)
    if "rows" in body:
        rows = body["rows"]
        if isinstance(rows, list) and len(rows) > MAX_ROWS_PER_REQUEST:
            raise ApiError(
                400, "invalid", f"{len(rows)} rows: at most {MAX_ROWS_PER_REQUEST} per request"
            )
        ids = services.create_rows(project_id, table, rows)
        return json_response({"created": len(ids), "ids": ids}, 201)
    if "data" not in body:
        raise ApiError(400, "invalid", "send {'data': {...}} for a row or {'rows': [...]}")
    row = services.create_row(project_id, table, body["data"])
    return json_response(row.as_dict(), 201)


def _row_get(request: HttpRequest, project_id: int, table: str, row_id: int) -> HttpResponse:
    return json_response(services.get_row(project_id, table, row_id).as_dict())


def _row_update(request: HttpRequest, project_id: int, table: str, row_id: int) -> HttpResponse:
    body = read_body(request)
    if "data" not in body:
        raise ApiError(400, "invalid", "send {'data': {...}} with the fields to change")
    version = body.get("version")
    row = services.update_row(
        project_id,
        table,
        row_id,
        body["data"],
        expected_version=None if version is None else _int(version, "version"),
    )
    return json_response(row.as_dict())


def _row_delete(request: HttpRequest, project_id: int, table: str, row_id: int) -> HttpResponse:
    services.delete_row(project_id, table, row_id)
    return HttpResponse(status=204)


def _search(request: HttpRequest, project_id: int, table: str) -> HttpResponse:
    options = _list_options(request)
    if "search" not in options:
        raise ApiError(400, "invalid", "search: give the text to search for as ?q=...")
    return json_response(services.query_rows(project_id, table, **options).as_dict())


tables = api_view(get=_tables_list, post=_tables_create)
table = api_view(get=_table_get, patch=_table_alter, delete=_table_drop)
rows = api_view(get=_rows_list, post=_rows_create)
rows_query = api_view(post=_rows_query)
row = api_view(get=_row_get, patch=_row_update, delete=_row_delete)
search = api_view(get=_search)
