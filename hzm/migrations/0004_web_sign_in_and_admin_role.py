"""What the production logins need: sessions and sign-in under least privilege, the admin role.

The web process logs in as an authenticator that owns nothing and holds no privilege of
its own (NOINHERIT, granted only the runtime role); every request runs as the runtime
role, which row level security binds. Before a request knows its tenant, Django must
still load the session and the signed-in user; the runtime role sees no user without a
tenant context and may not touch django_session. These SECURITY DEFINER functions do
exactly that and no more, with search_path pinned, callable by the runtime role and the
platform-staff role only (never PUBLIC):

- app.session_load/save/delete/exists(key): one session by its key. Nothing lists
  sessions: a caller learns only what it already holds the key of.
- app.auth_user(id): what a signed-in request needs of its user (no password hash: a
  fingerprint of it, so a password change still ends other sessions), and whether the
  user and its tenant are live and active (`usable`).
- app.auth_login(email): the id and password hash of one user, for the sign-in form to
  verify in Python (Argon2); auth_user() then says whether it may sign in.

The platform-staff role (<HZM_APP_ROLE>_admin, e.g. hzm_app_admin) holds exactly what
the Django admin reads and writes; a login granted it (README: the production admin)
needs BYPASSRLS as well, since staff see every tenant. The runtime role may read
django_migrations, for /healthz.
"""

from django.db import migrations

from hzm.db.operations import (
    EnsureServiceRole,
    GrantExecute,
    GrantNamedTablePrivileges,
    GrantServiceExecute,
    GrantServiceSchemaUsage,
    GrantServiceTablePrivileges,
    InstallFunction,
)

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

SESSION_LOAD_ARGUMENTS = "p_session_key text"
SESSION_LOAD = """
  SELECT s.session_data FROM public.django_session AS s
  WHERE s.session_key = p_session_key AND s.expire_date > now()
"""

SESSION_EXISTS_ARGUMENTS = "p_session_key text"
SESSION_EXISTS = """
  SELECT EXISTS (SELECT FROM public.django_session AS s WHERE s.session_key = p_session_key)
"""

SESSION_SAVE_ARGUMENTS = (
    "p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean"
)
# True when written: a new key that was free (must_create), or an existing session
# updated. Django's database store answers False with CreateError / UpdateError.
SESSION_SAVE = """
BEGIN
  IF p_must_create THEN
    INSERT INTO public.django_session AS s (session_key, session_data, expire_date)
    VALUES (p_session_key, p_session_data, p_expire_date)
    ON CONFLICT (session_key) DO NOTHING;
  ELSE
    UPDATE public.django_session AS s
       SET session_data = p_session_data, expire_date = p_expire_date
     WHERE s.session_key = p_session_key;
  END IF;
  RETURN FOUND;
END"""

SESSION_DELETE_ARGUMENTS = "p_session_key text"
SESSION_DELETE = """
  DELETE FROM public.django_session AS s WHERE s.session_key = p_session_key
"""

# A user and its tenant are usable when both are active and not deleted: a deactivated
# or deleted user, or one of a suspended (inactive) or deleted tenant, is signed out on
# the next request.
USABLE = """u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE"""

AUTH_USER_ARGUMENTS = "p_user_id int"
AUTH_USER_RETURNS = (
    "TABLE(id int, tenant_id int, email text, name text, role text, timezone text, "
    "is_active boolean, is_deleted boolean, version int, last_login_at timestamptz, "
    "password_fingerprint text, usable boolean)"
)
AUTH_USER = f"""
  SELECT u.id, u.tenant_id, u.email::text, u.name::text, u.role::text, u.timezone::text,
         u.is_active, u.is_deleted, u.version, u.last_login_at,
         encode(sha256(convert_to(u.password_hash, 'UTF8')), 'hex'),
         {USABLE}
  FROM core.users AS u
  JOIN core.tenants AS t ON t.id = u.tenant_id
  WHERE u.id = p_user_id
"""

AUTH_LOGIN_ARGUMENTS = "p_email text"
AUTH_LOGIN_RETURNS = "TABLE(id int, password_hash text)"
# citext's own equality (case-insensitive, and served by users_email_key): with the
# search_path pinned, a bare `=` would resolve to text's.
AUTH_LOGIN = """
  SELECT u.id, u.password_hash::text
  FROM core.users AS u
  WHERE u.email OPERATOR(public.=) p_email::public.citext
"""

FUNCTIONS = [
    ("app.session_load", SESSION_LOAD_ARGUMENTS, "text", SESSION_LOAD, "sql", "STABLE"),
    ("app.session_exists", SESSION_EXISTS_ARGUMENTS, "boolean", SESSION_EXISTS, "sql", "STABLE"),
    ("app.session_save", SESSION_SAVE_ARGUMENTS, "boolean", SESSION_SAVE, "plpgsql", "VOLATILE"),
    ("app.session_delete", SESSION_DELETE_ARGUMENTS, "void", SESSION_DELETE, "sql", "VOLATILE"),
    ("app.auth_user", AUTH_USER_ARGUMENTS, AUTH_USER_RETURNS, AUTH_USER, "sql", "STABLE"),
    ("app.auth_login", AUTH_LOGIN_ARGUMENTS, AUTH_LOGIN_RETURNS, AUTH_LOGIN, "sql", "STABLE"),
]

DML = ["SELECT", "INSERT", "UPDATE", "DELETE"]
# What the Django admin (platform staff) reads and writes, model by model.
ADMIN_TABLES = [
    ("core.tenant", DML),
    # Its own sign-in (last login) and password change; the user pickers of RBAC pages.
    ("core.user", ["SELECT", "UPDATE"]),
    ("core.organization", DML),
    ("core.organizationmember", DML),
    ("core.permission", DML),
    ("core.role", DML),
    ("core.rolepermission", DML),
    ("core.userrole", DML),
    ("cfg.language", DML),
    ("cfg.currency", DML),
    ("cfg.exchangerate", DML),
    ("cfg.translation", DML),
    ("cfg.featureflag", DML),
    ("cfg.featureflagoverride", DML),
    ("ops.auditlog", ["SELECT"]),
    ("ops.systemlog", ["SELECT"]),
    ("comms.notification", ["SELECT"]),
    # Requeueing failed jobs.
    ("comms.emailqueue", ["SELECT", "UPDATE"]),
    ("comms.webhookdelivery", ["SELECT", "UPDATE"]),
    ("comms.webhook", DML),
    ("billing.plan", DML),
    ("billing.subscription", ["SELECT", "INSERT", "UPDATE"]),
    # Django's admin history and the content types it names.
    ("admin.logentry", ["SELECT", "INSERT"]),
    ("contenttypes.contenttype", ["SELECT"]),
]


class Migration(migrations.Migration):
    dependencies = [
        ("hzm", "0003_add_microservices"),
        ("core", "0005_add_file_storage"),
        ("cfg", "0005_unique_global_translations"),
        ("ops", "0003_add_monitoring"),
        ("comms", "0002_add_webhooks"),
        ("billing", "0001_add_billing"),
        ("generic_data", "0004_unique_field_values"),
        ("sessions", "0001_initial"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        EnsureServiceRole("admin"),
        *[GrantServiceSchemaUsage("admin", schema) for schema in ("app", "core", "cfg", "ops")],
        *[GrantServiceSchemaUsage("admin", schema) for schema in ("comms", "billing")],
        *[
            operation
            for name, arguments, returns, body, language, volatility in FUNCTIONS
            for operation in (
                InstallFunction(
                    name=name,
                    arguments=arguments,
                    returns=returns,
                    body=body,
                    language=language,
                    volatility=volatility,
                    **DEFINER,
                ),
                GrantExecute(name, arguments),
                GrantServiceExecute(name, arguments, "admin"),
            )
        ],
        *[
            GrantServiceTablePrivileges(model, "admin", privileges)
            for model, privileges in ADMIN_TABLES
        ],
        GrantNamedTablePrivileges("django_migrations", ["SELECT"]),
        GrantNamedTablePrivileges("django_migrations", ["SELECT"], service="admin"),
    ]
