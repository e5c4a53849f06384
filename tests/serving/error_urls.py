"""A test-only URLconf: the project's URLs and handlers, plus views that fail on purpose."""

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.db.transaction import TransactionManagementError
from django.http import HttpRequest, HttpResponse
from django.urls import path

from hzm import urls as project


def database_gone(request: HttpRequest) -> HttpResponse:
    raise OperationalError("terminating connection due to administrator command")


def connection_closed(request: HttpRequest) -> HttpResponse:
    raise InterfaceError("connection already closed")


def wrapped_database_error(request: HttpRequest) -> HttpResponse:
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError as error:
        raise RuntimeError("could not load the table") from error


def bug(request: HttpRequest) -> HttpResponse:
    raise ValueError("a bug")


class FailingCleanupMiddleware:
    """Fails after an error response, as a clean-up query on a broken transaction does."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 500:
            raise TransactionManagementError("An error occurred in the current transaction.")
        return response


handler404 = project.handler404
handler500 = project.handler500

# Before the project's: its last pattern answers every other path under /api/ with a 404.
urlpatterns = [
    path("api/v1/fail/database/", database_gone),
    path("api/v1/fail/connection/", connection_closed),
    path("api/v1/fail/wrapped/", wrapped_database_error),
    path("api/v1/fail/bug/", bug),
    path("fail/database/", database_gone),
    path("fail/bug/", bug),
    *project.urlpatterns,
]
