from django.apps import AppConfig


class GenericDataConfig(AppConfig):
    name = "generic_data"
    verbose_name = "Generic data"
