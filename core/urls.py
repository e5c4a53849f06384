"""URLs of tenant users' sign-in (included under api/v1/auth/ by hzm/urls.py); see views.py."""

from django.urls import path

from core import views

app_name = "auth"

urlpatterns = [
    path("csrf", views.csrf, name="csrf"),
    path("login", views.sign_in, name="login"),
    path("session", views.session, name="session"),
    path("logout", views.sign_out, name="logout"),
]
