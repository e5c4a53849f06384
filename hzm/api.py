"""The HTTP API's machinery, on django-ninja: JSON in and out, one error shape, the
OpenAPI document (/api/v1/openapi.json) and its interactive page (/api/v1/docs).

django-ninja generates the OpenAPI 3 document from the handlers' type hints and
pydantic models, and its views are plain Django views: RuntimeRoleMiddleware, the
sessions, Django's CSRF check and tenant_context() stay exactly as they are. The API
itself is assembled in hzm/urls.py from the routers of core/views.py (sign-in) and
generic_data/views.py (tables and rows).

What every endpoint shares, here:
- request bodies are JSON objects (anything else: 415), parsed with exact decimals and
  checked at the door (JsonParser): at most MAX_BODY_DEPTH levels of nesting, no NUL
  or lone surrogate in any key or string, no number of more than MAX_NUMBER_DIGITS
  digits; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413;
- every answer is JSON, errors in one shape,
  {"error": {"code": ..., "message": ..., "errors": [{"row", "field", "message"}]}},
  also for 404 (hzm/errors.py), 405 (_json_not_allowed) and 500;
- pydantic's refusals (a key the body does not have, a wrong JSON type) are 400 in that
  shape, naming the key.
"""

import functools
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.log import log_response
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import BaseRenderer

from generic_data.schema import (
    MAX_NUMBER_DIGITS,
    ValidationFailed,
    dumps,
    number_problem,
    text_problem,
)

logger = logging.getLogger(__name__)

# Nesting of a request body (objects and lists inside each other), and of ?filter=.
MAX_BODY_DEPTH = 64
CONTENT_TYPE = "application/json"
# Keys clients send under another name than the API's, refused with the right one named.
RENAMED_KEYS = {"expected_version": "version", "q": "search"}


# --- Errors --------------------------------------------------------------------------------


class ApiError(Exception):
    """A refusal with its HTTP status, error code and field-level errors."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.errors = status, code, errors or []
        self.headers = headers or {}


class ErrorItem(Schema):
    """One problem: the row (1-based, in a list of rows) and the field it is in."""

    row: int | None = None
    field: str | None = None
    message: str


class ErrorBody(Schema):
    code: str
    message: str
    errors: list[ErrorItem] | None = None


class Error(Schema):
    """Every error answer of the API."""

    error: ErrorBody


STATUS_MEANINGS = {
    400: "Bad input: the message and `errors` name each field and the reason",
    401: "No credentials, or credentials that are not valid (WWW-Authenticate: Bearer)",
    403: "Not allowed: another project's key, a missing permission, a failed CSRF check",
    404: "No such project, table or row (or one that is deleted, or another tenant's)",
    405: "The method is not allowed here (Allow names those that are)",
    409: "A conflict: a stale `version`, a unique value in use, a name taken, a reference",
    413: "The request body is larger than the server accepts",
    415: "The request body is not application/json",
    429: "Too many requests (Retry-After says when to try again)",
    500: "The server failed; nothing was written",
    503: "The database is not reachable right now (Retry-After)",
}


def errors(*statuses: int) -> dict[int, type[Error]]:
    """The error answers of an operation, for its `response=`: {status: Error}."""
    return dict.fromkeys((*statuses, 405, 500, 503), Error)


def json_bytes(payload: Any) -> bytes:
    """The JSON of `payload`, decimals exact. A lone surrogate (which only a client can have
    put into an echoed key) is written as its JSON escape, so the output is valid UTF-8."""
    return dumps(payload).encode("utf-8", "backslashreplace")


def json_response(payload: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json_bytes(payload), status=status, content_type=CONTENT_TYPE)


def error_response(
    status: int,
    code: str,
    message: str,
    errors: list | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = [e if isinstance(e, dict) else e.as_dict() for e in errors]
    response = json_response({"error": body}, status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def enforce_csrf(request: HttpRequest) -> None:
    """Django's CSRF check for a session request (API views themselves are csrf_exempt)."""
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason:
        raise ApiError(403, "csrf_failed", f"CSRF check failed: {reason}")


# --- JSON in ---------------------------------------------------------------------------------


def header_text(value: str | None, limit: int = 1000) -> str | None:
    """A header's value fit for the database (the audit trail), or None: without NUL or a
    lone surrogate, cut to `limit` characters."""
    if value is None or text_problem(value) is not None:
        return None
    return value[:limit]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, where: str) -> Any:
    """JSON text parsed (fractions as exact Decimals) and checked: nesting, strings, numbers.
    Every refusal is a 400 naming `where` and the place inside it."""
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "bad_json", f"{where}: nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_json", f"{where} is not JSON: {error}") from None
    except ValueError as error:  # an integer of more than 4,300 digits, NaN, Infinity
        raise ApiError(400, "bad_json", f"{where}: {error}") from None
    check_json(value, where)
    return value


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_json(value: Any, where: str) -> None:
    """Refuse (400) nesting beyond MAX_BODY_DEPTH, strings PostgreSQL cannot take, and
    numbers of more than MAX_NUMBER_DIGITS digits, anywhere in `value`."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        problem = None
        if depth > MAX_BODY_DEPTH:
            problem = f"nested more than {MAX_BODY_DEPTH} levels deep"
        elif isinstance(item, str):
            problem = text_problem(item)
        elif isinstance(item, dict):
            for key, inner in item.items():
                key_problem = text_problem(key)
                if key_problem is not None:
                    problem, path = f"a key {key_problem}", path or "(top level)"
                    break
                stack.append((inner, _child(path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, _child(path, n), depth + 1) for n, inner in enumerate(item))
        else:
            problem = number_problem(item)
        if problem is not None:
            field = path or None
            message = f"{field}: {problem}" if field else problem
            raise ApiError(
                400, "invalid", f"{where}: {message}", [{"field": field, "message": problem}]
            )


class JsonParser(Parser):
    """Request bodies: JSON objects only (415 otherwise), checked by parse_json."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        body = request.body  # over DATA_UPLOAD_MAX_MEMORY_SIZE: RequestDataTooBig, 413
        if not body:
            return {}
        if request.content_type != CONTENT_TYPE:
            shown = request.content_type or "no Content-Type"
            raise ApiError(
                415,
                "unsupported_media_type",
                f"the request body must be JSON sent as {CONTENT_TYPE}, not {shown}",
            )
        payload = parse_json(body, "the request body")
        if not isinstance(payload, dict):
            raise ApiError(400, "bad_json", "the request body must be a JSON object")
        return payload


# --- JSON out --------------------------------------------------------------------------------


class JsonRenderer(BaseRenderer):
    media_type = CONTENT_TYPE

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> bytes:
        return json_bytes(data)


# --- Exceptions to answers -------------------------------------------------------------------


def _location(loc: tuple) -> str | None:
    """A pydantic error's place as the client wrote it: rows[2].price, limit, project_id."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        source = parts.pop(0)
        if source == "body" and parts and parts[0] == "body":
            parts.pop(0)  # the handler's parameter, which holds the whole body
    path = ""
    for part in parts:
        path = _child(path, part)
    return path or None


def _validation_items(exc: ValidationError) -> list[dict[str, Any]]:
    items = []
    for error in exc.errors:
        field = _location(tuple(error.get("loc", ())))
        kind = error.get("type")
        if kind == "extra_forbidden":
            key = field.rsplit(".", 1)[-1] if field else ""
            message = "is not a key of this request"
            if key in RENAMED_KEYS:
                message += f" (use '{RENAMED_KEYS[key]}')"
        elif kind == "missing":
            message = "is required"
        else:
            message = str(error.get("msg", "is not valid"))
            message = message[:1].lower() + message[1:]
        items.append({"field": field, "message": message})
    return items


def _on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    items = _validation_items(exc)
    message = "; ".join(f"{i['field']}: {i['message']}" if i["field"] else i["message"]
                        for i in items)  # fmt: skip
    return error_response(400, "invalid", message or "the request is not valid", items)


def _on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.code, str(exc), exc.errors, exc.headers)


def _on_validation_failed(request: HttpRequest, exc: ValidationFailed) -> HttpResponse:
    return error_response(400, "invalid", str(exc), exc.errors)


def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ApiError):  # ninja wraps what JsonParser refuses
        return _on_api_error(request, exc.__cause__)
    code = {401: "unauthorized", 403: "forbidden", 429: "too_many_requests"}
    headers = {}
    wait = getattr(exc, "wait", None)
    if exc.status_code == 429 and wait is not None:
        headers["Retry-After"] = str(max(1, round(wait)))
    return error_response(
        exc.status_code, code.get(exc.status_code, "error"), exc.message, headers=headers
    )


def _on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error_response(
        401, "unauthorized", "send an API key (Authorization: Bearer <key>) or sign in"
    )


def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "not_found", f"there is no API endpoint at {request.path}")


def _on_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error_response(413, "too_large", "the request body is too large")


def _on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
    """Any other exception: what Django does with one (the signal, which the test client
    re-raises; the log), answered as hzm.errors answers a 500, in JSON also with DEBUG."""
    from hzm.errors import server_error

    got_request_exception.send(sender=None, request=request)
    response = server_error(request)
    log_response(
        "%s: %s",
        response.reason_phrase,
        request.path,
        response=response,
        request=request,
        exception=exc,
    )
    return response


class HzmApi(NinjaAPI):
    """NinjaAPI with this project's JSON, error shape and extra OpenAPI components."""

    def __init__(self, *, components: dict[str, Any] | None = None, **options: Any) -> None:
        super().__init__(renderer=JsonRenderer(), parser=JsonParser(), **options)
        self.components = components or {}
        handlers: dict[type[Exception], Callable[..., HttpResponse]] = {
            Exception: _on_exception,
            ApiError: _on_api_error,
            ValidationFailed: _on_validation_failed,
            ValidationError: _on_validation_error,
            HttpError: _on_http_error,
            AuthenticationError: _on_authentication_error,
            Http404: _on_not_found,
            RequestDataTooBig: _on_too_large,
        }
        for exc_class, handler in handlers.items():
            self.add_exception_handler(exc_class, handler)

    def problem(self, exc_class: type[Exception]) -> None:
        """Answer `exc_class` (with `status`, `code`, `errors`) as an API error."""
        self.add_exception_handler(
            exc_class,
            lambda request, exc: error_response(
                exc.status, exc.code, str(exc), exc.errors, getattr(exc, "headers", None)
            ),
        )

    def _get_urls(self) -> list[Any]:
        patterns = super()._get_urls()
        for pattern in patterns:
            pattern.callback = _json_not_allowed(pattern.callback)
        return patterns

    def get_content_type(self) -> str:
        return CONTENT_TYPE  # JSON is UTF-8 by definition (RFC 8259): no charset parameter

    def get_openapi_operation_id(self, operation: Any) -> str:
        return operation.view_func.__name__

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(self.components)
        _write_refs(schema)
        for operation in _operations(schema):
            for status, answer in operation.get("responses", {}).items():
                meaning = STATUS_MEANINGS.get(int(status)) if str(status).isdigit() else None
                phrase = HTTPStatus(int(status)).phrase if meaning else None
                if meaning and answer.get("description") in (None, "", "OK", phrase):
                    answer["description"] = meaning
        return schema


def _write_refs(document: Any) -> None:
    """{"x-component": name} (generic_data.contract._ref) as {"$ref": ...}, in place."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "x-component" in item:
                item["$ref"] = f"#/components/schemas/{item.pop('x-component')}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in schema.get("paths", {}).values() for op in item.values()]


def _json_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view with ninja's plain-text 405 answered in JSON (OPTIONS: 204), Allow kept."""

    @functools.wraps(view)
    def run(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = sorted(m.strip() for m in response["Allow"].split(",") if m.strip())
        if request.method == "OPTIONS":
            answer = HttpResponse(status=204)
        else:
            answer = error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here (allowed: {', '.join(allowed)})",
            )
        answer["Allow"] = ", ".join([*allowed, "OPTIONS"])
        return answer

    return run


__all__ = [
    "MAX_BODY_DEPTH",
    "MAX_NUMBER_DIGITS",
    "ApiError",
    "Error",
    "HzmApi",
    "enforce_csrf",
    "error_response",
    "errors",
    "header_text",
    "json_response",
    "parse_json",
]
