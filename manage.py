#!/usr/bin/env python
"""Django's command-line utility for the HZM platform database.

A configuration error (a bad HZM_ENCRYPTION_KEY, a missing SECRET_KEY, ...) is printed as
one paragraph with its fix and exits with status 2 (hzm.configuration); --traceback shows
the traceback instead.
"""

import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from hzm.configuration import exit_on_configuration_error

    with exit_on_configuration_error("manage.py"):
        settings.INSTALLED_APPS  # noqa: B018  (load the settings: their checks run here)
        execute_from_command_line(sys.argv)
    # Done: close the command's connections, then spare the interpreter the garbage
    # collections it runs at exit over every object Django made (a fifth of a short
    # command's time, migrate's included). Exit handlers (atexit, logging) still run, the
    # standard streams are still flushed; Python never promised __del__ at exit anyway.
    from django.db import connections

    connections.close_all()
    gc.freeze()


if __name__ == "__main__":
    main()
