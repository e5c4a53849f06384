"""The toolkit's migration operations, forwards, backwards and forwards again on PostgreSQL.

Each operation runs against a scratch table in a scratch schema inside the test's
transaction, and the catalog (pg_namespace, pg_proc, pg_trigger, pg_policies,
pg_class) is checked after every step.
"""

import pytest
from django.db import connection, migrations, models
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter

from hzm.db import operations as ops

APP = "optest"
SCHEMA = "hzm_optest"


def apply(operation, state: ProjectState, *, backwards: bool = False, collect: bool = False):
    """Run `operation` forwards (or backwards) from `state`; return (new state, collected SQL)."""
    new_state = state.clone()
    operation.state_forwards(APP, new_state)
    with connection.schema_editor(collect_sql=collect, atomic=False) as editor:
        if backwards:
            operation.database_backwards(APP, editor, new_state, state)
        else:
            operation.database_forwards(APP, editor, state, new_state)
    return new_state, getattr(editor, "collected_sql", [])


def query(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def schema_exists(name: str) -> bool:
    return bool(query("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name]))


def function_exists(schema: str, name: str) -> bool:
    return bool(
        query(
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s",
            [schema, name],
        )
    )


def triggers(table: str) -> dict[str, str]:
    return dict(
        query(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [table],
        )
    )


def policies(schema: str, table: str) -> dict[str, tuple]:
    rows = query(
        "SELECT policyname, cmd, qual, with_check FROM pg_policies "
        "WHERE schemaname = %s AND tablename = %s",
        [schema, table],
    )
    return {name: (cmd, qual, check) for name, cmd, qual, check in rows}


def rls_flags(table: str) -> tuple[bool, bool]:
    return query(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass",
        [table],
    )[0]


@pytest.fixture
def widget_state(db) -> ProjectState:
    """A scratch schema holding a `widgets` table with the platform's bookkeeping columns."""
    state = ProjectState()
    state, _ = apply(ops.CreateSchema(SCHEMA), state)
    create = migrations.CreateModel(
        "Widget",
        fields=[
            ("id", models.AutoField(primary_key=True)),
            ("tenant_id", models.IntegerField()),
            ("name", models.TextField()),
            ("version", models.IntegerField(null=True, db_default=1)),
            ("updated_at", models.DateTimeField(null=True)),
            ("is_deleted", models.BooleanField(null=True, db_default=False)),
            ("deleted_at", models.DateTimeField(null=True)),
            ("deleted_by", models.IntegerField(null=True)),
        ],
        options={"db_table": f'{SCHEMA}"."widgets'},
    )
    state, _ = apply(create, state)
    return state


TABLE = f"{SCHEMA}.widgets"


class TestCreateSchema:
    def test_forwards_backwards_forwards(self, db):
        operation = ops.CreateSchema("hzm_optest_schema")
        apply(operation, ProjectState())
        assert schema_exists("hzm_optest_schema")
        apply(operation, ProjectState(), backwards=True)
        assert not schema_exists("hzm_optest_schema")
        apply(operation, ProjectState())
        assert schema_exists("hzm_optest_schema")

    def test_protocol(self):
        operation = ops.CreateSchema("comms")
        assert operation.describe() == "Create schema comms"
        assert operation.migration_name_fragment == "create_schema_comms"
        assert operation.deconstruct() == ("CreateSchema", [], {"name": "comms"})
        assert operation.reversible

    def test_bad_name_fails_at_construction(self):
        with pytest.raises(ValueError, match="schema 'Comms'"):
            ops.CreateSchema("Comms")


FUNCTION = ops.InstallFunction(
    name=f"{SCHEMA}.double_it",
    arguments="x int DEFAULT 1",
    returns="int",
    body="SELECT x * 2",
    language="sql",
    volatility="IMMUTABLE",
)


class TestInstallFunction:
    def test_forwards_backwards_forwards(self, widget_state):
        apply(FUNCTION, widget_state)
        assert query(f"SELECT {SCHEMA}.double_it(21)") == [(42,)]
        assert query(
            "SELECT provolatile FROM pg_proc WHERE oid = %s::regproc", [f"{SCHEMA}.double_it"]
        ) == [("i",)]
        apply(FUNCTION, widget_state, backwards=True)
        assert not function_exists(SCHEMA, "double_it")
        apply(FUNCTION, widget_state)
        assert query(f"SELECT {SCHEMA}.double_it()") == [(2,)]

    def test_deconstruct_emits_only_non_defaults(self):
        name, args, kwargs = FUNCTION.deconstruct()
        assert (name, args) == ("InstallFunction", [])
        assert kwargs == {
            "name": f"{SCHEMA}.double_it",
            "arguments": "x int DEFAULT 1",
            "returns": "int",
            "body": "SELECT x * 2",
            "language": "sql",
            "volatility": "IMMUTABLE",
        }

    def test_describe_and_name_fragment(self):
        assert FUNCTION.describe() == f"Install function {SCHEMA}.double_it(x int)"
        assert FUNCTION.migration_name_fragment == f"install_function_{SCHEMA}_double_it"

    def test_bad_option_fails_when_the_migration_loads(self):
        with pytest.raises(ValueError, match="volatility"):
            ops.InstallFunction("app.f", "", "int", "SELECT 1", volatility="sometimes")


class TestEnableTenantRLS:
    def test_forwards_backwards_forwards(self, widget_state):
        operation = ops.EnableTenantRLS("widget")
        expected_predicate = "(tenant_id = app.current_tenant())"

        apply(operation, widget_state)
        assert rls_flags(TABLE) == (True, True)
        assert policies(SCHEMA, "widgets") == {
            "rls_widgets_tenant": ("ALL", expected_predicate, expected_predicate)
        }

        apply(operation, widget_state, backwards=True)
        assert rls_flags(TABLE) == (False, False)
        assert policies(SCHEMA, "widgets") == {}

        apply(operation, widget_state)
        assert rls_flags(TABLE) == (True, True)
        assert list(policies(SCHEMA, "widgets")) == ["rls_widgets_tenant"]

    def test_stem_names_the_policy(self, widget_state):
        apply(ops.EnableTenantRLS("widget", stem="w"), widget_state)
        assert list(policies(SCHEMA, "widgets")) == ["rls_w_tenant"]

    def test_protocol(self):
        operation = ops.EnableTenantRLS("UserSession", stem="sessions")
        assert operation.describe() == "Enable tenant row level security on UserSession"
        assert operation.migration_name_fragment == "usersession_tenant_rls"
        assert operation.deconstruct() == (
            "EnableTenantRLS",
            [],
            {"model_name": "UserSession", "stem": "sessions"},
        )
        assert ops.EnableTenantRLS("user").deconstruct()[2] == {"model_name": "user"}


TRIGGERS = [
    (
        ops.AttachTouchTrigger,
        "trg_widgets_touch",
        "BEFORE UPDATE ON hzm_optest.widgets FOR EACH ROW EXECUTE FUNCTION app.touch_row()",
    ),
    (
        ops.AttachSoftDeleteTrigger,
        "trg_widgets_softdel",
        "BEFORE DELETE ON hzm_optest.widgets FOR EACH ROW EXECUTE FUNCTION app.soft_delete()",
    ),
    (
        ops.AttachAuditTrigger,
        "trg_widgets_audit",
        "AFTER INSERT OR DELETE OR UPDATE ON hzm_optest.widgets FOR EACH ROW "
        "EXECUTE FUNCTION ops.log_audit()",
    ),
]


class TestAttachTriggers:
    @pytest.mark.parametrize(("operation_class", "name", "definition"), TRIGGERS)
    def test_forwards_backwards_forwards(self, widget_state, operation_class, name, definition):
        operation = operation_class("widget")
        apply(operation, widget_state)
        assert triggers(TABLE) == {name: f"CREATE TRIGGER {name} {definition}"}
        apply(operation, widget_state, backwards=True)
        assert triggers(TABLE) == {}
        apply(operation, widget_state)
        assert list(triggers(TABLE)) == [name]

    def test_touch_trigger_bumps_version(self, widget_state):
        apply(ops.AttachTouchTrigger("widget"), widget_state)
        query(f"INSERT INTO {TABLE} (tenant_id, name) VALUES (1, 'a')")
        query(f"UPDATE {TABLE} SET name = 'b'")
        assert query(f"SELECT version, updated_at IS NOT NULL FROM {TABLE}") == [(2, True)]

    def test_soft_delete_trigger_keeps_the_row(self, widget_state):
        apply(ops.AttachSoftDeleteTrigger("widget"), widget_state)
        query(f"INSERT INTO {TABLE} (tenant_id, name) VALUES (1, 'a')")
        query("SELECT app.set_context(1, 7)")
        query(f"DELETE FROM {TABLE}")
        assert query(f"SELECT is_deleted, deleted_at IS NOT NULL, deleted_by FROM {TABLE}") == [
            (True, True, 7)
        ]

    def test_stem_names_the_trigger(self, widget_state):
        apply(ops.AttachTouchTrigger("widget", stem="w"), widget_state)
        assert list(triggers(TABLE)) == ["trg_w_touch"]

    def test_protocol(self):
        operation = ops.AttachAuditTrigger("Tenant")
        assert operation.describe() == "Attach audit trigger (ops.log_audit) to Tenant"
        assert operation.migration_name_fragment == "tenant_audit_trigger"
        assert operation.deconstruct() == ("AttachAuditTrigger", [], {"model_name": "Tenant"})
        assert operation.references_model("tenant", "core")
        assert not operation.references_model("user", "core")


class TestSqlmigrate:
    """sqlmigrate shows the real DDL: operations only talk through schema_editor.execute()."""

    def test_collected_sql_is_the_ddl(self, widget_state):
        _, forwards = apply(ops.EnableTenantRLS("widget"), widget_state, collect=True)
        assert forwards == [
            'ALTER TABLE "hzm_optest"."widgets" ENABLE ROW LEVEL SECURITY;',
            'ALTER TABLE "hzm_optest"."widgets" FORCE ROW LEVEL SECURITY;',
            'CREATE POLICY "rls_widgets_tenant" ON "hzm_optest"."widgets" '
            'USING ("tenant_id" = app.current_tenant()) '
            'WITH CHECK ("tenant_id" = app.current_tenant());',
        ]
        # Collecting runs nothing.
        assert rls_flags(TABLE) == (False, False)

    def test_collected_backwards_sql(self, widget_state):
        _, backwards = apply(
            ops.AttachTouchTrigger("widget"), widget_state, backwards=True, collect=True
        )
        assert backwards == ['DROP TRIGGER "trg_widgets_touch" ON "hzm_optest"."widgets";']


@pytest.mark.parametrize(
    "operation",
    [
        ops.CreateSchema("billing"),
        FUNCTION,
        ops.EnableTenantRLS("usersession", stem="sessions"),
        ops.AttachTouchTrigger("user"),
        ops.AttachSoftDeleteTrigger("user"),
        ops.AttachAuditTrigger("user", stem="people"),
    ],
    ids=lambda operation: operation.describe(),
)
def test_operation_serializes_into_a_migration_and_back(operation):
    """makemigrations can write each operation, and the written code rebuilds it exactly."""
    code, imports = MigrationWriter.serialize(operation)
    namespace: dict = {}
    exec("\n".join(sorted(imports)), namespace)
    rebuilt = eval(code, namespace)
    assert type(rebuilt) is type(operation)
    assert rebuilt.deconstruct() == operation.deconstruct()
