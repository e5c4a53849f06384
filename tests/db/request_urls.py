"""A test-only URLconf: the project's URLs plus a view that writes, then fails in SQL."""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path

from core.models import Project
from hzm import urls as project


def write_then_fail(request: HttpRequest) -> HttpResponse:
    Project.objects.filter(pk=int(request.GET["project"])).update(name="written")
    with connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM core.projects")
    return HttpResponse("unreachable")


# Before the project's: its last pattern answers every other path under /api/ with a 404.
urlpatterns = [path("api/test/write-then-fail", write_then_fail), *project.urlpatterns]
handler404 = project.handler404
handler500 = project.handler500
