"""Configuration errors as one paragraph with the fix, never a traceback.

Every check of the settings (hzm/settings.py, hzm/secrets.py, hzm/durations.py) raises
ImproperlyConfigured with a message that names the variable, what is wrong and how to
fix it. The programs that load the settings (manage.py, hzm.wsgi, hzm.asgi and
gunicorn's master through hzm/gunicorn.py) print that message alone and exit with
EXIT_CONFIGURATION; `manage.py ... --traceback` still shows the traceback.

Env is django-environ's reader, whose values that cannot be cast (CONN_MAX_AGE=abc) are
such an error too, instead of a bare ValueError.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

# Exit codes scripts can rely on (README, Exit codes).
EXIT_CONFIGURATION = 2


class Env(environ.Env):
    """environ.Env whose values of the wrong type are ImproperlyConfigured, named."""

    def get_value(self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, **kwargs):
        try:
            return super().get_value(var, cast=cast, default=default, **kwargs)
        except ImproperlyConfigured:
            raise
        except (TypeError, ValueError) as error:
            kind = {int: "a whole number", float: "a number"}.get(cast)
            what = kind or f"valid ({error})"
            raise ImproperlyConfigured(
                f"{var}={os.environ.get(var)!r} is not {what}: fix it in the environment or "
                ".env (see .env.example)"
            ) from error


def describe(program: str, error: ImproperlyConfigured) -> str:
    """The one paragraph a configuration error is shown as."""
    text = " ".join(str(error).split())
    return f"{program}: configuration error: {text}"


@contextmanager
def exit_on_configuration_error(program: str, argv: list[str] | None = None) -> Iterator[None]:
    """Turn an ImproperlyConfigured raised in the block into its message and exit code 2."""
    try:
        yield
    except ImproperlyConfigured as error:
        if "--traceback" in (sys.argv if argv is None else argv):
            raise
        sys.stderr.write(describe(program, error) + "\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CONFIGURATION) from None
