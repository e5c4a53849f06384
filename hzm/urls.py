"""URL configuration: the admin, /healthz, and the HTTP API under /api/v1/ (django-ninja).

The API is one NinjaAPI (hzm.api.HzmApi) of two routers: the sign-in of core/views.py
under /api/v1/auth/, the tables and rows of generic_data/views.py under
/api/v1/projects/. /api/v1/openapi.json is its OpenAPI document and /api/v1/docs the
interactive page (Swagger UI from ninja's static files, served like the admin's: no CDN).
"""

from django.contrib import admin
from django.urls import include, path, re_path

from core.views import router as auth_router
from generic_data import services
from generic_data.views import COMPONENTS
from generic_data.views import router as data_router
from hzm import errors, health
from hzm.api import HzmApi

api = HzmApi(
    title="HZM Platform DB",
    version="1",
    description=(
        "User-defined tables and their rows, for a tenant's API key "
        "(`Authorization: Bearer <key>`) or a signed-in tenant user's session. Every error "
        'is JSON: `{"error": {"code", "message", "errors": [{"row", "field", "message"}]}}`.'
    ),
    urls_namespace="api-v1",
    components=COMPONENTS,
)
api.problem(services.ServiceError)
api.add_router("/auth/", auth_router)
api.add_router("/", data_router)

urlpatterns = [
    # The admin header's language switch (django.views.i18n.set_language): under /admin/,
    # so that the admin's process (HZM_SERVE=admin) serves it.
    path("admin/i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/v1/", api.urls),
    # Anything else under /api/ is a JSON 404, also with DEBUG (whose 404 page is HTML).
    re_path(r"^api(/|$)", errors.api_not_found),
]

# JSON under /api/ (a database outage: 503), Django's HTML pages elsewhere.
handler404 = errors.not_found
handler500 = errors.server_error
