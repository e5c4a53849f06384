"""Function grants and options, statement triggers: the SQL to the string, the catalog
after forwards, backwards and forwards again (in the test's transaction, rolled back)."""

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.state import ProjectState

from hzm.db.operations import (
    AttachStatementTrigger,
    ConfigureFunction,
    CreateContextKeyStore,
    GrantExecute,
    GrantPublicExecute,
    runtime_role,
)
from hzm.db.sql import (
    create_statement_trigger,
    grant_execute,
    reset_function_option,
    revoke_execute,
    set_function_option,
)
from tests.support import fetchall, fetchone
from tests.support import run as execute

# --- Renderers --------------------------------------------------------------------------------


def test_grant_execute_renders_revoke_from_public_then_grant():
    assert grant_execute("app.f", "p_a int, p_b text DEFAULT 'x'", "hzm_app") == [
        'REVOKE EXECUTE ON FUNCTION "app"."f"(p_a int, p_b text) FROM PUBLIC',
        'GRANT EXECUTE ON FUNCTION "app"."f"(p_a int, p_b text) TO "hzm_app"',
    ]
    assert revoke_execute("app.f", "", "hzm_app") == [
        'REVOKE EXECUTE ON FUNCTION "app"."f"() FROM "hzm_app"',
        'GRANT EXECUTE ON FUNCTION "app"."f"() TO PUBLIC',
    ]


def test_function_options_render_alter_function_set_and_reset():
    assert set_function_option("app.f", "a int", "enable_indexscan", "off") == (
        'ALTER FUNCTION "app"."f"(a int) SET "enable_indexscan" = off'
    )
    assert reset_function_option("app.f", "a int", "enable_indexscan") == (
        'ALTER FUNCTION "app"."f"(a int) RESET "enable_indexscan"'
    )
    for value in ["off; DROP TABLE x", "'on'", ""]:
        with pytest.raises(ValueError, match="must be a plain word"):
            ConfigureFunction("app.f", "", "enable_indexscan", value)


def test_statement_triggers_render_their_transition_tables():
    assert create_statement_trigger(
        "trg_t_sync", "app", "t", event="UPDATE", function="app.sync",
        old_table="old_rows", new_table="new_rows",
    ) == (
        'CREATE TRIGGER "trg_t_sync" AFTER UPDATE ON "app"."t" REFERENCING OLD TABLE AS '
        '"old_rows" NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."sync"()'
    )  # fmt: skip
    assert create_statement_trigger("trg_t_x", "", "t", event="DELETE", function="f") == (
        'CREATE TRIGGER "trg_t_x" AFTER DELETE ON "t" FOR EACH STATEMENT EXECUTE FUNCTION "f"()'
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"event": "TRUNCATE"}, "is not one of INSERT, UPDATE, DELETE"),
        ({"event": "INSERT", "old_table": "o"}, "an INSERT has no OLD TABLE"),
        ({"event": "DELETE", "new_table": "n"}, "a DELETE has no NEW TABLE"),
        ({"event": "INSERT", "new_table": "New Rows"}, "is not a valid name"),
    ],
)
def test_bad_statement_triggers_fail_when_the_migration_is_loaded(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttachStatementTrigger("genericdata", kind="x", function="app.f", **kwargs)


def test_bad_function_names_fail_when_the_migration_is_loaded():
    with pytest.raises(ValueError, match="is not a valid name"):
        GrantExecute("app.f; DROP", "")


def test_deconstruct_emits_only_what_was_given():
    trigger = AttachStatementTrigger(
        "genericdata", kind="sync", event="INSERT", function="app.f", new_table="new_rows"
    )
    assert trigger.deconstruct() == (
        "AttachStatementTrigger",
        [],
        {"model_name": "genericdata", "kind": "sync", "event": "INSERT", "function": "app.f",
         "new_table": "new_rows"},
    )  # fmt: skip
    assert GrantExecute("app.f", "a int").deconstruct() == (
        "GrantExecute",
        [],
        {"name": "app.f", "arguments": "a int"},
    )
    assert trigger.describe() == (
        "Attach statement trigger sync (AFTER INSERT, app.f) to genericdata"
    )
    assert GrantExecute("app.f", "a int").migration_name_fragment == "grant_execute_app_f"


# --- On the database ----------------------------------------------------------------------------


def apply(operation, direction: str) -> None:
    state = ProjectState.from_apps(global_apps)
    with connection.schema_editor(atomic=False, collect_sql=False) as editor:
        getattr(operation, f"database_{direction}")("generic_data", editor, state, state)


def acl_of(signature: str) -> list[str]:
    (acl,) = fetchone(
        "SELECT coalesce(proacl::text[], '{}') FROM pg_proc WHERE oid = %s::regprocedure",
        [signature],
    )
    return sorted(acl)


@pytest.mark.django_db
def test_grant_execute_forwards_backwards_forwards():
    execute("CREATE FUNCTION app.op_probe(a int) RETURNS int LANGUAGE sql AS 'SELECT a'")
    owner = fetchone("SELECT current_user")[0]
    operation = GrantExecute("app.op_probe", "a int")
    granted = sorted([f"{owner}=X/{owner}", f"{runtime_role()}=X/{owner}"])
    apply(operation, "forwards")
    assert acl_of("app.op_probe(int)") == granted
    apply(operation, "backwards")
    assert acl_of("app.op_probe(int)") == sorted([f"=X/{owner}", f"{owner}=X/{owner}"])
    assert fetchone("SELECT has_function_privilege(%s, 'app.op_probe(int)', 'EXECUTE')",
                    [runtime_role()]) == (True,)  # through PUBLIC again  # fmt: skip
    apply(operation, "forwards")
    assert acl_of("app.op_probe(int)") == granted


@pytest.mark.django_db
def test_configure_function_forwards_backwards_forwards():
    execute("CREATE FUNCTION app.op_probe(a int) RETURNS int LANGUAGE sql AS 'SELECT a'")
    operation = ConfigureFunction("app.op_probe", "a int", "enable_indexscan", "off")
    query = "SELECT proconfig FROM pg_proc WHERE oid = 'app.op_probe(int)'::regprocedure"
    apply(operation, "forwards")
    assert fetchone(query) == (["enable_indexscan=off"],)
    apply(operation, "backwards")
    assert fetchone(query) == (None,)
    apply(operation, "forwards")
    assert fetchone(query) == (["enable_indexscan=off"],)


@pytest.mark.django_db
def test_statement_trigger_forwards_backwards_forwards():
    operation = AttachStatementTrigger(
        "genericdata",
        kind="op_probe",
        event="UPDATE",
        function="app.sync_unique_values",
        old_table="old_rows",
        new_table="new_rows",
    )
    query = (
        "SELECT tgtype & 1 = 1, tgoldtable, tgnewtable, tgfoid::regproc::text FROM pg_trigger "
        "WHERE tgrelid = 'app.generic_data'::regclass AND tgname = 'trg_generic_data_op_probe'"
    )
    apply(operation, "forwards")
    # A statement trigger (the row bit is clear), with both transition tables.
    assert fetchall(query) == [(False, "old_rows", "new_rows", "app.sync_unique_values")]
    apply(operation, "backwards")
    assert fetchall(query) == []
    apply(operation, "forwards")
    assert len(fetchall(query)) == 1


@pytest.mark.django_db
def test_the_migrations_statement_triggers_are_in_place():
    assert fetchall(
        "SELECT tgname, tgtype & 1 = 1, tgoldtable, tgnewtable FROM pg_trigger "
        "WHERE tgrelid = 'app.generic_data'::regclass AND tgname LIKE 'trg_generic_data_unique%%' "
        "ORDER BY tgname"
    ) == [
        ("trg_generic_data_unique_insert", False, None, "new_rows"),
        ("trg_generic_data_unique_update", False, "old_rows", "new_rows"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("previously_public", [False, True])
def test_grant_public_execute_forwards_backwards_forwards(previously_public):
    execute("CREATE FUNCTION app.op_probe(a int) RETURNS int LANGUAGE sql AS 'SELECT a'")
    execute("REVOKE EXECUTE ON FUNCTION app.op_probe(int) FROM PUBLIC")
    owner = fetchone("SELECT current_user")[0]
    public = sorted([f"=X/{owner}", f"{owner}=X/{owner}"])
    operation = GrantPublicExecute("app.op_probe", "a int", previously_public=previously_public)
    apply(operation, "forwards")
    assert acl_of("app.op_probe(int)") == public
    apply(operation, "backwards")
    # Previously public (PostgreSQL's default, kept by CREATE OR REPLACE): it stays so.
    assert acl_of("app.op_probe(int)") == (public if previously_public else [f"{owner}=X/{owner}"])
    apply(operation, "forwards")
    assert acl_of("app.op_probe(int)") == public


def test_grant_public_execute_protocol():
    operation = GrantPublicExecute("app.current_tenant", "", previously_public=True)
    assert operation.deconstruct() == (
        "GrantPublicExecute",
        [],
        {"name": "app.current_tenant", "arguments": "", "previously_public": True},
    )
    assert operation.describe() == "Grant execute on app.current_tenant() to PUBLIC (reviewed)"
    assert operation.migration_name_fragment == "grant_public_execute_app_current_tenant"
    assert GrantPublicExecute("app.f", "a int").deconstruct()[2] == {
        "name": "app.f",
        "arguments": "a int",
    }


def key_store() -> tuple:
    return fetchone(
        "SELECT to_regnamespace('hzm_private') IS NOT NULL, "
        "to_regclass('hzm_private.context_keys') IS NOT NULL"
    )


@pytest.mark.django_db
def test_create_context_key_store_forwards_backwards_forwards():
    operation = CreateContextKeyStore()
    assert key_store() == (True, True)  # migrated
    # The migration reverses the function in the schema first, as here.
    execute("DROP FUNCTION hzm_private.verifying_keys()")
    apply(operation, "backwards")
    assert key_store() == (False, False)
    apply(operation, "forwards")
    assert key_store() == (True, True)
    assert fetchone(
        "SELECT n.nspacl IS NULL OR NOT EXISTS (SELECT FROM aclexplode(n.nspacl) a "
        "WHERE a.grantee <> n.nspowner), c.relacl IS NULL OR NOT EXISTS (SELECT FROM "
        "aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = 'hzm_private.context_keys'::regclass"
    ) == (True, True)


def test_create_context_key_store_protocol():
    operation = CreateContextKeyStore()
    assert operation.deconstruct() == ("CreateContextKeyStore", [], {})
    assert (
        operation.describe() == "Create the owner-only context key table hzm_private.context_keys"
    )
    assert operation.migration_name_fragment == "create_context_key_store"
