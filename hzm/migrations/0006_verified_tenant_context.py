"""A tenant context that SQL injection cannot forge (issue 12).

Until now the tenant was whatever the setting app.tenant_id said, and any role may
set_config() it. From here the context is a token the application signs
(hzm/db/context_tokens.py) and the database verifies:

- hzm_private.context_keys holds the keys, in a schema no role but the owner may use;
  migrate copies them from HZM_CONTEXT_KEY (hzm.db.context_keys, on post_migrate);
  hzm_private.verifying_keys() returns them to the verifying functions as a constant their
  plans fold in (no query per call), re-planned whenever the keys change;
- app.current_tenant() and app.current_user_id() read the token in app.context and return
  its tenant and user only if it was made for this backend (pg_backend_pid()) and this
  transaction (now()), has not expired at the statement's start, and is signed by one of
  those keys. They are SECURITY DEFINER so that they can read the keys, and executable by
  every role, as before (a reviewed exception to "no definer function for PUBLIC": they
  tell a caller only what its own transaction's token says); the policies call
  them once per statement (an InitPlan), so verification is per statement, never per row.
  Everything that trusts the context calls them: the policies, the search and API-key
  functions, the system log, permissions, the audit trigger and the soft delete;
- app.sign_context(tenant, user) makes a token for the current transaction with the first
  key, for the owner's own code only (nobody is granted EXECUTE): the billing trigger that
  must update core.tenants as the subscription's tenant, the owner's purge;
- app.set_context(tenant, user), the guide's function, no longer sets a context: it ends
  the one in force (a caller naming a tenant gets none);
- app.auth_login(email), the sign-in form's lookup, no longer hands the password hash to
  whoever holds the runtime role: it returns it sealed (AES-256-CBC under a key derived
  from the first context key, a random IV), which only the application can open
  (hzm.secrets.unseal_password_hash), so SQL injection fetches ciphertext;
- billing.sync_tenant_subscription() enters the subscription's tenant with a token of its
  own instead of rewriting app.tenant_id, and puts the caller's token back.
"""

from django.db import migrations

from hzm.db.operations import (
    CreateContextKeyStore,
    GrantPublicExecute,
    InstallFunction,
    RevokePublicExecute,
)

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

# The verifying keys, first (signing) key first. IMMUTABLE on purpose: the planner folds
# it into the cached plans of the functions below, so verifying needs no query of its
# own; hzm.db.context_keys invalidates those plans (ALTER FUNCTION) whenever it changes
# the keys. Executable by its owner only, in a schema no one else may use.
VERIFYING_KEYS = """
  SELECT coalesce(array_agg(k.key ORDER BY k.position), '{}') FROM hzm_private.context_keys AS k
"""

# The token, as hzm/db/context_tokens.py writes it, split on '.':
#   [1] version [2] tenant [3] user [4] expires [5] backend pid [6] transaction start
#   [7] signature.
# PL/pgSQL of simple expressions only (no query per call: the keys are a folded constant);
# the policies call it once per statement. The cheap comparisons come first; the casts
# run only on text the regular expression or the signature vouched for, so no token can
# raise.
VERIFIED_CLAIM = """
DECLARE
  p text[] := string_to_array(current_setting('app.context', true), '.');
  k bytea;
BEGIN
  IF cardinality(p) = 7 AND p[1] = 'v1' AND p[5] = pg_backend_pid()::text
     AND p[6] = ((extract(epoch FROM now()) * 1000000)::bigint)::text
     AND p[4] ~ '^[0-9]{1,12}$' THEN
    IF p[4]::bigint > extract(epoch FROM statement_timestamp()) THEN
      FOREACH k IN ARRAY hzm_private.verifying_keys() LOOP
        IF encode(public.hmac(convert_to(array_to_string(p[1:6], '.'), 'UTF8'), k, 'sha256'),
                  'hex') = p[7] THEN
          RETURN nullif(p[@@INDEX@@], '')::int;
        END IF;
      END LOOP;
    END IF;
  END IF;
  RETURN NULL;
END"""
CURRENT_TENANT = VERIFIED_CLAIM.replace("@@INDEX@@", "2")
CURRENT_USER_ID = VERIFIED_CLAIM.replace("@@INDEX@@", "3")

# hzm/migrations/0001_foundation.py, as it froze them.
PREVIOUS_CURRENT_TENANT = """
  SELECT nullif(current_setting('app.tenant_id', true), '')::int
"""
PREVIOUS_CURRENT_USER_ID = """
  SELECT nullif(current_setting('app.user_id', true), '')::int
"""
PREVIOUS_SET_CONTEXT = """
BEGIN
  PERFORM set_config('app.tenant_id', COALESCE(p_tenant_id::text, ''), true);
  PERFORM set_config('app.user_id', COALESCE(p_user_id::text, ''), true);
END"""

SET_CONTEXT = """
BEGIN
  -- A tenant context is a signed token now (app.context): naming a tenant proves nothing,
  -- so this ends the context in force instead of switching it.
  PERFORM set_config('app.context', '', true);
END"""

SIGN_CONTEXT_ARGUMENTS = "p_tenant_id int, p_user_id int"
# Valid in this transaction only, and for an hour of it at most.
SIGN_CONTEXT = """
  SELECT t.m || '.' || encode(public.hmac(convert_to(t.m, 'UTF8'), k.key, 'sha256'), 'hex')
  FROM (
    SELECT concat_ws('.', 'v1',
                     coalesce(p_tenant_id::text, ''), coalesce(p_user_id::text, ''),
                     extract(epoch FROM statement_timestamp())::bigint + 3600,
                     pg_backend_pid(),
                     (extract(epoch FROM now()) * 1000000)::bigint) AS m
  ) AS t
  JOIN hzm_private.context_keys AS k ON k.position = 1
"""

AUTH_LOGIN_ARGUMENTS = "p_email text"
AUTH_LOGIN_RETURNS = "TABLE(id int, password_hash text)"
# hzm/migrations/0004_web_sign_in_and_admin_role.py, as it froze it.
PREVIOUS_AUTH_LOGIN = """
  SELECT u.id, u.password_hash::text
  FROM core.users AS u
  WHERE u.email OPERATOR(public.=) p_email::public.citext
"""
# 's1.' + base64(iv || ciphertext); the sealing key is HMAC-SHA256(context key, 'password
# seal'), as hzm.secrets derives it; base64 without PostgreSQL's line breaks. VOLATILE: a
# fresh IV each call.
AUTH_LOGIN = """
  SELECT u.id, 's1.' || translate(encode(s.iv || public.encrypt_iv(
           convert_to(u.password_hash::text, 'UTF8'),
           public.hmac('password seal'::bytea, k.key, 'sha256'), s.iv, 'aes-cbc/pad:pkcs'),
         'base64'), E'\\n', '')
  FROM core.users AS u
  CROSS JOIN (SELECT public.gen_random_bytes(16) AS iv) AS s
  JOIN hzm_private.context_keys AS k ON k.position = 1
  WHERE u.email OPERATOR(public.=) p_email::public.citext
"""

# billing/migrations/0001_add_billing.py, as it froze it.
PREVIOUS_SYNC_TENANT_SUBSCRIPTION = """
DECLARE
  v_caller_tenant text := current_setting('app.tenant_id', true);
  v_plan_changed boolean;
  v_plan billing.plans%ROWTYPE;
  v_ends timestamptz;
BEGIN
  PERFORM set_config('app.tenant_id', NEW.tenant_id::text, true);
  IF NEW.status NOT IN ('trialing', 'active', 'past_due') AND EXISTS (
       SELECT 1 FROM billing.subscriptions s
       WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
         AND s.status IN ('trialing', 'active', 'past_due')) THEN
    PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_plan_changed := true;
  ELSE
    v_plan_changed := NEW.plan_id IS DISTINCT FROM OLD.plan_id;
  END IF;
  SELECT * INTO STRICT v_plan FROM billing.plans WHERE id = NEW.plan_id;
  v_ends := CASE
    WHEN NEW.status IN ('canceled', 'expired') THEN NEW.ended_at
    WHEN NEW.cancel_at_period_end THEN NEW.current_period_end
  END;
  UPDATE core.tenants t SET
    subscription_status = NEW.status,
    trial_ends_at = NEW.trial_ends_at,
    subscription_ends_at = v_ends,
    plan = CASE WHEN v_plan_changed THEN v_plan.code ELSE t.plan END,
    max_projects = CASE WHEN v_plan_changed THEN v_plan.max_projects ELSE t.max_projects END,
    max_tables_per_project = CASE WHEN v_plan_changed
      THEN v_plan.max_tables_per_project ELSE t.max_tables_per_project END,
    max_records = CASE WHEN v_plan_changed THEN v_plan.max_records ELSE t.max_records END,
    limits = CASE WHEN v_plan_changed THEN v_plan.limits ELSE t.limits END,
    features = CASE WHEN v_plan_changed THEN v_plan.features ELSE t.features END
  WHERE t.id = NEW.tenant_id
    -- Only a real change: every UPDATE bumps the tenant's version and is audited.
    AND ((t.subscription_status, t.trial_ends_at, t.subscription_ends_at)
           IS DISTINCT FROM (NEW.status, NEW.trial_ends_at, v_ends)
         OR (v_plan_changed AND (t.plan, t.max_projects, t.max_tables_per_project,
                                 t.max_records, t.limits, t.features)
               IS DISTINCT FROM (v_plan.code, v_plan.max_projects,
                                 v_plan.max_tables_per_project, v_plan.max_records,
                                 v_plan.limits, v_plan.features)));
  PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
  RETURN NULL;
END"""
# The same, entering the subscription's tenant with a token of its own.
SYNC_TENANT_SUBSCRIPTION = """
DECLARE
  v_caller_context text := current_setting('app.context', true);
  v_plan_changed boolean;
  v_plan billing.plans%ROWTYPE;
  v_ends timestamptz;
BEGIN
  PERFORM set_config('app.context', app.sign_context(NEW.tenant_id, app.current_user_id()), true);
  IF NEW.status NOT IN ('trialing', 'active', 'past_due') AND EXISTS (
       SELECT 1 FROM billing.subscriptions s
       WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
         AND s.status IN ('trialing', 'active', 'past_due')) THEN
    PERFORM set_config('app.context', coalesce(v_caller_context, ''), true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_plan_changed := true;
  ELSE
    v_plan_changed := NEW.plan_id IS DISTINCT FROM OLD.plan_id;
  END IF;
  SELECT * INTO STRICT v_plan FROM billing.plans WHERE id = NEW.plan_id;
  v_ends := CASE
    WHEN NEW.status IN ('canceled', 'expired') THEN NEW.ended_at
    WHEN NEW.cancel_at_period_end THEN NEW.current_period_end
  END;
  UPDATE core.tenants t SET
    subscription_status = NEW.status,
    trial_ends_at = NEW.trial_ends_at,
    subscription_ends_at = v_ends,
    plan = CASE WHEN v_plan_changed THEN v_plan.code ELSE t.plan END,
    max_projects = CASE WHEN v_plan_changed THEN v_plan.max_projects ELSE t.max_projects END,
    max_tables_per_project = CASE WHEN v_plan_changed
      THEN v_plan.max_tables_per_project ELSE t.max_tables_per_project END,
    max_records = CASE WHEN v_plan_changed THEN v_plan.max_records ELSE t.max_records END,
    limits = CASE WHEN v_plan_changed THEN v_plan.limits ELSE t.limits END,
    features = CASE WHEN v_plan_changed THEN v_plan.features ELSE t.features END
  WHERE t.id = NEW.tenant_id
    -- Only a real change: every UPDATE bumps the tenant's version and is audited.
    AND ((t.subscription_status, t.trial_ends_at, t.subscription_ends_at)
           IS DISTINCT FROM (NEW.status, NEW.trial_ends_at, v_ends)
         OR (v_plan_changed AND (t.plan, t.max_projects, t.max_tables_per_project,
                                 t.max_records, t.limits, t.features)
               IS DISTINCT FROM (v_plan.code, v_plan.max_projects,
                                 v_plan.max_tables_per_project, v_plan.max_records,
                                 v_plan.limits, v_plan.features)));
  PERFORM set_config('app.context', coalesce(v_caller_context, ''), true);
  RETURN NULL;
END"""


def _verified(name: str, body: str, previous: str) -> list:
    return [
        InstallFunction(
            name=name,
            arguments="",
            returns="int",
            body=body,
            volatility="STABLE",
            **DEFINER,
            replaces={
                "returns": "int",
                "body": previous,
                "language": "sql",
                "volatility": "STABLE",
            },
        ),
        # Every role whose statements meet a tenant policy calls it, as before: it tells a
        # caller only what its own transaction's token says.
        GrantPublicExecute(name, "", previously_public=True),
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("hzm", "0005_security_hardening"),
        ("billing", "0001_add_billing"),
        ("core", "0007_index_user_references"),
        ("generic_data", "0006_api_key_lookup_by_whole_key"),
        ("ops", "0005_audit_logs_tenant_id_index"),
        ("comms", "0002_add_webhooks"),
        ("cfg", "0005_unique_global_translations"),
    ]

    operations = [
        CreateContextKeyStore(),
        InstallFunction(
            name="hzm_private.verifying_keys",
            arguments="",
            returns="bytea[]",
            body=VERIFYING_KEYS,
            language="sql",
            volatility="IMMUTABLE",
            **DEFINER,
        ),
        RevokePublicExecute("hzm_private.verifying_keys", ""),
        InstallFunction(
            name="app.sign_context",
            arguments=SIGN_CONTEXT_ARGUMENTS,
            returns="text",
            body=SIGN_CONTEXT,
            language="sql",
            volatility="STABLE",
            **DEFINER,
        ),
        RevokePublicExecute("app.sign_context", SIGN_CONTEXT_ARGUMENTS),
        *_verified("app.current_tenant", CURRENT_TENANT, PREVIOUS_CURRENT_TENANT),
        *_verified("app.current_user_id", CURRENT_USER_ID, PREVIOUS_CURRENT_USER_ID),
        InstallFunction(
            name="app.set_context",
            arguments="p_tenant_id int, p_user_id int",
            returns="void",
            body=SET_CONTEXT,
            replaces={"returns": "void", "body": PREVIOUS_SET_CONTEXT},
        ),
        InstallFunction(
            name="app.auth_login",
            arguments=AUTH_LOGIN_ARGUMENTS,
            returns=AUTH_LOGIN_RETURNS,
            body=AUTH_LOGIN,
            language="sql",
            **DEFINER,
            replaces={
                "returns": AUTH_LOGIN_RETURNS,
                "body": PREVIOUS_AUTH_LOGIN,
                "language": "sql",
                "volatility": "STABLE",
                **DEFINER,
            },
        ),
        InstallFunction(
            name="billing.sync_tenant_subscription",
            arguments="",
            returns="trigger",
            body=SYNC_TENANT_SUBSCRIPTION,
            **DEFINER,
            replaces={"returns": "trigger", "body": PREVIOUS_SYNC_TENANT_SUBSCRIPTION, **DEFINER},
        ),
    ]
