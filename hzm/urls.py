"""URL configuration: the Django admin for platform configuration."""

from django.contrib import admin
from django.urls import include, path

from hzm import errors, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/auth/", include("core.urls")),
    path("api/v1/", include("generic_data.urls")),
]

# JSON under /api/ (a database outage: 503), Django's HTML pages elsewhere.
handler404 = errors.not_found
handler500 = errors.server_error
