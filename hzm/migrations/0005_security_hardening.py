"""Close the privilege paths an outside audit found (issue 11), in the database.

- SECURITY DEFINER trigger functions keep no EXECUTE for PUBLIC: a trigger fires without
  it, but with it any role could attach the function to a table of its own (a TEMP one)
  and run it as the owner on rows of its choosing. ops.write_system_log() is the runtime
  role's only, and bounds what it stores.
- No TEMPORARY on the database for PUBLIC: a temporary table outlives the transaction on
  a pooled connection and shadows a table named without its schema (pg_temp comes first
  in the search path), e.g. django_session, for everyone who uses that connection next.
- Large objects (outside every table and its row level security) cannot be created or
  imported by PUBLIC, nor can one web session cancel or terminate the others' (all are
  the same login); only a superuser can take those functions from PUBLIC, so a migration
  run by another owner leaves it to the README's superuser set-up (dbdoctor reports it).
- The runtime role and the service roles insert every column but an identity `id`
  (identity values stay the sequence's: no tenant inserts ids ahead of it and breaks
  other tenants' inserts; core.files' random uuid may still be given) and update every
  column but `id`; on core.users never `role`, so a tenant cannot make its own user a
  platform admin.
- Every tenant policy reads the tenant once per statement, `(SELECT app.current_tenant())`,
  an InitPlan, instead of once per row of a plan that does not filter by tenant first.
- The owner-only audit policies apply to the owner only (TO the role migrate runs as),
  so they are no longer OR-ed into the runtime role's reads of its own trail.
"""

from django.db import migrations

from hzm.db.operations import (
    AlterPolicy,
    GrantExecute,
    InstallFunction,
    RestrictColumnPrivileges,
    RevokeDatabaseTemporary,
    RevokeCatalogFunctions,
    RevokePublicExecute,
)

WRITE_SYSTEM_LOG_ARGUMENTS = (
    "p_level text, p_source text, p_message text, "
    "p_context jsonb DEFAULT '{}', p_request_id text DEFAULT NULL"
)
# ops/migrations/0003_add_monitoring.py, as it froze it.
PREVIOUS_WRITE_SYSTEM_LOG = """
  INSERT INTO ops.system_logs (level, source, message, context, request_id)
  VALUES (
    p_level,
    p_source,
    p_message,
    -- The caller never names the tenant or user: those come from the context only.
    (coalesce(p_context, '{}'::jsonb) - 'tenant_id' - 'user_id')
      || jsonb_strip_nulls(jsonb_build_object(
           'tenant_id', app.current_tenant(), 'user_id', app.current_user_id())),
    coalesce(p_request_id, nullif(current_setting('app.request_id', true), ''))
  )
  RETURNING id
"""
# The same, within bounds: a log line is not a place to store data.
WRITE_SYSTEM_LOG = """
DECLARE
  v_id bigint;
BEGIN
  IF length(p_source) > 100 THEN
    RAISE EXCEPTION 'system log source: % characters, at most 100', length(p_source)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF length(p_message) > 10000 THEN
    RAISE EXCEPTION 'system log message: % characters, at most 10000', length(p_message)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF octet_length(p_context::text) > 65536 THEN
    RAISE EXCEPTION 'system log context: % bytes of JSON, at most 65536',
      octet_length(p_context::text) USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF length(p_request_id) > 100 THEN
    RAISE EXCEPTION 'system log request id: % characters, at most 100', length(p_request_id)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  INSERT INTO ops.system_logs (level, source, message, context, request_id)
  VALUES (
    p_level,
    p_source,
    p_message,
    -- The caller never names the tenant or user: those come from the context only.
    (coalesce(p_context, '{}'::jsonb) - 'tenant_id' - 'user_id')
      || jsonb_strip_nulls(jsonb_build_object(
           'tenant_id', app.current_tenant(), 'user_id', app.current_user_id())),
    coalesce(p_request_id, nullif(current_setting('app.request_id', true), ''))
  )
  RETURNING id INTO v_id;
  RETURN v_id;
END"""

DEFINER_TRIGGER_FUNCTIONS = [
    "ops.log_audit",
    "app.sync_unique_values",
    "billing.sync_tenant_subscription",
]

BOTH = ("INSERT", "UPDATE")
# (model, privileges, columns left out of them) of the runtime role's writable tables.
RUNTIME_WRITES = [
    ("core.user", BOTH, ("id", "role")),
    # A random uuid, no sequence to run ahead of: only its UPDATE is narrowed.
    ("core.file", ("UPDATE",), ("id",)),
    *[
        (model, BOTH, ("id",))
        for model in (
            "core.usersession",
            "core.usertwofactor",
            "core.project",
            "core.tablemetadata",
            "core.apikey",
            "core.imagevariant",
            "core.organization",
            "core.organizationmember",
            "core.role",
            "core.rolepermission",
            "core.userrole",
            "generic_data.genericdata",
            "comms.notification",
            "comms.emailqueue",
            "comms.webhook",
            "comms.webhookdelivery",
        )
    ],
]
# The services' writable tables (hzm 0003, comms 0001-0002, billing 0001).
SERVICE_WRITES = [
    ("comms", "comms.notification"),
    ("comms", "comms.emailqueue"),
    ("comms", "comms.webhookdelivery"),
    ("billing", "billing.subscription"),
]

# (model, policy, tenant column, rows with a NULL tenant readable by all) of every tenant
# policy made by EnableTenantRLS so far.
TENANT_POLICIES = [
    ("generic_data.genericdata", "rls_generic_data_tenant", "tenant_id", False),
    ("billing.subscription", "rls_subscriptions_tenant", "tenant_id", False),
    ("cfg.featureflagoverride", "rls_flag_overrides_tenant", "tenant_id", False),
    ("cfg.translation", "rls_translations_tenant", "tenant_id", True),
    ("comms.emailqueue", "rls_email_queue_tenant", "tenant_id", False),
    ("comms.notification", "rls_notifications_tenant", "tenant_id", False),
    ("comms.webhookdelivery", "rls_webhook_deliveries_tenant", "tenant_id", False),
    ("comms.webhook", "rls_webhooks_tenant", "tenant_id", False),
    ("core.apikey", "rls_api_keys_tenant", "tenant_id", False),
    ("core.file", "rls_files_tenant", "tenant_id", False),
    ("core.imagevariant", "rls_image_variants_tenant", "tenant_id", False),
    ("core.organizationmember", "rls_org_members_tenant", "tenant_id", False),
    ("core.organization", "rls_organizations_tenant", "tenant_id", False),
    ("core.project", "rls_projects_tenant", "tenant_id", False),
    ("core.rolepermission", "rls_role_permissions_tenant", "tenant_id", False),
    ("core.role", "rls_roles_tenant", "tenant_id", False),
    ("core.tablemetadata", "rls_table_metadata_tenant", "tenant_id", False),
    ("core.tenant", "rls_tenants_tenant", "id", False),
    ("core.usertwofactor", "rls_2fa_tenant", "tenant_id", False),
    ("core.userrole", "rls_user_roles_tenant", "tenant_id", False),
    ("core.usersession", "rls_sessions_tenant", "tenant_id", False),
    ("core.user", "rls_users_tenant", "tenant_id", False),
    ("ops.auditlog", "rls_audit_logs_tenant", "tenant_id", False),
]


def per_row(column: str, shared_rows: bool = False) -> str:
    """The predicate as hzm.db.sql.tenant_predicate() rendered it (frozen here)."""
    predicate = f'"{column}" = app.current_tenant()'
    return f'"{column}" IS NULL OR {predicate}' if shared_rows else predicate


def per_statement(column: str, shared_rows: bool = False) -> str:
    """As hzm.db.sql.tenant_predicate_once() renders it (frozen here)."""
    predicate = f'"{column}" = (SELECT app.current_tenant())'
    return f'"{column}" IS NULL OR {predicate}' if shared_rows else predicate


class Migration(migrations.Migration):
    dependencies = [
        ("hzm", "0004_web_sign_in_and_admin_role"),
        ("generic_data", "0005_record_counts"),
        ("core", "0005_add_file_storage"),
        ("cfg", "0005_unique_global_translations"),
        ("ops", "0003_add_monitoring"),
        ("comms", "0002_add_webhooks"),
        ("billing", "0001_add_billing"),
    ]

    operations = [
        *[RevokePublicExecute(name, "") for name in DEFINER_TRIGGER_FUNCTIONS],
        InstallFunction(
            name="ops.write_system_log",
            arguments=WRITE_SYSTEM_LOG_ARGUMENTS,
            returns="bigint",
            body=WRITE_SYSTEM_LOG,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
            replaces={
                "returns": "bigint",
                "body": PREVIOUS_WRITE_SYSTEM_LOG,
                "language": "sql",
                "security_definer": True,
                "search_path": "pg_catalog, pg_temp",
            },
        ),
        GrantExecute("ops.write_system_log", WRITE_SYSTEM_LOG_ARGUMENTS),
        RevokeDatabaseTemporary(),
        RevokeCatalogFunctions(),
        *[
            RestrictColumnPrivileges(model, list(privileges), list(exclude))
            for model, privileges, exclude in RUNTIME_WRITES
        ],
        *[
            RestrictColumnPrivileges(model, ["INSERT", "UPDATE"], ["id"], service=service)
            for service, model in SERVICE_WRITES
        ],
        *[
            AlterPolicy(
                model,
                policy,
                using=per_statement(column, shared_rows),
                with_check=per_statement(column),
                previous_using=per_row(column, shared_rows),
                previous_with_check=per_row(column),
            )
            for model, policy, column, shared_rows in TENANT_POLICIES
        ],
        *[
            AlterPolicy("ops.auditlog", policy, to="CURRENT_USER", previous_to="PUBLIC")
            for policy in ("rls_audit_logs_owner_read", "rls_audit_logs_owner_prune")
        ],
    ]
