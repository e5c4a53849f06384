"""Tenant users' sign-in over JSON, under /api/v1/auth/ (a django-ninja router, mounted
by hzm/urls.py; described in /api/v1/openapi.json).

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
from django.utils.cache import add_never_cache_headers
from ninja import Router, Schema
from pydantic import ConfigDict, Field

from core import sign_in_throttle
from core.auth import authenticate_credentials
from core.sign_in_throttle import client_address, throttled_email
from hzm.api import ApiError, enforce_csrf, errors
from hzm.db.context import is_platform_staff, request_context

BACKEND = "core.auth.UserBackend"

router = Router(tags=["sign-in"])


class Credentials(Schema):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, json_schema_extra={"format": "email"})
    password: str = Field(max_length=1000, json_schema_extra={"format": "password"})


class UserOut(Schema):
    id: int
    tenant_id: int
    email: str
    name: str | None


class SignedIn(Schema):
    user: UserOut


class CsrfToken(Schema):
    csrf_token: str = Field(description="send it back as X-CSRFToken with unsafe requests")


def _user_json(user: Any) -> dict[str, Any]:
    return {
        "id": user.pk,
        "tenant_id": user.tenant_id,
        "email": str(user.email),
        "name": user.name,
    }


@router.get("csrf", response={200: CsrfToken, **errors()}, url_name="csrf", summary="CSRF token")
def csrf(request: HttpRequest, response: HttpResponse) -> dict[str, str]:
    """The CSRF token, also set as the csrftoken cookie: send it as X-CSRFToken with every
    POST, PATCH and DELETE of a session (login included)."""
    add_never_cache_headers(response)
    return {"csrf_token": get_token(request)}


@router.post(
    "login",
    response={200: SignedIn, **errors(400, 401, 403, 413, 415, 429)},
    url_name="login",
    summary="Sign in",
)
def sign_in(request: HttpRequest, response: HttpResponse, credentials: Credentials) -> Any:
    """Sign a tenant user in: a session cookie for the API. Needs the CSRF token. 401 for a
    wrong email or password (or a suspended tenant), 403 for platform staff."""
    add_never_cache_headers(response)
    enforce_csrf(request)
    email, address = throttled_email(credentials.email), client_address(request)
    if email is not None:
        _refuse_if_locked_out(sign_in_throttle.wait_seconds(email, address))
    user = authenticate_credentials(credentials.email, credentials.password)
    if user is None:
        if email is not None:
            _refuse_if_locked_out(sign_in_throttle.record_failure(email, address))
        raise ApiError(401, "invalid_credentials", "the email or the password is wrong")
    if is_platform_staff(user):
        raise ApiError(403, "forbidden", "platform staff sign in to the admin, not here")
    # In the user's own context: login() records the sign-in on the user's row, which
    # row level security shows only there, and the audit trail names the user; the
    # throttle clears the failures of the user's own email only.
    with request_context(request, user):
        login(request, user, backend=BACKEND)
        sign_in_throttle.clear_failures(address)
    return {"user": _user_json(user)}


def _refuse_if_locked_out(wait: int) -> None:
    """429 while this email is locked out from this address (core/sign_in_throttle.py)."""
    if wait > 0:
        raise ApiError(
            429,
            "too_many_requests",
            f"too many failed sign-ins of this email from this address: try again in "
            f"{wait} seconds",
            headers={"Retry-After": str(wait)},
        )


@router.get(
    "session", response={200: SignedIn, **errors(401)}, url_name="session", summary="Who am I"
)
def session(request: HttpRequest, response: HttpResponse) -> Any:
    """The signed-in user, or 401."""
    add_never_cache_headers(response)
    user = request.user
    if not user.is_authenticated or is_platform_staff(user):
        raise ApiError(401, "unauthorized", "not signed in")
    return {"user": _user_json(user)}


@router.post(
    "logout", response={204: None, **errors(403)}, url_name="logout", summary="Sign out"
)
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the session. Needs the CSRF token."""
    enforce_csrf(request)
    logout(request)
    response = HttpResponse(status=204)
    add_never_cache_headers(response)
    return response


