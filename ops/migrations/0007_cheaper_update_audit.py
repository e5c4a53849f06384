"""A cheaper audit of a one-row UPDATE, and of a statement's INSERTs (issue 15).

- ops.log_audit() finds an UPDATE's changed columns in one pass: the names of the columns
  whose value is unchanged (one jsonb_each of the new image), and both images less those
  are the changed columns, old and new (0006 built each side with its own
  jsonb_object_agg). The same values are compared the same way (their jsonb images), so
  it records the same: the changed columns with the row's key, nothing for a no-op.
  app.redact_secrets() now runs in a plain expression, as the tenant and actor already
  did: PL/pgSQL keeps a plain expression's function state for the transaction, where a
  function inside the INSERT is set up again on every run.
- ops.log_audit_inserts() names each row by its key columns through ops.audit_entity_id()
  when the trigger passes key columns, no longer through a subquery in the INSERT: a
  subquery's plan is set up on every run of the statement even when no row needs it (as
  for generic data, whose key is `id`), and that set-up was about a third of a one-row
  insert's audit (bench/RESULTS.md, writes).
- ops.audit_entity_id(doc, key_columns): the key columns' values in the document, in
  the given order, comma-separated; both audit functions use it for a table keyed by
  other columns than `id`. Pure (IMMUTABLE), not SECURITY DEFINER: it reads nothing.

Both audit functions stay SECURITY DEFINER with a pinned search_path, take the tenant and
actor only from app.current_tenant() and app.current_user_id(), and keep their EXECUTE
revoked from PUBLIC (CREATE OR REPLACE keeps a function's privileges). Reversing restores
0006's bodies exactly, then drops ops.audit_entity_id().
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import InstallFunction

# 0006 froze the bodies this migration replaces; reversing puts them back.
cheaper_audit = import_module("ops.migrations.0006_cheaper_audit")

DEFINER = cheaper_audit.DEFINER

AUDIT_ENTITY_ID = """
BEGIN
  RETURN (SELECT string_agg(doc ->> k.column_name, ',' ORDER BY k.position)
          FROM unnest(key_columns) WITH ORDINALITY AS k(column_name, position));
END"""

LOG_AUDIT = """
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_before jsonb;
  v_same text[];
  v_old jsonb;
  v_new jsonb;
  v_key text;
  v_tenant int;
  v_user int;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- The columns whose value is unchanged, in one pass; both images less those are the
    -- changed columns, old and new.
    v_before := to_jsonb(OLD);
    v_same := ARRAY(SELECT n.key FROM jsonb_each(v_row) AS n
                    WHERE n.value IS NOT DISTINCT FROM v_before -> n.key);
    v_old := v_before - v_same;
    v_new := v_row - v_same;
    -- Nothing but the touch trigger's bookkeeping changed: no change to record.
    IF v_new - ARRAY['updated_at', 'version'] = '{}'::jsonb THEN
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
  v_key := CASE WHEN TG_NARGS = 0 THEN v_row ->> 'id' ELSE ops.audit_entity_id(v_row, TG_ARGV) END;
  -- Every function in a plain expression, none inside the INSERT: a plain expression's
  -- function keeps its state for the transaction, a statement's is set up again each time.
  v_tenant := app.current_tenant();
  v_user := app.current_user_id();
  v_old := app.redact_secrets(v_old);
  v_new := app.redact_secrets(v_new);
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
    v_old,
    v_new,
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
    -- A function, not a subquery: a subquery's plan is set up on every run of the
    -- statement, even when no row needs it.
    CASE WHEN TG_NARGS = 0 THEN r.doc ->> 'id' ELSE ops.audit_entity_id(r.doc, TG_ARGV) END,
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
    dependencies = [("ops", "0006_cheaper_audit")]

    operations = [
        InstallFunction(
            name="ops.audit_entity_id",
            arguments="doc jsonb, key_columns text[]",
            returns="text",
            body=AUDIT_ENTITY_ID,
            volatility="IMMUTABLE",
            strict=True,
            parallel_safe=True,
        ),
        InstallFunction(
            name="ops.log_audit",
            arguments="",
            returns="trigger",
            body=LOG_AUDIT,
            **DEFINER,
            replaces={"returns": "trigger", "body": cheaper_audit.LOG_AUDIT, **DEFINER},
        ),
        InstallFunction(
            name="ops.log_audit_inserts",
            arguments="",
            returns="trigger",
            body=LOG_AUDIT_INSERTS,
            **DEFINER,
            replaces={"returns": "trigger", "body": cheaper_audit.LOG_AUDIT_INSERTS, **DEFINER},
        ),
    ]
