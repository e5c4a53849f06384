"""The project's 404 and 500 handlers (hzm/urls.py): JSON under /api/, Django's pages elsewhere.

The JSON is the API's own error shape, {"error": {"code": ..., "message": ...}}
(hzm.api.error_response). A database that went away (a restart, a failover)
answers 503 with Retry-After, so that clients retry instead of reporting a bug.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from hzm.api import error_response

API_PREFIX = "/api/"
# About how long a PostgreSQL restart or a failover takes.
RETRY_AFTER_SECONDS = 5


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX) or request.path_info == API_PREFIX.rstrip("/")


def _database_unavailable(exc: BaseException | None) -> bool:
    """True if `exc`, or an exception it was raised from, says the connection failed."""
    while exc is not None:
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.__cause__
    return False


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return error_response(404, "not_found", f"there is no API endpoint at {request.path}")


@csrf_exempt  # a POST to no endpoint is a 404, not a CSRF failure page
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """A path under /api/ that no endpoint has (hzm/urls.py routes them all here)."""
    return error_response(404, "not_found", f"there is no API endpoint at {request.path}")


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api_request(request):
        return defaults.server_error(request)
    # Django calls the handler inside its `except` block: this is the request's exception.
    # Each middleware layer converts an exception on its own, so one request can come here
    # more than once: once the database was found gone, what fails after it (a middleware's
    # clean-up on the dead connection) follows from that.
    if _database_unavailable(sys.exc_info()[1]) or getattr(
        request, "hzm_database_unavailable", False
    ):
        request.hzm_database_unavailable = True
        response = error_response(
            503,
            "database_unavailable",
            f"the database is not reachable right now; retry in {RETRY_AFTER_SECONDS} seconds",
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return error_response(500, "server_error", "the server failed to answer this request")
