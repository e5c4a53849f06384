"""hzm.deploy: deployment safety (dry run, backups, rollback, migration rules) as an app."""

from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "hzm.deploy"
    label = "hzm_deploy"
    verbose_name = "HZM deployment"

    def ready(self) -> None:
        from hzm.deploy import checks  # noqa: F401 - registers the system checks
