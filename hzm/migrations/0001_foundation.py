"""The platform foundation: extensions, schemas and the functions of the seed's 001.

Every app's first migration depends on this one. Function bodies are frozen here,
as the seed writes them; a change to one is a new migration.
"""

from django.contrib.postgres.operations import (
    CreateExtension,
    CryptoExtension,
    TrigramExtension,
)
from django.db import migrations

from hzm.db.operations import CreateSchema, InstallFunction

SET_CONTEXT = """
BEGIN
  PERFORM set_config('app.tenant_id', COALESCE(p_tenant_id::text, ''), true);
  PERFORM set_config('app.user_id', COALESCE(p_user_id::text, ''), true);
END"""

CURRENT_TENANT = """
  SELECT nullif(current_setting('app.tenant_id', true), '')::int
"""

CURRENT_USER_ID = """
  SELECT nullif(current_setting('app.user_id', true), '')::int
"""

TOUCH_ROW = """
BEGIN
  NEW.updated_at := now();
  IF TG_OP = 'UPDATE' THEN
    NEW.version := COALESCE(OLD.version, 1) + 1;
  END IF;
  RETURN NEW;
END"""

SOFT_DELETE = """
DECLARE v_user int := app.current_user_id();
BEGIN
  EXECUTE format(
    'UPDATE %I.%I SET is_deleted = true, deleted_at = now(), deleted_by = $1 WHERE id = $2',
    TG_TABLE_SCHEMA, TG_TABLE_NAME
  ) USING v_user, OLD.id;
  RETURN NULL;
END"""

LOG_AUDIT = """
DECLARE v_tenant int := app.current_tenant();
DECLARE v_user   int := app.current_user_id();
BEGIN
  INSERT INTO ops.audit_logs(tenant_id, user_id, action, entity_type, entity_id, old_values, new_values)
  VALUES (
    v_tenant,
    v_user,
    TG_OP::text,
    TG_TABLE_NAME,
    (CASE WHEN TG_OP='INSERT' THEN NEW.id::text ELSE OLD.id::text END),
    CASE WHEN TG_OP='UPDATE' OR TG_OP='DELETE' THEN to_jsonb(OLD) END,
    CASE WHEN TG_OP='INSERT' OR TG_OP='UPDATE' THEN to_jsonb(NEW) END
  );
  RETURN COALESCE(NEW, OLD);
END"""

# The seed's 004 calls jsonb_to_text(), which PostgreSQL does not have. This is it:
# every string, number and boolean anywhere in the document, in document order,
# space-separated. IMMUTABLE, so app.generic_data.search_text can be generated from it.
JSONB_TO_TEXT = """
  SELECT coalesce(string_agg(value #>> '{}', ' '), '')
  FROM jsonb_path_query(doc, 'strict $.**') AS value
  WHERE jsonb_typeof(value) IN ('string', 'number', 'boolean')
"""


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        CreateExtension("uuid-ossp"),
        CryptoExtension(),
        CreateExtension("citext"),
        TrigramExtension(),
        CreateSchema("app"),
        CreateSchema("core"),
        CreateSchema("cfg"),
        CreateSchema("ops"),
        CreateSchema("comms"),
        CreateSchema("billing"),
        InstallFunction(
            name="app.set_context",
            arguments="p_tenant_id int, p_user_id int",
            returns="void",
            body=SET_CONTEXT,
        ),
        InstallFunction(
            name="app.current_tenant",
            arguments="",
            returns="int",
            body=CURRENT_TENANT,
            language="sql",
            volatility="STABLE",
        ),
        InstallFunction(
            name="app.current_user_id",
            arguments="",
            returns="int",
            body=CURRENT_USER_ID,
            language="sql",
            volatility="STABLE",
        ),
        InstallFunction(name="app.touch_row", arguments="", returns="trigger", body=TOUCH_ROW),
        InstallFunction(name="app.soft_delete", arguments="", returns="trigger", body=SOFT_DELETE),
        InstallFunction(name="ops.log_audit", arguments="", returns="trigger", body=LOG_AUDIT),
        InstallFunction(
            name="app.jsonb_to_text",
            arguments="doc jsonb",
            returns="text",
            body=JSONB_TO_TEXT,
            language="sql",
            volatility="IMMUTABLE",
            strict=True,
            parallel_safe=True,
        ),
    ]
