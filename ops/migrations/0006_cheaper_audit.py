"""A cheaper audit trail (issue 15): changed columns only, no row for a no-op, bulk inserts
audited once per statement.

- ops.log_audit() (the row trigger of every audited table) records an UPDATE as the
  columns whose value changed, old and new, plus the row's key (`id`, or the key columns
  the trigger passes, as for the entity id); INSERT and DELETE still record the whole row.
  An UPDATE that changes no column but the touch trigger's bookkeeping (`updated_at`,
  `version`: app.touch_row() bumps them on every UPDATE) writes no audit row at all: the
  row's values are what they were. When a real column changes, `updated_at` and
  `version` are recorded with it (which version the change made). Values are compared as
  their jsonb images (to_jsonb of OLD and NEW), so a citext 'A' -> 'a' is a change, and
  `updated_by` is an ordinary column: the same values written by another user are a
  change (of updated_by).
- ops.log_audit_inserts() is the same audit of INSERT for a statement trigger with a
  transition table (REFERENCING NEW TABLE AS new_rows): one INSERT ... SELECT into the
  trail per statement, the tenant, the actor and the request read once per statement
  instead of once per row. generic_data 0008 attaches it to app.generic_data, whose bulk
  inserts are the platform's; the other tables keep the row trigger for all three events.
  PostgreSQL 15 allows a transition table only on an AFTER trigger of a single event
  (hence a trigger of its own for INSERT) without a column list, and FOR EACH ROW
  triggers with transition tables not on partitioned tables (a statement trigger there
  sees every partition's rows); all triggers of one table and event share one captured
  transition table per statement, so app.generic_data's count and unique-value triggers
  and this one capture the new rows once.
- app.redact_secrets() gives the same result, cheaper: in PL/pgSQL (its plan cached for
  the session, where the LANGUAGE sql version was planned again by every audit INSERT),
  returning a document that holds none of the secret columns as it is.

Both audit functions stay SECURITY DEFINER with a pinned search_path (the runtime role
cannot write the trail) and take the tenant and actor only from app.current_tenant() and
app.current_user_id(); their EXECUTE stays revoked from PUBLIC (CREATE OR REPLACE keeps
a function's privileges). Reversing restores hzm 0002's bodies exactly.
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import InstallFunction, RevokePublicExecute

# hzm 0002 froze the bodies this migration replaces; reversing puts them back.
audit_trail = import_module("hzm.migrations.0002_runtime_role_and_audit_trail")

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

# hzm 0002's columns, and its result; PL/pgSQL, whose plans live as long as the session: a
# LANGUAGE sql function that cannot be inlined (this one reads jsonb_each) is planned
# again in every statement that calls it, which made the audit's INSERT cost three times
# what it writes. A document holding none of the columns is returned as it is.
REDACT_SECRETS = """
DECLARE
  c_secrets CONSTANT text[] := ARRAY['password_hash', 'token', 'key_hash', 'key_encrypted',
                                     'secret_encrypted', 'backup_codes_encrypted',
                                     'email_verification_token', 'api_key', 'api_key_password'];
BEGIN
  IF NOT doc ?| c_secrets THEN
    RETURN doc;
  END IF;
  RETURN (
    SELECT coalesce(jsonb_object_agg(
             key,
             CASE WHEN key = ANY (c_secrets) AND value <> 'null'::jsonb
                  THEN '"[redacted]"'::jsonb
                  ELSE value END), '{}'::jsonb)
    FROM jsonb_each(doc));
END"""

LOG_AUDIT = """
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_before jsonb;
  v_old jsonb;
  v_new jsonb;
  v_key text;
  v_tenant int;
  v_user int;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- The columns whose value changed, old and new.
    v_before := to_jsonb(OLD);
    SELECT jsonb_object_agg(n.key, v_before -> n.key), jsonb_object_agg(n.key, n.value)
      INTO v_old, v_new
    FROM jsonb_each(v_row) AS n
    WHERE n.value IS DISTINCT FROM v_before -> n.key;
    -- Nothing but the touch trigger's bookkeeping changed: no change to record.
    IF v_new IS NULL OR v_new - ARRAY['updated_at', 'version'] = '{}'::jsonb THEN
      RETURN NULL;
    END IF;
    -- With the row's key, so that each side names its row.
    IF TG_NARGS > 0 THEN
      SELECT jsonb_object_agg(k.column_name, v_before -> k.column_name) || v_old,
             jsonb_object_agg(k.column_name, v_row -> k.column_name) || v_new
        INTO v_old, v_new
      FROM unnest(TG_ARGV) AS k(column_name);
    ELSE
      v_old := jsonb_build_object('id', v_before -> 'id') || v_old;
      v_new := jsonb_build_object('id', v_row -> 'id') || v_new;
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    v_new := v_row;
  ELSE
    v_old := v_row;
  END IF;
  IF TG_NARGS > 0 THEN
    SELECT string_agg(v_row ->> k.column_name, ',' ORDER BY k.position) INTO v_key
    FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position);
  ELSE
    v_key := v_row ->> 'id';
  END IF;
  -- Assigned apart, not called inside the INSERT: a plain expression's function keeps its
  -- state for the transaction, a statement's is set up again each time it runs.
  v_tenant := app.current_tenant();
  v_user := app.current_user_id();
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  VALUES (
    -- The context's tenant; a platform admin (no tenant context) changing a tenant's
    -- row is recorded under that row's tenant (for core.tenants, the row itself), so
    -- the tenant sees it too.
    COALESCE(
      v_tenant,
      (v_row ->> 'tenant_id')::int,
      CASE WHEN TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants'
           THEN (v_row ->> 'id')::int END
    ),
    v_user,
    TG_OP,
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
    v_key,
    app.redact_secrets(v_old),
    app.redact_secrets(v_new),
    nullif(current_setting('app.ip_address', true), '')::inet,
    nullif(current_setting('app.user_agent', true), ''),
    nullif(current_setting('app.request_id', true), '')
  );
  RETURN NULL;
END"""

# ops.log_audit()'s INSERT, for a statement trigger REFERENCING NEW TABLE AS new_rows.
LOG_AUDIT_INSERTS = """
DECLARE
  -- Once per statement, whatever the number of rows.
  v_tenant int := app.current_tenant();
  v_user int := app.current_user_id();
  v_ip inet := nullif(current_setting('app.ip_address', true), '')::inet;
  v_agent text := nullif(current_setting('app.user_agent', true), '');
  v_request text := nullif(current_setting('app.request_id', true), '');
  v_entity text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  v_tenants boolean := TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants';
BEGIN
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  SELECT
    -- As ops.log_audit(): the context's tenant, else the row's.
    COALESCE(v_tenant, (r.doc ->> 'tenant_id')::int,
             CASE WHEN v_tenants THEN (r.doc ->> 'id')::int END),
    v_user,
    'INSERT',
    v_entity,
    CASE WHEN TG_NARGS = 0 THEN r.doc ->> 'id'
         ELSE (SELECT string_agg(r.doc ->> k.column_name, ',' ORDER BY k.position)
               FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position)) END,
    NULL,
    app.redact_secrets(r.doc),
    v_ip,
    v_agent,
    v_request
  -- OFFSET 0 keeps the subquery apart, so each row's to_jsonb() is computed once; the
  -- rows come in the order they were inserted.
  FROM (SELECT to_jsonb(n) AS doc FROM new_rows AS n OFFSET 0) AS r;
  RETURN NULL;
END"""


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0005_audit_logs_tenant_id_index"),
        ("hzm", "0005_security_hardening"),
    ]

    operations = [
        InstallFunction(
            name="app.redact_secrets",
            arguments="doc jsonb",
            returns="jsonb",
            body=REDACT_SECRETS,
            volatility="IMMUTABLE",
            strict=True,
            parallel_safe=True,
            replaces={
                "returns": "jsonb",
                "body": audit_trail.REDACT_SECRETS,
                "language": "sql",
                "volatility": "IMMUTABLE",
                "strict": True,
                "parallel_safe": True,
            },
        ),
        InstallFunction(
            name="ops.log_audit",
            arguments="",
            returns="trigger",
            body=LOG_AUDIT,
            **DEFINER,
            replaces={"returns": "trigger", "body": audit_trail.LOG_AUDIT, **DEFINER},
        ),
        InstallFunction(
            name="ops.log_audit_inserts",
            arguments="",
            returns="trigger",
            body=LOG_AUDIT_INSERTS,
            **DEFINER,
        ),
        # A trigger fires without EXECUTE; with it, a role could attach the function to a
        # table of its own and write the trail as the owner (hzm 0005).
        RevokePublicExecute("ops.log_audit_inserts", ""),
    ]
