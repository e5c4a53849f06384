"""gunicorn's settings for production: `gunicorn --config python:hzm.gunicorn hzm.wsgi`.

Read from the environment or `.env`, as the settings are: HZM_BIND, WEB_CONCURRENCY,
FORWARDED_ALLOW_IPS. Any other gunicorn setting can be given on the command line or in
GUNICORN_CMD_ARGS (both win over this module), e.g. GUNICORN_CMD_ARGS="--timeout 60".
"""

import os
from pathlib import Path

import environ

# The environment wins; .env beside manage.py fills in the rest (as hzm/settings.py does).
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)


def _int_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {value!r}") from None
    if number < 1:
        raise SystemExit(f"{name} must be at least 1, got {number}")
    return number


def _cores() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# Loopback by default: the TLS-terminating proxy in front is the only client.
bind = [os.environ.get("HZM_BIND", "").strip() or "127.0.0.1:8000"]
# Synchronous workers, one request at a time each, so each holds at most one database
# connection: workers x instances must fit the server's max_connections (or the pool).
workers = _int_from_env("WEB_CONCURRENCY", 2 * _cores() + 1)
worker_class = "sync"
threads = 1
# A request running longer is killed (its worker restarted); a restart or SIGTERM lets
# requests in progress finish for graceful_timeout seconds.
timeout = 30
graceful_timeout = 30
# Only used by threaded workers; the sync worker closes each connection after its response.
keepalive = 5
# Recycle workers now and then (jittered, so that they do not all restart at once), which
# bounds any slow memory growth.
max_requests = 1000
max_requests_jitter = 100

# The proxies whose X-Forwarded-Proto gunicorn trusts to mark a request as HTTPS (what
# Django's request.is_secure() and SECURE_SSL_REDIRECT then see); from other addresses
# the header is ignored.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "").strip() or "127.0.0.1"

# Access log to stdout, errors to stderr: the service manager collects both.
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
proc_name = "hzm"

# The heartbeat file of each worker lives in memory: on a disk-backed /tmp (containers)
# its fchmod calls can stall a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# gunicorn's control socket has one default path per user ($HOME/.gunicorn/gunicorn.ctl):
# a second instance on the machine would take it over from the first. Not used here.
control_socket_disable = True


def on_starting(server: object) -> None:
    """Load the settings once in the master, before any worker starts.

    A configuration error (a bad HZM_ENCRYPTION_KEY, a missing SECRET_KEY) then stops
    gunicorn at once with its one-paragraph message and exit status 2, rather than each
    worker failing to boot with a traceback.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hzm.settings")
    from django.conf import settings

    from hzm.configuration import exit_on_configuration_error

    with exit_on_configuration_error("gunicorn", argv=[]):
        settings.INSTALLED_APPS  # noqa: B018  (their checks run as they load)
