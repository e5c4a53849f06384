"""PostgreSQL durations in settings ('30s', '500ms', '0'), checked when the settings load."""

import re
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_DURATION = re.compile(r"\d{1,9}(us|ms|s|min|h|d)?\Z")


def duration(value: Any, name: str) -> str:
    """A PostgreSQL duration ('30s', '500ms', '0'; a bare number is milliseconds), checked."""
    text = str(value).strip() if isinstance(value, int | str) and value is not True else ""
    if not _DURATION.match(text):
        raise ImproperlyConfigured(
            f"{name} = {value!r} is not a duration: write a whole number with an optional "
            "unit (us, ms, s, min, h, d), e.g. 30s, 500ms or 0 for none"
        )
    return text


_SECONDS_PER_UNIT = {"us": 1e-6, "ms": 1e-3, "": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}


def duration_seconds(value: Any, name: str) -> int:
    """A duration as whole seconds (at least 1), for what PostgreSQL does not time itself."""
    text = duration(value, name)
    number, unit = re.fullmatch(r"(\d+)([a-z]*)", text).groups()
    seconds = int(int(number) * _SECONDS_PER_UNIT[unit])
    if seconds < 1:
        raise ImproperlyConfigured(f"{name} = {value!r} must be at least one second")
    return seconds
