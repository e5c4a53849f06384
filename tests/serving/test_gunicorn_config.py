"""hzm/gunicorn.py: its defaults, and what it takes from the environment."""

import importlib
from types import ModuleType

import pytest

import hzm.gunicorn

VARIABLES = ("HZM_BIND", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")


def load(monkeypatch: pytest.MonkeyPatch, **environment: str) -> ModuleType:
    for name in VARIABLES:
        monkeypatch.setenv(name, environment.get(name, ""))
    return importlib.reload(hzm.gunicorn)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hzm.gunicorn.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    config = load(monkeypatch)
    assert config.bind == ["127.0.0.1:8000"]
    assert config.workers == 7
    assert config.threads == 1
    assert config.timeout == 30
    assert config.forwarded_allow_ips == "127.0.0.1"
    assert config.accesslog == "-"
    assert config.max_requests > 0 and config.max_requests_jitter > 0


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(
        monkeypatch,
        HZM_BIND="0.0.0.0:9000",
        WEB_CONCURRENCY="3",
        FORWARDED_ALLOW_IPS="10.0.0.0/8",
    )
    assert config.bind == ["0.0.0.0:9000"]
    assert config.workers == 3
    assert config.forwarded_allow_ips == "10.0.0.0/8"


@pytest.mark.parametrize("value", ["many", "0"])
def test_a_bad_worker_count_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY must be"):
        load(monkeypatch, WEB_CONCURRENCY=value)
