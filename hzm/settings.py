"""Settings for the HZM platform database, read from the environment (django-environ).

Every value a deployment changes comes from an environment variable (or a `.env`
file beside manage.py); `.env.example` documents each one. With `DATABASE_URL`
unset the project uses its own embedded PostgreSQL cluster (`hzm.db.localdb`),
started on the first connection.
"""

from pathlib import Path

import environ

from hzm.configuration import Env

BASE_DIR = Path(__file__).resolve().parent.parent

# A value that cannot be read (CONN_MAX_AGE=abc) is a configuration error naming it.
env = Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# A development key only works with DEBUG on: a production start without SECRET_KEY fails.
SECRET_KEY = env.str("SECRET_KEY", default="") or (
    "django-insecure-hzm-development-only" if DEBUG else ""
)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is not set: set it in the environment or .env (see .env.example) to 50 "
        "or more random characters, e.g. from `python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'`, or set DEBUG=true for local development."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"] if DEBUG else [])

INSTALLED_APPS = [
    # django.contrib.admin, with the platform's admin site (hzm.admin.HzmAdminSite).
    "hzm.admin.HzmAdminConfig",
    "hzm",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "import_export",
    # django-ninja (the HTTP API, hzm/api.py): installed for its templates and static
    # files, so /api/v1/docs serves Swagger UI from here rather than from a CDN.
    "ninja",
    # Throttling of the admin's sign-in (hzm.throttling); its tables live in public.
    "axes",
    # Deployment safety: only its system checks (migration file names); no models.
    "hzm.deploy.apps.DeployConfig",
    "cfg",
    "ops",
    "core",
    "generic_data",
    "comms",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Right after SecurityMiddleware (HTTPS redirect, HSTS): the static files of STATIC_ROOT.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # API keys are checked and counted (scopes, addresses, origins, rate limits) in a short
    # transaction of their own, before the request's (generic_data.auth).
    "generic_data.auth.ApiKeyMiddleware",
    # Before the session: everything but the admin runs as the runtime role from here on
    # (hzm.db.context.RuntimeRoleMiddleware), the session and user lookups included.
    "hzm.db.context.RuntimeRoleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin's language: the language cookie (the header's switch), else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: tenant users' requests run as the runtime role.
    "hzm.db.context.TenantContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns an admin sign-in that axes refused into the lock-out page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hzm.urls"
WSGI_APPLICATION = "hzm.wsgi.application"
ASGI_APPLICATION = "hzm.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Overrides of Django's own admin templates (admin/base_site.html: the language
        # switch), which the admin app's templates would otherwise win over.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Our engine is Django's PostgreSQL backend plus two things: foreign keys carry the
# ON DELETE rule of the schema (hzm.db.fields.ForeignKey), and the embedded cluster
# is started lazily on the first connection when DATABASE_URL is unset.
DB_ENGINE = "hzm.db.backends.postgresql"
HZM_LOCALDB = not env.str("DATABASE_URL", default="")
if HZM_LOCALDB:
    from hzm.db.localdb import LocalCluster

    _default_db = LocalCluster(BASE_DIR).django_settings()
else:
    _default_db = env.db_url("DATABASE_URL")
_default_db["ENGINE"] = DB_ENGINE
_default_db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
_default_db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=None)}
# Parameters travel apart from the statement (psycopg's server-side binding), so the
# query text that pg_stat_activity shows other sessions of the same login holds
# placeholders, never a tenant's values. Django keeps psycopg's prepared statements off
# (prepare_threshold None), which PgBouncer in transaction mode needs.
_default_db.setdefault("OPTIONS", {}).setdefault("server_side_binding", True)
# Server-side cursors do not survive PgBouncer's transaction pooling.
_default_db.setdefault(
    "DISABLE_SERVER_SIDE_CURSORS", env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False)
)
DATABASES = {"default": _default_db}

# The runtime role: the NOLOGIN, NOBYPASSRLS role every tenant-facing query runs as
# (hzm.db.context.tenant_context switches to it). Migrations create it when absent.
HZM_APP_ROLE = env.str("HZM_APP_ROLE", default="hzm_app")
# Paths whose requests never run in a tenant context, even for a signed-in tenant user.
HZM_TENANT_CONTEXT_EXEMPT_PATHS = ["/healthz"]
# Which parts of the site this process serves: "api" (the web process, logged in as the
# authenticator: no admin), "admin" (the platform admin's process, logged in as the
# admin login: only /admin/ and /healthz), or "all" (development: one superuser login).
HZM_SERVE = env.str("HZM_SERVE", default="all")
if HZM_SERVE not in ("all", "api", "admin"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"HZM_SERVE={HZM_SERVE!r}: use api (the web process), admin (the platform admin's "
        "process) or all (development)"
    )
HZM_ADMIN_URL_PREFIX = "/admin/"
# What bounds every unit of work run as the runtime role (each request, each
# tenant_context), transaction-local: PostgreSQL durations (30s, 500ms; 0 = none).
# tenant_context(..., statement_timeout="10min") overrides them for a long job.
HZM_STATEMENT_TIMEOUT = env.str("HZM_STATEMENT_TIMEOUT", default="30s")
HZM_LOCK_TIMEOUT = env.str("HZM_LOCK_TIMEOUT", default="5s")
HZM_IDLE_IN_TRANSACTION_TIMEOUT = env.str("HZM_IDLE_IN_TRANSACTION_TIMEOUT", default="60s")
from hzm.durations import duration, duration_seconds  # noqa: E402

for _name in ("HZM_STATEMENT_TIMEOUT", "HZM_LOCK_TIMEOUT", "HZM_IDLE_IN_TRANSACTION_TIMEOUT"):
    duration(globals()[_name], _name)

# Sessions and sign-in through SECURITY DEFINER lookups (core/sessions.py, core/auth.py):
# the web login may read neither django_session nor core.users.
SESSION_ENGINE = "core.sessions"
# axes' check comes first: a locked-out admin sign-in is refused before a password is hashed.
AUTHENTICATION_BACKENDS = ["hzm.throttling.AdminSignInThrottle", "core.auth.UserBackend"]

# Admin sign-in throttling (django-axes, hzm/throttling.py): AXES_FAILURE_LIMIT failed
# sign-ins of one email from one client IP lock that pair out for AXES_COOLOFF_MINUTES
# after the last of them. The tenants' sign-in (/api/v1/auth/login) keeps the same policy in
# app.sign_in_failures (core/sign_in_throttle.py).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
_cool_off_minutes = env.int("AXES_COOLOFF_MINUTES", default=15)
if AXES_FAILURE_LIMIT < 1 or _cool_off_minutes < 1:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"AXES_FAILURE_LIMIT={AXES_FAILURE_LIMIT}, AXES_COOLOFF_MINUTES={_cool_off_minutes}: "
        "both must be whole numbers of at least 1 (defaults 5 and 15)"
    )
# app.count_sign_in_failure() (the tenants' throttle) locks a pair out for at most a day.
if _cool_off_minutes > 1440:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"AXES_COOLOFF_MINUTES={_cool_off_minutes}: at most 1440 (a day; default 15)"
    )
from datetime import timedelta  # noqa: E402

AXES_COOLOFF_TIME = timedelta(minutes=_cool_off_minutes)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "hzm.throttling.AdminSignInHandler"
AXES_USERNAME_FORM_FIELD = "username"  # the admin form's field; also the key of credentials
AXES_USERNAME_CALLABLE = "hzm.throttling.sign_in_username"
AXES_CLIENT_IP_CALLABLE = "hzm.proxies.client_ip"
AXES_LOCKOUT_CALLABLE = "hzm.throttling.lockout_response"
# A refused try during the lock-out does not prolong it: the page can name its end.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful sign-in clears that email and address's failures.
AXES_RESET_ON_SUCCESS = True
# Sign-ins are in the audit trail (ops.audit_logs: the user's last login, with its
# request); axes' own access log and its admin pages are off.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False

# --- Deployment (issue 6) ------------------------------------------------------------
# The owner's URL for schema changes: `migrate`, `backup`, `restore`, `rollback` and
# `deploy`, run from the command line, connect with it instead of DATABASE_URL
# (hzm.deploy.connection.migration_connection). None: they use DATABASE_URL.
HZM_MIGRATION_DATABASE = (
    env.db_url("MIGRATION_DATABASE_URL") if env.str("MIGRATION_DATABASE_URL", default="") else None
)
# Seconds a migration waits for a table lock before it gives up and is retried with
# backoff (lock_timeout), so that DDL never queues the application behind it for long.
HZM_MIGRATION_LOCK_TIMEOUT = env.float("HZM_MIGRATION_LOCK_TIMEOUT", default=5.0)
# The schema snapshot `migrate` builds an empty database from when it is up to date
# (hzm.deploy.snapshot; `manage.py schema_snapshot --write` makes it).
HZM_SCHEMA_SNAPSHOT = Path(
    env.str("HZM_SCHEMA_SNAPSHOT", default=str(BASE_DIR / "hzm" / "schema_snapshot.sql"))
)
# Where `manage.py backup` writes <database>-<UTC time>-<migration state>.dump (+ .json).
BACKUP_DIR = Path(env.str("BACKUP_DIR", default=str(BASE_DIR / "backups")))
# django-migration-linter, run over every migration by tests/deploy/test_migration_safety.py
# (hzm.deploy.lint). Index builds on existing tables and irreversible migrations are
# errors here, not warnings.
MIGRATION_LINTER_OPTIONS = {
    "warnings_as_errors": [
        "CREATE_INDEX",
        "CREATE_INDEX_EXCLUSIVE",
        "DROP_INDEX",
        "REINDEX",
        "RUNSQL_REVERSIBLE",
        "RUNPYTHON_REVERSIBLE",
    ],
}
# Migrations the linter flags that were reviewed and accepted, "app.migration": why.
HZM_MIGRATION_LINT_ACCEPTED = {
    "core.0002_tenant_isolation": "first release (0.1.0), with core.0001: its unique "
    "constraints and indexes are built on tables no deployment has filled yet",
    "core.0005_add_file_storage": "first release (0.1.0): core.files (core.0001) is still empty "
    "everywhere when its UNIQUE (tenant_id, id) is added",
    "cfg.0005_unique_global_translations": "first release (0.1.0): cfg.translations holds "
    "only reference data when its unique key is rebuilt",
    # django-axes' own: a deployment gets axes with all its migrations at once, so the
    # tables they alter are still empty.
    **{
        f"axes.{name}": "django-axes 8.3.1, installed with the admin sign-in throttle: its "
        "migrations run at once, on axes tables created empty by the same migrate"
        for name in (
            "0002_auto_20151217_2044",
            "0005_remove_accessattempt_trusted",
            "0006_remove_accesslog_trusted",
            "0007_alter_accessattempt_unique_together",
            "0009_add_session_hash",
        )
    },
}

# Fernet key(s) encrypting stored secrets (hzm/secrets.py); first one encrypts. Checked
# here so that a missing or malformed key stops the start, not the first secret written.
HZM_ENCRYPTION_KEY = env.str("HZM_ENCRYPTION_KEY", default="")
from hzm.secrets import parse_encryption_keys  # noqa: E402

parse_encryption_keys(HZM_ENCRYPTION_KEY)

# Key(s) signing tenant contexts (hzm/db/context_tokens.py); first one signs, all verify.
# migrate copies them into the database (hzm_private.context_keys), which accepts a
# tenant context only with a token signed by one of them.
HZM_CONTEXT_KEY = env.str("HZM_CONTEXT_KEY", default="")
from hzm.secrets import parse_context_keys  # noqa: E402

parse_context_keys(HZM_CONTEXT_KEY)
# How long a context's token is valid (from its transaction's start): a longer job passes
# tenant_context(..., lifetime=...).
HZM_CONTEXT_LIFETIME = env.str("HZM_CONTEXT_LIFETIME", default="1h")
duration_seconds(HZM_CONTEXT_LIFETIME, "HZM_CONTEXT_LIFETIME")

# JSON fixtures remember the fields each row names, so that loaddata of a row that exists
# writes only those that differ (hzm.db.columns.WritesOnlyChanges): reloading reference
# data changes nothing, bumps no version and writes no audit row.
SERIALIZATION_MODULES = {"json": "hzm.db.fixtures"}

# django-import-export (translations in the admin): every import runs in a transaction,
# rolled back whole on any row error; the admin sets the audit actor inside it.
IMPORT_EXPORT_USE_TRANSACTIONS = True

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
AUTH_USER_MODEL = "core.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The admin in the platform's languages: Django's own translations of the admin, ours in
# locale/ (.po and compiled .mo; python manage.py compilemessages after editing a .po).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("tr", "Türkçe"), ("de", "Deutsch"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Serving in production (issue 10) ------------------------------------------------
# gunicorn (hzm/gunicorn.py) runs hzm.wsgi behind a TLS-terminating proxy; WhiteNoise
# (MIDDLEWARE) serves STATIC_ROOT, filled by `manage.py collectstatic`. The security
# settings are what `check --deploy` asks for: on by default without DEBUG, off with it,
# each one settable from the environment.
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic also writes gzip copies, which WhiteNoise serves to clients that take
    # them. Not a manifest storage: {% static %} works without a collectstatic first
    # (the tests), at the price of short cache lifetimes instead of hashed names.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# WhiteNoise rescans the files on each request with DEBUG (its default), following the
# environment's DEBUG rather than the test runner's (pytest turns DEBUG off at run time;
# WhiteNoise would then warn in every test that STATIC_ROOT, uncollected, is missing).
WHITENOISE_AUTOREFRESH = DEBUG

_PRODUCTION = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_PRODUCTION)
# Load balancers and deploy scripts probe /healthz over plain HTTP, past the proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Browsers then refuse plain HTTP to the host (and its subdomains) for that long.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_PRODUCTION)
# "HTTP_X_FORWARDED_PROTO,https": trust that header to mean HTTPS, from any client. Under
# gunicorn it is not needed (gunicorn trusts X-Forwarded-Proto from FORWARDED_ALLOW_IPS only).
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header and (
    len(_proxy_ssl_header) != 2 or not _proxy_ssl_header[0].startswith("HTTP_")
):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be '<request.META name>,<value>', e.g. "
        f"'HTTP_X_FORWARDED_PROTO,https'; got {','.join(_proxy_ssl_header)!r}"
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The proxies whose forwarding headers count, as gunicorn reads the same variable
# (hzm/gunicorn.py): from them Django takes the client's IP from X-Forwarded-For
# (hzm.proxies.client_ip: the audit trail, the admin sign-in throttle).
from hzm.proxies import parse_trusted_proxies  # noqa: E402

HZM_FORWARDED_ALLOW_IPS = parse_trusted_proxies(
    env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1"])
) or ["127.0.0.1"]
# Django's defaults, which check --deploy asks for, stated here so that they stay.
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
