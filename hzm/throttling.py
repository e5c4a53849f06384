"""Throttling of the admin's sign-in (/admin/login/) with django-axes.

Failed sign-ins are counted per email address and client IP together (hzm.proxies:
the client behind the trusted proxies) in axes' table `axes_accessattempt`; after
AXES_FAILURE_LIMIT failures within AXES_COOLOFF_TIME that pair is refused, before any
password is hashed, until the cool-off has passed since its last failure (a refused
try does not prolong it), and gets a 429 page saying when to try again. Other
addresses, and other users from the same address, sign in as before.

Only the admin is throttled: the admin's process logs in as the platform admin's role,
which holds axes' tables (ops/migrations/0004); the web process's requests run as the
runtime role, which holds none of them, so every axes hook here does nothing outside
/admin/ (the tenants' sign-in under /api/v1/auth/, the API, code without a request).
"""

import math
from datetime import datetime
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from hzm.db.context import site_part
from hzm.deploy.connection import MigrationConnectionCommand

# axes_accessattempt.username is varchar(255).
USERNAME_MAX_LENGTH = 255


def is_admin_sign_in(request: HttpRequest | None) -> bool:
    """Whether axes should watch this request: one of the admin's (its sign-in form)."""
    path = getattr(request, "path", None)
    return bool(path) and site_part(path) == "admin"


class AdminSignInThrottle(AxesStandaloneBackend):
    """First of AUTHENTICATION_BACKENDS: refuses a locked-out sign-in to the admin.

    axes' backend without ModelBackend (whose permission and user lookups read tables
    the logins may not read); it authenticates nobody, core.auth.UserBackend does.
    """

    def authenticate(
        self, request: HttpRequest | None, username: Any = None, password: Any = None, **kwargs: Any
    ) -> None:
        if not is_admin_sign_in(request):
            return None
        return super().authenticate(request, username, password, **kwargs)


class AdminSignInHandler(AxesDatabaseHandler):
    """axes' database handler (AXES_HANDLER), for the admin's requests only."""

    def is_allowed(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        return not is_admin_sign_in(request) or super().is_allowed(request, credentials)

    def user_login_failed(self, sender: Any, credentials: dict, request: Any = None, **kwargs):
        if is_admin_sign_in(request):
            super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if is_admin_sign_in(request):
            super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
        if is_admin_sign_in(request):
            super().user_logged_out(sender, request, user, **kwargs)


def sign_in_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The email a sign-in is counted under (AXES_USERNAME_CALLABLE), in one case.

    Emails are citext: Admin@X and admin@x are one account, so they are one count.
    """
    if credentials:
        value = credentials.get("username", credentials.get("email"))
    else:
        value = request.POST.get("username")
    if not isinstance(value, str):
        return None
    return value.lower()[:USERNAME_MAX_LENGTH]


def locked_until(request: HttpRequest, credentials: dict | None = None) -> datetime | None:
    """When the request's lock-out ends: the cool-off after the failure that reached the limit."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    limit = get_failure_limit(request, credentials)
    ends = []
    handler = AxesProxyHandler.get_implementation()
    for attempts in handler.get_user_attempts(request, credentials):
        failures = 0
        # Newest first: the lock holds while the attempts within the cool-off reach the limit.
        for attempt_time, count in attempts.order_by("-attempt_time").values_list(
            "attempt_time", "failures_since_start"
        ):
            failures += count
            if failures >= limit:
                ends.append(attempt_time + cool_off)
                break
    return max(ends, default=None)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """429, an admin page naming the time to try again, and Retry-After (AXES_LOCKOUT_CALLABLE)."""
    until = locked_until(request, credentials)
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "username": get_client_username(request, credentials) or "",
        "until": until,
    }
    # Rendered here: AxesMiddleware swaps the view's response for this one, past the point
    # where Django renders a view's TemplateResponse.
    response = render(request, "admin/hzm/locked_out.html", context, status=429)
    if until is not None:
        seconds = (until - timezone.now()).total_seconds()
        response["Retry-After"] = str(max(1, math.ceil(seconds)))
    return response


class AxesOwnerCommand(MigrationConnectionCommand):
    """axes' management commands as owner's commands: MIGRATION_DATABASE_URL from the shell.

    The web login may not touch axes' tables; the owner owns them. Emails given on the
    command line are counted in lower case, as the sign-in counts them.
    """

    help_suffix = "; connects with MIGRATION_DATABASE_URL when it is set (the owner)."

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    @staticmethod
    def counted(email: str) -> str:
        return email.lower()[:USERNAME_MAX_LENGTH]
