"""Tenant users' sign-in over JSON, mounted at /api/v1/auth/ (core/urls.py).

    GET  csrf      {"csrf_token": ...} and the csrftoken cookie, for the first POST
    POST login     {"email", "password"}: a session for a tenant user (200 with the user)
    GET  session   the signed-in user, or 401
    POST logout    ends the session (204)

Unsafe methods need Django's CSRF token (X-CSRFToken header with the csrftoken
cookie), login included, so no other site can sign a browser in. The session works as
the API's credentials afterwards: a session request runs in its user's tenant context
exactly as an API-key request does. Platform staff sign in to the admin, not here.
"""

from typing import Any

from django.contrib.auth import login, logout
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from core.auth import authenticate_credentials
from generic_data.views import ApiError, enforce_csrf, error_response, json_response, read_body
from hzm.db.context import is_platform_staff, request_metadata, tenant_context

BACKEND = "core.auth.UserBackend"


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "id": user.pk,
        "tenant_id": user.tenant_id,
        "email": str(user.email),
        "name": user.name,
    }


def _method_not_allowed(request: HttpRequest, allowed: str) -> HttpResponse:
    response = error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    response["Allow"] = allowed
    return response


@never_cache
@ensure_csrf_cookie
def csrf(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, "GET")
    return json_response({"csrf_token": get_token(request)})


@never_cache
@csrf_exempt  # checked below, so that a failure answers JSON like every API error
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    try:
        enforce_csrf(request)
        body = read_body(request)
        unknown = set(body) - {"email", "password"}
        if unknown:
            raise ApiError(400, "invalid", f"unknown keys: {', '.join(sorted(unknown))}")
        missing = [key for key in ("email", "password") if not isinstance(body.get(key), str)]
        if missing:
            raise ApiError(
                400,
                "invalid",
                f"{', '.join(missing)}: required, a string",
                [{"field": key, "message": "required, a string"} for key in missing],
            )
        user = authenticate_credentials(body["email"], body["password"])
        if user is None:
            raise ApiError(401, "invalid_credentials", "the email or the password is wrong")
        if is_platform_staff(user):
            raise ApiError(403, "forbidden", "platform staff sign in to the admin, not here")
        request_id, ip_address, user_agent = request_metadata(request)
        # In the user's own context: login() records the sign-in on the user's row, which
        # row level security shows only there, and the audit trail names the user.
        with tenant_context(
            user.tenant_id,
            user.pk,
            request_id=request_id,
            ip_address=ip_address,
            user_agent=user_agent,
        ):
            login(request, user, backend=BACKEND)
    except ApiError as error:
        return error_response(error.status, error.code, str(error), error.errors)
    return json_response({"user": _user_json(user)})


@never_cache
def session(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _method_not_allowed(request, "GET")
    user = request.user
    if not user.is_authenticated or is_platform_staff(user):
        return error_response(401, "unauthorized", "not signed in")
    return json_response({"user": _user_json(user)})


@never_cache
@csrf_exempt  # checked below (JSON errors)
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _method_not_allowed(request, "POST")
    try:
        enforce_csrf(request)
    except ApiError as error:
        return error_response(error.status, error.code, str(error), error.errors)
    logout(request)
    return HttpResponse(status=204)
