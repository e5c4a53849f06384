"""URLs of the generic data API (included under api/v1/ by hzm/urls.py); see views.py."""

from django.urls import path

from generic_data import views

app_name = "generic_data"

urlpatterns = [
    path("projects/<int:project_id>/tables/", views.tables, name="tables"),
    path("projects/<int:project_id>/tables/<str:table>/", views.table, name="table"),
    path("projects/<int:project_id>/tables/<str:table>/rows/", views.rows, name="rows"),
    path(
        "projects/<int:project_id>/tables/<str:table>/rows/query/",
        views.rows_query,
        name="rows-query",
    ),
    path(
        "projects/<int:project_id>/tables/<str:table>/rows/<int:row_id>/",
        views.row,
        name="row",
    ),
    path("projects/<int:project_id>/tables/<str:table>/search/", views.search, name="search"),
]
