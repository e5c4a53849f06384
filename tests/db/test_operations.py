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
from hzm.db.context import sign_context

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
        with connection.cursor() as cursor:
            sign_context(cursor, 1, 7)
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


class TestChangeAuditTriggerEvents:
    def test_forwards_backwards_forwards_in_place(self, widget_state):
        apply(ops.AttachAuditTrigger("widget"), widget_state)
        (oid,) = query("SELECT oid FROM pg_trigger WHERE tgname = 'trg_widgets_audit'")[0]
        operation = ops.ChangeAuditTriggerEvents("widget", ["UPDATE", "DELETE"])
        apply(operation, widget_state)
        assert triggers(TABLE) == {
            "trg_widgets_audit": "CREATE TRIGGER trg_widgets_audit AFTER DELETE OR UPDATE ON "
            "hzm_optest.widgets FOR EACH ROW EXECUTE FUNCTION ops.log_audit()"
        }
        apply(operation, widget_state, backwards=True)
        assert triggers(TABLE) == {
            "trg_widgets_audit": f"CREATE TRIGGER trg_widgets_audit {TRIGGERS[2][2]}"
        }
        apply(operation, widget_state)
        # Replaced, never dropped: the same trigger throughout.
        assert query("SELECT oid FROM pg_trigger WHERE tgname = 'trg_widgets_audit'") == [(oid,)]

    def test_protocol(self):
        operation = ops.ChangeAuditTriggerEvents("genericdata", ["UPDATE", "DELETE"])
        assert operation.describe() == "Audit genericdata rows on UPDATE, DELETE only"
        assert operation.migration_name_fragment == "genericdata_audit_events"
        assert operation.deconstruct() == (
            "ChangeAuditTriggerEvents",
            [],
            {"model_name": "genericdata", "events": ["UPDATE", "DELETE"]},
        )

    def test_bad_events_fail_when_loaded(self):
        with pytest.raises(ValueError, match="trigger events"):
            ops.ChangeAuditTriggerEvents("genericdata", ["TRUNCATE"])


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
        ops.ChangeAuditTriggerEvents("user", ["UPDATE"], ["INSERT", "UPDATE"], stem="people"),
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


class TestReplaceFunction:
    REPLACEMENT = ops.InstallFunction(
        name=f"{SCHEMA}.double_it",
        arguments="x int DEFAULT 1",
        returns="int",
        body="SELECT x * 3",
        language="sql",
        security_definer=True,
        search_path="pg_catalog",
        replaces={"returns": "int", "body": "SELECT x * 2", "language": "sql"},
    )

    def test_forwards_replaces_backwards_restores_the_previous_definition(self, widget_state):
        apply(FUNCTION, widget_state)
        apply(self.REPLACEMENT, widget_state)
        assert query(f"SELECT {SCHEMA}.double_it(5)") == [(15,)]
        definer = f"SELECT prosecdef FROM pg_proc WHERE oid = '{SCHEMA}.double_it'::regproc"
        assert query(definer) == [(True,)]
        apply(self.REPLACEMENT, widget_state, backwards=True)
        assert query(f"SELECT {SCHEMA}.double_it(5)") == [(10,)]
        assert query(definer) == [(False,)]
        apply(self.REPLACEMENT, widget_state)
        assert query(f"SELECT {SCHEMA}.double_it(5)") == [(15,)]

    def test_protocol(self):
        assert self.REPLACEMENT.describe() == f"Replace function {SCHEMA}.double_it(x int)"
        assert self.REPLACEMENT.deconstruct()[2]["replaces"] == {
            "returns": "int",
            "body": "SELECT x * 2",
            "language": "sql",
        }


class TestPolicies:
    def test_shared_rows_and_another_column(self, widget_state):
        apply(ops.EnableTenantRLS("widget", column="id", shared_rows=True), widget_state)
        assert policies(SCHEMA, "widgets") == {
            "rls_widgets_tenant": (
                "ALL",
                "((id IS NULL) OR (id = app.current_tenant()))",
                "(id = app.current_tenant())",
            )
        }

    def test_create_policy_forwards_backwards_forwards(self, widget_state):
        operation = ops.CreatePolicy(
            "widget", name="widgets_append", command="INSERT", with_check="true"
        )
        apply(operation, widget_state)
        assert policies(SCHEMA, "widgets") == {"widgets_append": ("INSERT", None, "true")}
        apply(operation, widget_state, backwards=True)
        assert policies(SCHEMA, "widgets") == {}
        apply(operation, widget_state)
        assert list(policies(SCHEMA, "widgets")) == ["widgets_append"]
        assert operation.deconstruct() == (
            "CreatePolicy",
            [],
            {
                "model_name": "widget",
                "name": "widgets_append",
                "command": "INSERT",
                "with_check": "true",
            },
        )

    def test_a_policy_without_condition_fails_when_loaded(self):
        with pytest.raises(ValueError, match="needs a USING or a WITH CHECK"):
            ops.CreatePolicy("widget", name="p")


ROLE = "hzm_optest_role"


def role_attributes(role: str) -> list[tuple]:
    return query(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = %s",
        [role],
    )


def table_privileges(role: str, table: str) -> set[str]:
    return {
        privilege
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        if query("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])[0][0]
    }


class TestRuntimeRoleAndGrants:
    @pytest.fixture(autouse=True)
    def scratch_role(self, settings):
        settings.HZM_APP_ROLE = ROLE

    def test_ensure_runtime_role_forwards_backwards_forwards(self, widget_state):
        operation = ops.EnsureRuntimeRole()
        apply(operation, widget_state)
        assert role_attributes(ROLE) == [(False, False, False, False)]
        apply(operation, widget_state, backwards=True)
        assert role_attributes(ROLE) == []
        apply(operation, widget_state)
        assert role_attributes(ROLE) == [(False, False, False, False)]

    def test_an_existing_role_loses_any_way_around_rls(self, widget_state):
        query(f"CREATE ROLE {ROLE} LOGIN BYPASSRLS")
        apply(ops.EnsureRuntimeRole(), widget_state)
        assert role_attributes(ROLE) == [(False, False, False, False)]

    def test_a_role_still_used_elsewhere_is_kept_on_reverse(self, widget_state):
        apply(ops.EnsureRuntimeRole(), widget_state)
        query(f"CREATE TABLE {SCHEMA}.elsewhere (id int)")
        query(f"GRANT SELECT ON {SCHEMA}.elsewhere TO {ROLE}")
        apply(ops.EnsureRuntimeRole(), widget_state, backwards=True)
        assert role_attributes(ROLE) != []

    def test_grants_forwards_backwards_forwards(self, widget_state):
        apply(ops.EnsureRuntimeRole(), widget_state)
        usage = ops.GrantSchemaUsage(SCHEMA)
        grant = ops.GrantTablePrivileges("widget", ["SELECT", "UPDATE"])
        schema_usage = f"SELECT has_schema_privilege('{ROLE}', '{SCHEMA}', 'USAGE')"
        for operation in (usage, grant):
            apply(operation, widget_state)
        assert query(schema_usage) == [(True,)]
        assert table_privileges(ROLE, TABLE) == {"SELECT", "UPDATE"}
        for operation in (grant, usage):
            apply(operation, widget_state, backwards=True)
        assert query(schema_usage) == [(False,)]
        assert table_privileges(ROLE, TABLE) == set()
        apply(grant, widget_state)
        assert table_privileges(ROLE, TABLE) == {"SELECT", "UPDATE"}

    def test_grant_protocol(self):
        operation = ops.GrantTablePrivileges("widget", ("SELECT",))
        assert operation.deconstruct() == (
            "GrantTablePrivileges",
            [],
            {"model_name": "widget", "privileges": ["SELECT"]},
        )
        assert operation.describe() == "Grant SELECT on widget to the runtime role"
        with pytest.raises(ValueError, match="TRUNCATE"):
            ops.GrantTablePrivileges("widget", ["TRUNCATE"])


def foreign_keys(table: str) -> dict[str, str]:
    return dict(
        query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
    )


class TestAddTenantForeignKey:
    def test_forwards_backwards_forwards(self, widget_state):
        parent = migrations.CreateModel(
            "Owner",
            fields=[
                ("id", models.AutoField(primary_key=True)),
                ("tenant_id", models.IntegerField()),
            ],
            options={"db_table": f'{SCHEMA}"."owners'},
        )
        state, _ = apply(parent, widget_state)
        query(f"ALTER TABLE {SCHEMA}.owners ADD UNIQUE (tenant_id, id)")
        query(f"ALTER TABLE {SCHEMA}.widgets ADD COLUMN owner_id int")
        operation = ops.AddTenantForeignKey(
            "widget",
            "fk_widgets_tenant_owner",
            ["tenant_id", "owner_id"],
            "owner",
            ["tenant_id", "id"],
        )
        apply(operation, state)
        assert foreign_keys(TABLE) == {
            "fk_widgets_tenant_owner": "FOREIGN KEY (tenant_id, owner_id) "
            "REFERENCES hzm_optest.owners(tenant_id, id)"
        }
        apply(operation, state, backwards=True)
        assert foreign_keys(TABLE) == {}
        apply(operation, state)
        query(f"INSERT INTO {SCHEMA}.owners (tenant_id) VALUES (1)")
        owner_id = query(f"SELECT id FROM {SCHEMA}.owners")[0][0]
        query(f"INSERT INTO {TABLE} (tenant_id, name, owner_id) VALUES (1, 'ok', %s)", [owner_id])
        from django.db import IntegrityError, transaction

        with pytest.raises(IntegrityError, match="fk_widgets_tenant_owner"), transaction.atomic():
            query(
                f"INSERT INTO {TABLE} (tenant_id, name, owner_id) VALUES (2, 'x', %s)", [owner_id]
            )

    def test_mismatched_columns_fail_when_loaded(self):
        with pytest.raises(ValueError, match="2 column\\(s\\) cannot reference 1"):
            ops.AddTenantForeignKey("w", "fk", ["a", "b"], "o", ["id"])


def test_audit_trigger_passes_a_composite_primary_key(db):
    """Tables keyed by something other than id tell log_audit their key columns."""
    state = ProjectState()
    state, _ = apply(ops.CreateSchema(SCHEMA), state)
    create = migrations.CreateModel(
        "Rate",
        fields=[
            ("pk", models.CompositePrimaryKey("a", "b")),
            ("a", models.TextField()),
            ("b", models.IntegerField()),
        ],
        options={"db_table": f'{SCHEMA}"."rates'},
    )
    state, _ = apply(create, state)
    apply(ops.AttachAuditTrigger("rate"), state)
    assert triggers(f"{SCHEMA}.rates")["trg_rates_audit"].endswith(
        "EXECUTE FUNCTION ops.log_audit('a', 'b')"
    )
    query(f"INSERT INTO {SCHEMA}.rates VALUES ('usd', 7)")
    assert query(
        "SELECT entity_type, entity_id FROM ops.audit_logs WHERE entity_type = %s",
        [f"{SCHEMA}.rates"],
    ) == [(f"{SCHEMA}.rates", "usd,7")]
