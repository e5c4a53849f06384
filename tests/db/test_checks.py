"""dbdoctor: a freshly migrated database passes; each kind of gap is found and named."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from hzm.db.checks import CATALOG_FUNCTIONS_FIX, declared_objects, diagnose, tenant_tables
from tests.support import TENANT_TABLES

pytestmark = pytest.mark.django_db


def errors() -> list[str]:
    return [str(f) for f in diagnose() if f.severity == "error"]


def execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def test_the_migrated_database_matches_the_code(capsys):
    call_command("dbdoctor")
    assert "the database matches the code" in capsys.readouterr().out


def test_tenant_tables_come_from_the_models():
    assert tenant_tables() == TENANT_TABLES


def test_declarations_come_from_the_applied_migrations():
    declared = declared_objects()
    assert declared.triggers["core.user_sessions"] == {"trg_sessions_touch": "app.touch_row"}
    assert declared.policies["ops.audit_logs"] == {
        "rls_audit_logs_tenant",
        "rls_audit_logs_append",
        # ops 0003: the owner reads and prunes every tenant's rows (prune_audit_logs).
        "rls_audit_logs_owner_read",
        "rls_audit_logs_owner_prune",
    }
    assert declared.grants["core.tenants"] == {"SELECT"}
    assert declared.functions["ops.log_audit"] is True
    assert "fk_generic_data_tenant_project_table" in declared.foreign_keys["app.generic_data"]


@pytest.mark.parametrize(
    ("sabotage", "finding"),
    [
        (
            "ALTER TABLE core.users NO FORCE ROW LEVEL SECURITY",
            "ERROR: core.users: row level security is not forced (the owner bypasses it)",
        ),
        (
            "ALTER TABLE core.files DISABLE ROW LEVEL SECURITY",
            "ERROR: core.files: row level security is not enabled",
        ),
        (
            "DROP POLICY rls_projects_tenant ON core.projects",
            "ERROR: core.projects: policy rls_projects_tenant is missing",
        ),
        (
            "ALTER TABLE core.projects DISABLE TRIGGER trg_projects_audit",
            "ERROR: core.projects: trigger trg_projects_audit is disabled",
        ),
        (
            "DROP TRIGGER trg_users_softdel ON core.users",
            "ERROR: core.users: trigger trg_users_softdel is missing",
        ),
        (
            "ALTER TABLE app.generic_data DROP CONSTRAINT fk_generic_data_tenant_project_table",
            "ERROR: app.generic_data: tenant foreign key fk_generic_data_tenant_project_table "
            "is missing",
        ),
        (
            "GRANT TRUNCATE ON core.files TO hzm_app",
            "ERROR: core.files: hzm_app has TRUNCATE, not declared",
        ),
        (
            "REVOKE SELECT ON cfg.languages FROM hzm_app",
            "ERROR: cfg.languages: hzm_app lacks declared SELECT",
        ),
        ("ALTER ROLE hzm_app BYPASSRLS", "ERROR: role hzm_app: must not have BYPASSRLS"),
        # Django's own tables too: the runtime role must never read the sessions.
        (
            "GRANT SELECT ON django_session TO hzm_app",
            "ERROR: public.django_session: hzm_app has SELECT, not declared",
        ),
        # The platform admin's role (hzm 0004): exactly the admin's grants.
        (
            # The admin revokes API keys, it never deletes one (core 0006).
            "GRANT DELETE ON core.api_keys TO hzm_app_admin",
            "ERROR: core.api_keys: hzm_app_admin has DELETE, not declared",
        ),
        (
            "REVOKE UPDATE ON core.tenants FROM hzm_app_admin",
            "ERROR: core.tenants: hzm_app_admin lacks declared UPDATE",
        ),
        (
            "ALTER ROLE hzm_app_admin BYPASSRLS",
            "ERROR: role hzm_app_admin: must not have BYPASSRLS",
        ),
        # A service role's column grants.
        (
            "REVOKE SELECT (email) ON core.users FROM hzm_app_comms",
            "ERROR: core.users: hzm_app_comms lacks declared SELECT (email)",
        ),
        (
            "GRANT SELECT ON core.users TO hzm_app_comms",
            "ERROR: core.users: hzm_app_comms has SELECT, not declared",
        ),
        ("ALTER ROLE hzm_app_comms LOGIN", "ERROR: role hzm_app_comms: must not have LOGIN"),
        (
            "ALTER TABLE core.projects DROP CONSTRAINT fk_projects_tenant_user, "
            "ADD CONSTRAINT fk_projects_tenant_user FOREIGN KEY (tenant_id, user_id) "
            "REFERENCES core.users (tenant_id, id)",
            "ERROR: core.projects: tenant foreign key fk_projects_tenant_user is "
            "ON DELETE NO ACTION, declared CASCADE",
        ),
        (
            "ALTER TABLE core.files OWNER TO hzm_app",
            "ERROR: role hzm_app: owns core.files (it must own nothing)",
        ),
        (
            "ALTER FUNCTION ops.log_audit() SECURITY INVOKER",
            "ERROR: ops.log_audit: function should be SECURITY DEFINER",
        ),
        # The hardening rules (hzm 0005): a regression of each is caught.
        (
            "GRANT EXECUTE ON FUNCTION ops.log_audit() TO PUBLIC",
            "ERROR: ops.log_audit(): SECURITY DEFINER function executable by PUBLIC",
        ),
        (
            "GRANT EXECUTE ON FUNCTION app.auth_login(text) TO hzm_app_comms",
            "ERROR: app.auth_login(text): hzm_app_comms may execute it, not declared",
        ),
        (
            # An overload of a definer function: its grants could pass for the other's.
            "CREATE FUNCTION app.auth_login(text, text) RETURNS int LANGUAGE sql "
            "SECURITY DEFINER AS 'SELECT 1'",
            "ERROR: app.auth_login: a SECURITY DEFINER function shares its name "
            "(app.auth_login(text), app.auth_login(text,text)): dbdoctor tells grants apart "
            "by name; give each function a name of its own",
        ),
        (
            "DO $$ BEGIN EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO hzm_app', "
            "current_database()); END $$",
            "ERROR: role hzm_app: may create temporary tables (TEMPORARY on the database)",
        ),
        (
            "GRANT INSERT (id) ON app.generic_data TO hzm_app",
            "ERROR: app.generic_data: hzm_app may INSERT column id",
        ),
        (
            "GRANT UPDATE (role) ON core.users TO hzm_app",
            "ERROR: core.users: hzm_app may UPDATE column role",
        ),
        (
            "GRANT INSERT (id) ON comms.email_queue TO hzm_app_comms",
            "ERROR: comms.email_queue: hzm_app_comms may INSERT column id",
        ),
        (
            "ALTER POLICY rls_projects_tenant ON core.projects "
            "USING (tenant_id = app.current_tenant())",
            "ERROR: core.projects: policy rls_projects_tenant calls app.current_tenant() for "
            "every row: write (SELECT app.current_tenant())",
        ),
        (
            "ALTER ROLE hzm_app_billing SET statement_timeout = 0",
            "ERROR: role hzm_app_billing: has settings of its own (statement_timeout=0): "
            "ALTER ROLE hzm_app_billing RESET ALL",
        ),
        (
            "GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO PUBLIC",
            "ERROR: role hzm_app: may execute lo_from_bytea(oid, bytea) (large objects escape "
            "row level security; a web session could end the others'): " + CATALOG_FUNCTIONS_FIX,
        ),
        (
            "GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) TO PUBLIC",
            "ERROR: role hzm_app: may execute pg_terminate_backend(integer, bigint) (large "
            "objects escape row level security; a web session could end the others'): "
            + CATALOG_FUNCTIONS_FIX,
        ),
        (
            "GRANT UPDATE (tenant_id) ON core.projects TO hzm_app_comms",
            "ERROR: core.projects: hzm_app_comms has UPDATE (tenant_id), not declared",
        ),
    ],
)
def test_each_gap_is_found_and_named(sabotage, finding):
    assert errors() == []
    execute(sabotage)
    assert finding in errors()


def test_the_audit_trails_owner_policies_must_follow_its_owner():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ops.audit_logs'::regclass"
        )
        (owner,) = cursor.fetchone()
    assert errors() == []
    execute("ALTER POLICY rls_audit_logs_owner_read ON ops.audit_logs TO PUBLIC")
    assert errors() == [
        f"ERROR: ops.audit_logs: policy rls_audit_logs_owner_read applies to public, not the "
        f"table's owner {owner}: ALTER POLICY rls_audit_logs_owner_read ON ops.audit_logs "
        f"TO {owner}"
    ]


def test_the_command_fails_naming_the_gap(capsys):
    execute("ALTER TABLE core.users NO FORCE ROW LEVEL SECURITY")
    with pytest.raises(CommandError, match="1 error"):
        call_command("dbdoctor")
    assert "core.users: row level security is not forced" in capsys.readouterr().out


def test_production_login_as_superuser_is_a_warning(settings, capsys):
    settings.DEBUG = False
    findings = [str(f) for f in diagnose()]
    assert any(
        f.startswith("WARNING: DATABASE_URL: the application logs in as a superuser")
        for f in findings
    )
    with pytest.raises(CommandError, match="1 warning"):
        call_command("dbdoctor", "--strict")
