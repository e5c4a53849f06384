"""The privilege paths an outside audit found (issue 11), tried as the attacker would.

Every attempt runs as the runtime role inside a tenant's real context (SQL injection in
a request), as tests/security/conftest.py's `as_tenant` checks. Each of these worked on
the main branch before hzm/migrations/0005_security_hardening.py.
"""

import pytest
from django.db import connection

from core.models import ApiKey, User
from generic_data.models import GenericData
from hzm.db.checks import diagnose
from ops.monitoring import write_system_log
from tests.security.conftest import (
    READ_ONLY_TENANT_TABLES,
    RUNTIME_ROLE,
    TENANT_MODELS,
    as_tenant,
    bare_table,
    table_name,
    table_sql,
)
from tests.support import fetchall, fetchone, sql_refused

pytestmark = pytest.mark.django_db

DEFINER_TRIGGER_FUNCTIONS = [
    "ops.log_audit()",
    "app.sync_unique_values()",
    "app.count_records()",
    "billing.sync_tenant_subscription()",
]


def permission_denied(error) -> str:
    assert error.sqlstate == "42501", error
    return error.diag.message_primary


# --- 1. Definer trigger functions, attached to a table of the attacker's -----------------


def test_no_temporary_table_to_attach_a_definer_trigger_function_to(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        message = permission_denied(sql_refused("CREATE TEMP TABLE t (id int, tenant_id int)"))
    assert message.startswith("permission denied to create temporary tables in database")


@pytest.mark.parametrize("function", DEFINER_TRIGGER_FUNCTIONS)
def test_definer_trigger_functions_are_executable_by_nobody(function):
    (public, runtime) = fetchone(
        "SELECT p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) AS a "
        "WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), "
        "has_function_privilege(%s, p.oid, 'EXECUTE') "
        "FROM pg_proc p WHERE p.oid = %s::regprocedure",
        [RUNTIME_ROLE, function],
    )
    assert (public, runtime) == (False, False)


def test_no_trigger_on_a_table_the_runtime_role_writes(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        message = permission_denied(
            sql_refused(
                "CREATE TRIGGER t AFTER INSERT ON app.generic_data "
                "FOR EACH ROW EXECUTE FUNCTION ops.log_audit()"
            )
        )
    assert message == "permission denied for table generic_data"


# --- 2. A tenant making its own user a platform admin ----------------------------------------


def test_a_tenant_cannot_make_its_user_a_platform_admin(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        denied = sql_refused(
            "UPDATE core.users SET role = 'platform_admin' WHERE id = %s", [world_a.user.pk]
        )
        assert permission_denied(denied) == "permission denied for table users"
        denied = sql_refused(
            "INSERT INTO core.users (tenant_id, email, password_hash, role) "
            "VALUES (%s, 'boss@example.com', '!', 'platform_admin')",
            [world_a.id],
        )
        assert permission_denied(denied) == "permission denied for table users"
        # What the tenant may change of its users, it still may.
        assert User.objects.filter(pk=world_a.user.pk).update(name="Renamed") == 1
    assert User.objects.get(pk=world_a.user.pk).role != "platform_admin"


# --- 3. Temporary objects shadowing Django's tables ------------------------------------------


def test_no_temporary_django_session_to_shadow_the_real_one(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        error = sql_refused(
            "CREATE TEMP TABLE django_session (session_key varchar(40) PRIMARY KEY, "
            "session_data text, expire_date timestamptz)"
        )
    assert permission_denied(error).startswith("permission denied to create temporary tables")


def test_no_schema_where_the_runtime_role_may_create_anything():
    creatable = fetchall(
        "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(%s, oid, 'CREATE')",
        [RUNTIME_ROLE],
    )
    assert creatable == []


# --- 4. Tenants choosing ids ------------------------------------------------------------------

WRITABLE_MODELS = [
    model for model in TENANT_MODELS if table_name(model) not in READ_ONLY_TENANT_TABLES
]


def identity_id(model) -> bool:
    (identity,) = fetchone(
        "SELECT attidentity <> '' FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'id'",
        [table_sql(model)],
    )
    return identity


@pytest.mark.parametrize("model", [pytest.param(m, id=table_name(m)) for m in WRITABLE_MODELS])
def test_a_tenant_cannot_choose_the_id_of_a_row(model, world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        update = sql_refused(f"UPDATE {table_sql(model)} SET id = id")
        assert permission_denied(update) == f"permission denied for table {bare_table(model)}"
        if identity_id(model):  # core.files' random uuid has no sequence to run ahead of
            insert = sql_refused(
                f"INSERT INTO {table_sql(model)} (id, tenant_id) VALUES (2000000000, %s)",
                [world_a.id],
            )
            assert permission_denied(insert) == f"permission denied for table {bare_table(model)}"


def test_only_core_files_lets_a_tenant_give_the_id():
    assert [table_name(m) for m in WRITABLE_MODELS if not identity_id(m)] == ["core.files"]


def test_a_tenant_cannot_move_the_shared_id_sequence(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        error = sql_refused(
            "SELECT setval(pg_get_serial_sequence('app.generic_data', 'id'), 1000000000000)"
        )
    assert permission_denied(error).startswith("permission denied for sequence")


def test_rows_still_get_their_ids_from_the_sequence(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        row = GenericData.objects.create(
            tenant_id=world_a.id, project=world_a.project, table=world_a.table, data={"a": 1}
        )
    assert row.pk is not None


# --- 10. Smaller leaks ---------------------------------------------------------------------


def test_large_objects_are_not_for_the_runtime_role(world_a):
    # migrate ran as a superuser here, which takes them from PUBLIC (the README's
    # superuser set-up does it where migrate runs as a plain owner).
    with as_tenant(world_a.id, world_a.user.pk):
        error = sql_refused("SELECT lo_from_bytea(0, 'a tenant''s data'::bytea)")
    assert permission_denied(error) == "permission denied for function lo_from_bytea"


def test_settings_a_role_gives_itself_are_reported(world_a):
    with as_tenant(world_a.id, world_a.user.pk), connection.cursor() as cursor:
        cursor.execute(f"ALTER ROLE {RUNTIME_ROLE} SET work_mem = '64kB'")
    problems = [str(f) for f in diagnose()]
    assert f"ERROR: role {RUNTIME_ROLE}: has settings of its own (work_mem=64kB): " in (
        " ".join(problems)
    )


def test_a_system_log_line_is_bounded(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        error = sql_refused(
            "SELECT ops.write_system_log('info', 'test', repeat('x', 10000001), '{}', NULL)"
        )
        assert error.sqlstate == "22001"
        assert error.diag.message_primary == (
            "system log message: 10000001 characters, at most 10000"
        )
        assert write_system_log("info", "test", "fits") > 0


# --- Performance found by the same audit ----------------------------------------------------


def test_the_runtime_roles_reads_of_its_audit_trail_leave_out_the_owners_policies(world_a):
    with as_tenant(world_a.id, world_a.user.pk), connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT * FROM ops.audit_logs")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "pg_has_role" not in plan
    assert "InitPlan" in plan  # the tenant, read once for the statement


def test_an_api_key_is_found_only_by_the_whole_key_and_no_hash_comes_back(world_a):
    api_key, plaintext = ApiKey.objects.issue(
        tenant=world_a.tenant, user=world_a.user, name="probe", project=world_a.project
    )
    with as_tenant(world_a.id, world_a.user.pk):
        denied = sql_refused("SELECT * FROM app.api_key_tenant(%s)", [api_key.key_prefix])
        assert permission_denied(denied) == "permission denied for function api_key_tenant"
        wrong = fetchall("SELECT * FROM app.api_key_lookup(%s)", [plaintext[:-1] + "x"])
        prefix_only = fetchall("SELECT * FROM app.api_key_lookup(%s)", [api_key.key_prefix])
        found = fetchall("SELECT * FROM app.api_key_lookup(%s)", [plaintext])
    assert wrong == prefix_only == []
    assert found == [(api_key.pk, world_a.id, world_a.project.pk, world_a.user.pk, True)]
