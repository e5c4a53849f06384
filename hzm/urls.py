"""URL configuration: the Django admin for platform configuration."""

from django.contrib import admin
from django.urls import include, path

from hzm import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", include("generic_data.urls")),
]
