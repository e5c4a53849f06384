from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HzmConfig(AppConfig):
    name = "hzm"
    label = "hzm"
    verbose_name = "HZM platform"

    def ready(self) -> None:
        from hzm.db.context_keys import install_after_migrate

        # Once per migrate (this app's signal only): the database's copy of the context keys.
        post_migrate.connect(
            install_after_migrate, sender=self, dispatch_uid="hzm.install_context_keys"
        )
