"""ASGI entry point. A configuration error stops the start in one paragraph (exit 2)."""

import os

from django.core.asgi import get_asgi_application

from hzm.configuration import exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
with exit_on_configuration_error("hzm.asgi", argv=[]):
    application = get_asgi_application()
