from django.apps import AppConfig


class HzmConfig(AppConfig):
    name = "hzm"
    label = "hzm"
    verbose_name = "HZM platform"
