"""Tampering as the runtime role: the audit trail, the protections, the schema, the role.

Every attempt runs inside a tenant context, where an attacker who controls the SQL of
a request would be. The audit trail must be unwritable except through ops.log_audit()
(SECURITY DEFINER), record the context, and never hold a secret.
"""

import datetime
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from core.models import ApiKey, Project, Tenant, User, UserSession, UserTwoFactor
from generic_data.models import GenericData
from hzm.db.checks import PLATFORM_SCHEMAS
from hzm.db.columns import PurgeNotAllowed, purge
from hzm.db.sql import quote_identifier
from hzm.secrets import encrypt, hash_api_key
from ops.models import AuditLog
from tests.security.conftest import (
    RUNTIME_ROLE,
    TENANT_MODELS,
    TenantWorld,
    as_tenant,
    assert_permission_denied,
    assert_superuser,
    bare_table,
    table_name,
    table_sql,
)
from tests.support import fetchall, fetchone, refused, run, server_params, sql_refused

pytestmark = pytest.mark.django_db

INSUFFICIENT_PRIVILEGE = "42501"
ROLE_SQL = quote_identifier(RUNTIME_ROLE)


def assert_refused_as(error: psycopg.Error, message: str) -> None:
    """Refused for lack of privilege, with a message matching the `message` pattern."""
    assert error.sqlstate == INSUFFICIENT_PRIVILEGE, (error.sqlstate, str(error))
    assert re.fullmatch(message, error.diag.message_primary), error.diag.message_primary


def owner_only(table: str) -> str:
    """The refusal of a command only the table's owner may run (worded per command)."""
    return f"must be owner of (table|relation) {re.escape(table)}"


def audit_row(world: TenantWorld) -> AuditLog:
    """An audit row of the world's tenant, written by the trigger when its project was made."""
    return AuditLog.objects.get(
        tenant_id=world.id, entity_type="core.projects", entity_id=str(world.project.pk)
    )


# --- The audit trail cannot be written by the runtime role -------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ops.audit_logs SET action = 'FORGED' WHERE id = %(id)s",
        "UPDATE ops.audit_logs SET tenant_id = NULL WHERE id = %(id)s",
        "DELETE FROM ops.audit_logs WHERE id = %(id)s",
        "TRUNCATE ops.audit_logs",
        "INSERT INTO ops.audit_logs (tenant_id, action, entity_type) "
        "VALUES (%(tenant)s, 'INSERT', 'core.users')",
    ],
    ids=["update", "update tenant", "delete", "truncate", "insert"],
)
def test_runtime_role_cannot_write_the_audit_trail(statement, world_a):
    row = audit_row(world_a)
    before = fetchall("SELECT to_jsonb(a) FROM ops.audit_logs a ORDER BY id")

    with as_tenant(world_a.id, world_a.user.pk):
        assert AuditLog.objects.filter(pk=row.pk).exists()  # A may read its own trail
        error = sql_refused(statement, {"id": row.pk, "tenant": world_a.id})
        assert_permission_denied(error, AuditLog)

    assert_superuser()
    assert fetchall("SELECT to_jsonb(a) FROM ops.audit_logs a ORDER BY id") == before


def test_runtime_role_cannot_write_the_audit_trail_through_the_orm(world_a):
    row = audit_row(world_a)
    with as_tenant(world_a.id, world_a.user.pk):
        for action in (
            lambda: AuditLog.objects.create(tenant_id=world_a.id, action="X", entity_type="x"),
            lambda: AuditLog.objects.filter(pk=row.pk).update(action="FORGED"),
            lambda: AuditLog.objects.filter(pk=row.pk).delete(),
        ):
            assert_permission_denied(refused(action), AuditLog)

    assert AuditLog.objects.get(pk=row.pk).action == "INSERT"


# --- Protections cannot be switched off ---------------------------------------------------


def protected_tables() -> list[Any]:
    """Every table under row level security: the tenant tables and core.tenants."""
    return [pytest.param(m, id=table_name(m)) for m in [*TENANT_MODELS, Tenant]]


@pytest.mark.parametrize("model", protected_tables())
def test_runtime_role_cannot_weaken_row_level_security(model, world_a):
    table, bare = table_sql(model), bare_table(model)
    policies = [
        p
        for (p,) in fetchall(
            "SELECT policyname FROM pg_policies WHERE schemaname || '.' || tablename = %s",
            [table_name(model)],
        )
    ]
    assert policies, f"{table_name(model)} has no policy"
    attempts = [
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        f"CREATE POLICY evil ON {table} USING (true)",
        *[f"DROP POLICY {quote_identifier(p)} ON {table}" for p in policies],
        *[f"ALTER POLICY {quote_identifier(p)} ON {table} USING (true)" for p in policies],
    ]
    with as_tenant(world_a.id, world_a.user.pk):
        for statement in attempts:
            assert_refused_as(sql_refused(statement), owner_only(bare))

    assert_superuser()
    assert fetchone(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
        [table],
    ) == (True, True)


# Tables the seed audits; others may be audited too, and are tested the same way.
AUDITED_TABLES = [
    "app.generic_data",
    "core.api_keys",
    "core.projects",
    "core.table_metadata",
    "core.tenants",
    "core.users",
]


def audit_triggers() -> list[tuple[str, str]]:
    """(table, trigger) of every trigger that runs ops.log_audit()."""
    return fetchall(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(t.tgname) "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE t.tgfoid = 'ops.log_audit()'::regprocedure AND NOT t.tgisinternal ORDER BY 1"
    )


def test_runtime_role_cannot_switch_off_the_audit_triggers(world_a):
    triggers = audit_triggers()
    assert set(AUDITED_TABLES) <= {table.replace('"', "") for table, _ in triggers}
    with as_tenant(world_a.id, world_a.user.pk):
        for table, trigger in triggers:
            bare = table.split(".")[1]
            for statement in (
                f"ALTER TABLE {table} DISABLE TRIGGER {trigger}",
                f"ALTER TABLE {table} DISABLE TRIGGER ALL",
                f"DROP TRIGGER {trigger} ON {table}",
                f"ALTER TRIGGER {trigger} ON {table} RENAME TO evil",
            ):
                assert_refused_as(sql_refused(statement), owner_only(bare))

    assert_superuser()
    assert fetchall(
        "SELECT DISTINCT tgenabled FROM pg_trigger WHERE tgfoid = 'ops.log_audit()'::regprocedure"
    ) == [("O",)]


@pytest.mark.parametrize(
    "statement, message",
    [
        (
            "SET LOCAL session_replication_role = replica",  # would silence every trigger
            'permission denied to set parameter "session_replication_role"',
        ),
        (
            "CREATE OR REPLACE FUNCTION ops.log_audit() RETURNS trigger LANGUAGE plpgsql "
            "AS 'BEGIN RETURN NULL; END'",
            "permission denied for schema ops",
        ),
        (
            "ALTER FUNCTION ops.log_audit() SECURITY INVOKER",
            "must be owner of function ops.log_audit",
        ),
        ("DROP FUNCTION ops.log_audit() CASCADE", "must be owner of function ops.log_audit"),
        (
            "CREATE OR REPLACE FUNCTION app.current_tenant() RETURNS int LANGUAGE sql "
            "AS 'SELECT 1'",
            "permission denied for schema app",
        ),
        (
            "CREATE OR REPLACE FUNCTION app.redact_secrets(doc jsonb) RETURNS jsonb "
            "LANGUAGE sql AS 'SELECT doc'",
            "permission denied for schema app",
        ),
        (
            "CREATE TRIGGER evil AFTER INSERT ON core.users "
            "FOR EACH ROW EXECUTE FUNCTION ops.log_audit()",
            "permission denied for table users",
        ),
    ],
    ids=[
        "session_replication_role",
        "replace log_audit",
        "log_audit security invoker",
        "drop log_audit",
        "replace current_tenant",
        "replace redact_secrets",
        "create trigger",
    ],
)
def test_runtime_role_cannot_replace_the_audit_machinery(statement, message, world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        assert_refused_as(sql_refused(statement), re.escape(message))


def test_runtime_role_cannot_purge_even_by_setting_the_purge_flag(world_a):
    """Only the owner hard-deletes; the runtime role's DELETE stays a soft delete."""
    project = world_a.project
    with as_tenant(world_a.id, world_a.user.pk):
        run("SELECT set_config('app.purge', 'on', true)")
        run("DELETE FROM core.projects WHERE id = %s", [project.pk])
        with pytest.raises(PurgeNotAllowed) as error:
            purge(Project.all_objects.filter(pk=project.pk))

    assert str(error.value) == (
        "purging core.projects needs its owner; the current role may only soft-delete"
    )
    assert_superuser()
    assert Project.all_objects.filter(pk=project.pk, is_deleted=True).exists()


def test_row_security_off_refuses_instead_of_showing_everything(world_a, world_b):
    with as_tenant(world_a.id, world_a.user.pk):
        run("SET LOCAL row_security = off")
        error = sql_refused("SELECT count(*) FROM core.projects")
        assert_refused_as(
            error,
            re.escape('query would be affected by row-level security policy for table "projects"'),
        )


# --- DDL and role escalation --------------------------------------------------------------


def ddl_attempts() -> list[Any]:
    schemas = [*PLATFORM_SCHEMAS, "public"]  # PostgreSQL 15 revoked CREATE on public
    attempts = [
        (f"CREATE TABLE {schema}.evil (id int)", f"permission denied for schema {schema}")
        for schema in schemas
    ]
    attempts += [
        ("CREATE VIEW core.evil AS SELECT 1", "permission denied for schema core"),
        ("DROP TABLE core.users", "must be owner of table users"),
        ("DROP TABLE ops.audit_logs", "must be owner of table audit_logs"),
        ("ALTER TABLE core.users ADD COLUMN evil int", "must be owner of table users"),
        ("ALTER TABLE app.generic_data DROP COLUMN data", "must be owner of table generic_data"),
        ("ALTER TABLE core.projects OWNER TO CURRENT_USER", "must be owner of table projects"),
        (
            "CREATE FUNCTION app.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "permission denied for schema app",
        ),
        ("CREATE SCHEMA evil", "permission denied for database .+"),
        ("CREATE ROLE evil", "permission denied to create role"),
        # PostgreSQL 16 words the role refusals differently; the code is the same.
        (
            "ALTER ROLE CURRENT_USER BYPASSRLS",
            "must be superuser to change bypassrls attribute|permission denied to alter role",
        ),
        (
            "ALTER ROLE CURRENT_USER SUPERUSER",
            "must be superuser to .+|permission denied to alter role",
        ),
        (
            "GRANT pg_read_server_files TO CURRENT_USER",
            "must have admin option on role .+|permission denied to grant role .+",
        ),
        ("SELECT setval('core.users_id_seq', 1)", "permission denied for sequence users_id_seq"),
        ("SELECT pg_read_file('postgresql.conf')", "permission denied for function pg_read_file"),
        ("COPY (SELECT 1) TO PROGRAM 'true'", ".*pg_execute_server_program.*"),
    ]
    return [pytest.param(statement, message, id=statement[:40]) for statement, message in attempts]


@pytest.mark.parametrize("statement, message", ddl_attempts())
def test_runtime_role_cannot_change_the_schema_or_its_own_powers(statement, message, world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        assert_refused_as(sql_refused(statement), message)


@pytest.fixture
def notices() -> Iterator[list[str]]:
    """The primary messages of the notices and warnings the server sends meanwhile."""
    received: list[str] = []
    connection.ensure_connection()

    def handler(diagnostic: psycopg.errors.Diagnostic) -> None:
        received.append(diagnostic.message_primary)

    connection.connection.add_notice_handler(handler)
    yield received
    connection.connection.remove_notice_handler(handler)


def table_acl(table: str) -> Any:
    return fetchone("SELECT relacl::text FROM pg_class WHERE oid = %s::regclass", [table])[0]


@pytest.mark.parametrize(
    "statement, table",
    [
        ("GRANT SELECT, INSERT, UPDATE, DELETE ON core.users TO PUBLIC", "core.users"),
        (f"GRANT INSERT, DELETE ON ops.audit_logs TO {ROLE_SQL}", "ops.audit_logs"),
        (f"GRANT UPDATE ON core.tenants TO {ROLE_SQL}", "core.tenants"),
    ],
    ids=["users to public", "audit trail to itself", "tenants to itself"],
)
def test_grant_by_the_runtime_role_grants_nothing(statement, table, world_a, notices):
    """Without GRANT OPTION PostgreSQL only warns; what matters is that nothing changed."""
    acl = table_acl(table)
    with as_tenant(world_a.id, world_a.user.pk):
        run(statement)
        assert notices == [f'no privileges were granted for "{table.split(".")[1]}"']
        assert table_acl(table) == acl
    assert table_acl(table) == acl


@pytest.fixture
def authenticator(db) -> Iterator[psycopg.Connection]:
    """A connection as the production authenticator: LOGIN NOINHERIT, granted the runtime role.

    The tests' own login is a superuser, to whom SET ROLE always succeeds; the README's
    production set-up logs in as a role that holds nothing but the runtime role.
    """
    dbname = connection.settings_dict["NAME"]
    connection.ensure_connection()
    role = f"hzm_test_authenticator_{connection.connection.info.backend_pid}"
    admin = psycopg.connect(**server_params(dbname), autocommit=True)
    quoted = quote_identifier(role)
    admin.execute(f"CREATE ROLE {quoted} LOGIN NOINHERIT")
    admin.execute(f"GRANT {ROLE_SQL} TO {quoted}")
    try:
        with psycopg.connect(**{**server_params(dbname), "user": role}) as login:
            yield login
    finally:
        admin.execute(f"DROP OWNED BY {quoted}")
        admin.execute(f"DROP ROLE {quoted}")
        admin.close()


def test_set_role_and_reset_role_gain_nothing_in_production(authenticator):
    owner, superuser = fetchone(
        "SELECT relowner::regrole::text, session_user::text FROM pg_class "
        "WHERE oid = 'core.users'::regclass"
    )
    cursor = authenticator.cursor()
    cursor.execute(f"SET ROLE {ROLE_SQL}")
    cursor.execute("SELECT current_user::text")
    assert cursor.fetchone() == (RUNTIME_ROLE,)

    for target in dict.fromkeys([owner, superuser, "pg_read_all_data"]):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            cursor.execute(f"SET ROLE {quote_identifier(target)}")
        assert info.value.diag.message_primary == f'permission denied to set role "{target}"'
        authenticator.rollback()
        cursor.execute(f"SET ROLE {ROLE_SQL}")

    # Back to the authenticator itself, which holds no privilege of its own.
    cursor.execute("RESET ROLE")
    cursor.execute("SELECT current_user::text = session_user::text")
    assert cursor.fetchone() == (True,)
    for schema, table in (("core", "users"), ("ops", "audit_logs"), ("app", "generic_data")):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            cursor.execute(f"SELECT count(*) FROM {schema}.{table}")
        assert info.value.diag.message_primary == f"permission denied for schema {schema}"
        authenticator.rollback()


# --- What the audit rows record -----------------------------------------------------------


REQUEST = {"request_id": "req-7f3a", "ip_address": "203.0.113.9", "user_agent": "pytest/1.0"}


def audit_rows_since(last_id: int, entity_type: str, entity_id: Any) -> list[AuditLog]:
    return list(
        AuditLog.objects.filter(
            id__gt=last_id, entity_type=entity_type, entity_id=str(entity_id)
        ).order_by("id")
    )


def last_audit_id() -> int:
    return fetchone("SELECT coalesce(max(id), 0) FROM ops.audit_logs")[0]


def test_audit_rows_carry_the_tenant_context(world_a, world_b):
    since = last_audit_id()
    project = world_a.project
    with as_tenant(world_a.id, world_a.user.pk, **REQUEST):
        Project.objects.filter(pk=project.pk).update(name="Renamed")
        row = GenericData.objects.create(
            tenant=world_a.tenant, project=project, table=world_a.table, data={"title": "x"}
        )
        row.delete()  # the soft delete is recorded as an UPDATE
        own = {a.pk for a in AuditLog.objects.filter(id__gt=since)}

    assert_superuser()
    context = (world_a.id, world_a.user.pk, "req-7f3a", "203.0.113.9", "pytest/1.0")
    for entity_type, entity_id, actions in (
        ("core.projects", project.pk, ["UPDATE"]),
        ("app.generic_data", row.pk, ["INSERT", "UPDATE"]),
    ):
        rows = audit_rows_since(since, entity_type, entity_id)
        assert [a.action for a in rows] == actions
        for audit in rows:
            recorded = (audit.tenant_id, audit.user_id, audit.request_id)
            assert (*recorded, audit.ip_address, audit.user_agent) == context
            assert audit.pk in own  # A reads the rows about itself

    renamed = audit_rows_since(since, "core.projects", project.pk)[0]
    assert (renamed.old_values["name"], renamed.new_values["name"]) == (project.name, "Renamed")
    deleted = audit_rows_since(since, "app.generic_data", row.pk)[1]
    assert deleted.new_values["is_deleted"] is True and deleted.new_values["deleted_by"] == (
        world_a.user.pk
    )
    with as_tenant(world_b.id, world_b.user.pk):
        assert not AuditLog.objects.filter(id__gt=since).exists()


SECRET_COLUMNS = {
    "core.users": ["password_hash", "email_verification_token"],
    "core.api_keys": ["key_hash", "key_encrypted"],
    "core.user_2fa": ["secret_encrypted", "backup_codes_encrypted"],
    "core.user_sessions": ["token"],
}
# Not secret: must stay in the trail with their real values.
PLAIN_COLUMNS = {
    "core.users": ["email", "name", "tenant_id"],
    "core.api_keys": ["name", "key_prefix", "user_id"],
    "core.user_2fa": ["method", "user_id"],
    "core.user_sessions": ["device_name", "user_id"],
}


def test_audit_trail_never_holds_a_secret(world_a):
    """Secrets written and changed as the runtime role reach the trail only as "[redacted]"."""
    since = last_audit_id()
    with as_tenant(world_a.id, world_a.user.pk, **REQUEST):
        user = User(
            tenant=world_a.tenant,
            email="secretive@example.com",
            name="Secretive",
            password="argon2$hash-one",
            email_verification_token="verify-one",
        )
        user.save()
        user.password, user.email_verification_token = "argon2$hash-two", "verify-two"
        user.name = "Still secretive"
        user.save()

        api_key, plaintext = ApiKey.objects.issue(
            tenant=world_a.tenant, user=user, name="ci", project=world_a.project
        )
        old_key = (api_key.key_hash, api_key.key_encrypted)
        rotated = plaintext + "-rotated"
        api_key.key_hash, api_key.key_encrypted = hash_api_key(rotated), encrypt(rotated)
        api_key.name = "ci rotated"
        api_key.save()

        two_factor = UserTwoFactor(tenant=world_a.tenant, user=user, method="totp")
        two_factor.set_secret("JBSWY3DPEHPK3PXP")
        two_factor.set_backup_codes(["11111111", "22222222"])
        two_factor.save()
        old_factor = (two_factor.secret_encrypted, *two_factor.backup_codes_encrypted)
        two_factor.set_secret("KRSXG5CTMVRXEZLU")
        two_factor.save()
        new_factor = two_factor.secret_encrypted

        session = UserSession(
            tenant=world_a.tenant,
            user=user,
            token="session-secret-one",
            device_name="laptop",
            expires_at=timezone.now() + datetime.timedelta(hours=1),
        )
        session.save()
        session.token = "session-secret-two"
        session.save()
        written = {
            "core.users": user.pk,
            "core.api_keys": api_key.pk,
            "core.user_2fa": two_factor.pk,
            "core.user_sessions": session.pk,
        }
        api_key.delete()  # a hard delete: the old row goes to the trail

    assert_superuser()
    audited = set()
    for entity_type, pk in written.items():
        for audit in audit_rows_since(since, entity_type, pk):
            audited.add((entity_type, audit.action))
            for values in (audit.old_values, audit.new_values):
                if values is None:
                    continue
                # An UPDATE records the columns it changed (ops 0006): here every secret
                # and the name; an INSERT or DELETE the whole row.
                plain = PLAIN_COLUMNS[entity_type]
                if audit.action == "UPDATE":
                    plain = [column for column in plain if column == "name"]
                for column in SECRET_COLUMNS[entity_type]:
                    assert values[column] == "[redacted]", (entity_type, column, audit.action)
                for column in plain:
                    assert values[column] not in (None, "[redacted]"), (entity_type, column)
    # The seed audits neither sessions nor 2FA rows; users and API keys it does.
    assert audited == {
        ("core.users", "INSERT"),
        ("core.users", "UPDATE"),
        ("core.api_keys", "INSERT"),
        ("core.api_keys", "UPDATE"),
        ("core.api_keys", "DELETE"),
    }

    secrets = [
        "argon2$hash-one",
        "argon2$hash-two",
        "verify-one",
        "verify-two",
        plaintext,
        rotated,
        *old_key,
        api_key.key_hash,
        api_key.key_encrypted,
        *old_factor,
        new_factor,
        "session-secret-one",
        "session-secret-two",
    ]
    trail = fetchone(
        "SELECT string_agg(coalesce(old_values::text, '') || coalesce(new_values::text, ''), ' ') "
        "FROM ops.audit_logs WHERE id > %s",
        [since],
    )[0]
    assert "secretive@example.com" in trail  # the trail is there, and readable
    leaked = [secret for secret in secrets if secret in trail]
    assert leaked == []


def test_project_credentials_are_redacted_in_the_audit_trail(world_a):
    since = last_audit_id()
    with as_tenant(world_a.id, world_a.user.pk):
        Project.objects.filter(pk=world_a.project.pk).update(
            api_key="project-key-rotated", api_key_password="project-password"
        )

    (audit,) = audit_rows_since(since, "core.projects", world_a.project.pk)
    # The changed columns and the key (ops 0006); the name did not change.
    assert audit.new_values["id"] == world_a.project.pk and "name" not in audit.new_values
    assert (audit.new_values["api_key"], audit.new_values["api_key_password"]) == (
        "[redacted]",
        "[redacted]",
    )
