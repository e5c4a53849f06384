from django.apps import AppConfig


class GenericDataConfig(AppConfig):
    name = "generic_data"
    verbose_name = "Generic data"

    def ready(self) -> None:
        from generic_data import checks  # noqa: F401 - registers the database check
