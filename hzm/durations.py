"""PostgreSQL durations in settings ('30s', '500ms', '0'), checked when the settings load."""

import functools
import re
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_DURATION = re.compile(r"\d{1,9}(us|ms|s|min|h|d)?\Z")


def duration(value: Any, name: str) -> str:
    """A PostgreSQL duration ('30s', '500ms', '0'; a bare number is milliseconds), checked."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _not_a_duration(value, name)
    return _duration(value, name)


# Every tenant context asks for its timeouts and lifetime (issue 15): each value is checked
# once. Only ints and strings reach the caches (duration() refuses the rest first).
@functools.lru_cache(maxsize=256)
def _duration(value: int | str, name: str) -> str:
    text = str(value).strip()
    if not _DURATION.match(text):
        raise _not_a_duration(value, name)
    return text


def _not_a_duration(value: Any, name: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"{name} = {value!r} is not a duration: write a whole number with an optional "
        "unit (us, ms, s, min, h, d), e.g. 30s, 500ms or 0 for none"
    )


_SECONDS_PER_UNIT = {"us": 1e-6, "ms": 1e-3, "": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}


def duration_seconds(value: Any, name: str) -> int:
    """A duration as whole seconds (at least 1), for what PostgreSQL does not time itself."""
    duration(value, name)  # refuses what is no duration, and so what no cache could key
    return _seconds(value, name)


@functools.lru_cache(maxsize=256)
def _seconds(value: int | str, name: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([a-z]*)", duration(value, name)).groups()
    seconds = int(int(number) * _SECONDS_PER_UNIT[unit])
    if seconds < 1:
        raise ImproperlyConfigured(f"{name} = {value!r} must be at least one second")
    return seconds
