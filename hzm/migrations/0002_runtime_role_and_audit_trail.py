"""The runtime role, request metadata in the context, and a tamper-proof audit trail.

- The runtime role (settings.HZM_APP_ROLE) is created with no way around row level
  security, and may use the platform schemas; table grants come with each app.
- app.set_request_context() puts the request id, client IP and user agent into the
  transaction's settings, next to the tenant and user of app.set_context().
- ops.log_audit() becomes SECURITY DEFINER: the runtime role needs (and gets) no
  INSERT on ops.audit_logs, so it cannot forge, change or delete audit rows. It now
  records schema.table, the request metadata and the key of tables whose primary
  key is not `id`, and never stores a secret (app.redact_secrets()).
- app.soft_delete() lets the table's owner purge a row for real, explicitly
  (hzm.db.softdelete.purge), and only the owner.
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import EnsureRuntimeRole, GrantSchemaUsage, InstallFunction

# Reversing restores the seed's definitions, as the foundation froze them.
foundation = import_module("hzm.migrations.0001_foundation")

SET_REQUEST_CONTEXT = """
BEGIN
  PERFORM set_config('app.request_id', COALESCE(p_request_id, ''), true);
  PERFORM set_config('app.ip_address', COALESCE(host(p_ip_address), ''), true);
  PERFORM set_config('app.user_agent', COALESCE(p_user_agent, ''), true);
END"""

# Columns whose values never reach the audit trail: the key stays (the change is
# visible), the value becomes "[redacted]".
REDACT_SECRETS = """
  SELECT coalesce(jsonb_object_agg(
           key,
           CASE WHEN key IN ('password_hash', 'token', 'key_hash', 'key_encrypted',
                             'secret_encrypted', 'backup_codes_encrypted',
                             'email_verification_token', 'api_key', 'api_key_password')
                     AND value <> 'null'::jsonb
                THEN '"[redacted]"'::jsonb
                ELSE value END), '{}'::jsonb)
  FROM jsonb_each(doc)
"""

LOG_AUDIT = """
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_key text;
BEGIN
  IF TG_NARGS > 0 THEN
    SELECT string_agg(v_row ->> k.column_name, ',' ORDER BY k.position) INTO v_key
    FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position);
  ELSE
    v_key := v_row ->> 'id';
  END IF;
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  VALUES (
    -- The context's tenant; a platform admin (no tenant context) changing a tenant's
    -- row is recorded under that row's tenant (for core.tenants, the row itself), so
    -- the tenant sees it too.
    COALESCE(
      app.current_tenant(),
      (v_row ->> 'tenant_id')::int,
      CASE WHEN TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants'
           THEN (v_row ->> 'id')::int END
    ),
    app.current_user_id(),
    TG_OP,
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
    v_key,
    CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN app.redact_secrets(to_jsonb(OLD)) END,
    CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN app.redact_secrets(to_jsonb(NEW)) END,
    nullif(current_setting('app.ip_address', true), '')::inet,
    nullif(current_setting('app.user_agent', true), ''),
    nullif(current_setting('app.request_id', true), '')
  );
  RETURN NULL;
END"""


SOFT_DELETE = """
DECLARE v_user int := app.current_user_id();
BEGIN
  -- An explicit purge (app.purge = 'on') deletes for real, but only for the table's
  -- owner: the runtime role can set the flag, yet never owns a table.
  IF current_setting('app.purge', true) = 'on'
     AND pg_catalog.pg_has_role(current_user,
           (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID), 'USAGE') THEN
    RETURN OLD;
  END IF;
  EXECUTE format(
    'UPDATE %I.%I SET is_deleted = true, deleted_at = now(), deleted_by = $1 WHERE id = $2',
    TG_TABLE_SCHEMA, TG_TABLE_NAME
  ) USING v_user, OLD.id;
  RETURN NULL;
END"""


class Migration(migrations.Migration):
    dependencies = [("hzm", "0001_foundation")]

    operations = [
        EnsureRuntimeRole(),
        GrantSchemaUsage("app"),
        GrantSchemaUsage("core"),
        GrantSchemaUsage("cfg"),
        GrantSchemaUsage("ops"),
        InstallFunction(
            name="app.set_request_context",
            arguments="p_request_id text, p_ip_address inet, p_user_agent text",
            returns="void",
            body=SET_REQUEST_CONTEXT,
        ),
        InstallFunction(
            name="app.redact_secrets",
            arguments="doc jsonb",
            returns="jsonb",
            body=REDACT_SECRETS,
            language="sql",
            volatility="IMMUTABLE",
            strict=True,
            parallel_safe=True,
        ),
        InstallFunction(
            name="ops.log_audit",
            arguments="",
            returns="trigger",
            body=LOG_AUDIT,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
            replaces={"returns": "trigger", "body": foundation.LOG_AUDIT},
        ),
        InstallFunction(
            name="app.soft_delete",
            arguments="",
            returns="trigger",
            body=SOFT_DELETE,
            replaces={"returns": "trigger", "body": foundation.SOFT_DELETE},
        ),
    ]
