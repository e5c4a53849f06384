"""WSGI entry point. A configuration error stops the start in one paragraph (exit 2)."""

import os

from django.core.wsgi import get_wsgi_application

from hzm.configuration import exit_on_configuration_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
with exit_on_configuration_error("hzm.wsgi", argv=[]):
    application = get_wsgi_application()
