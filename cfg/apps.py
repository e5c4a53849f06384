from django.apps import AppConfig


class CfgConfig(AppConfig):
    name = "cfg"
    verbose_name = "Platform configuration"
