"""Microservice roles: the SQL to the exact string, each operation forwards, backwards and
forwards again against the catalog, and the roles the migrations made, tried as themselves.
"""

import pytest
from django.db import connection, migrations, models, transaction
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter
from django.db.utils import ProgrammingError

from hzm.db import operations as ops
from hzm.db import sql
from hzm.db.context import sign_context
from tests.db.test_operations import apply, query
from tests.factories import UserFactory
from tests.factories_platform import NotificationFactory, SubscriptionFactory

APP = "optest"  # the app label tests.db.test_operations.apply() migrates
SCHEMA = "hzm_svctest"
RUNTIME = "hzm_svctest_app"
SERVICE = f"{RUNTIME}_mail"


# --- SQL ----------------------------------------------------------------------------------


class TestRenderers:
    def test_service_role_name(self):
        assert sql.service_role_name("hzm_app", "comms") == "hzm_app_comms"

    @pytest.mark.parametrize("service", ["Comms", "co-mms", "", "a b"])
    def test_a_bad_service_name_is_refused(self, service):
        with pytest.raises(ValueError, match="service"):
            sql.service_role_name("hzm_app", service)

    def test_a_service_role_name_too_long_for_postgres_is_refused(self):
        with pytest.raises(ValueError, match="service role .* PostgreSQL keeps only 63"):
            sql.service_role_name("r" * 60, "comms")

    def test_grant_and_revoke_column_privileges(self):
        args = ("core", "users", "hzm_app_comms", ("SELECT", "UPDATE"), ("id", "email"))
        assert sql.grant_column_privileges(*args) == (
            'GRANT SELECT ("id", "email"), UPDATE ("id", "email") ON "core"."users" '
            'TO "hzm_app_comms"'
        )
        assert sql.revoke_column_privileges(*args) == (
            'REVOKE SELECT ("id", "email"), UPDATE ("id", "email") ON "core"."users" '
            'FROM "hzm_app_comms"'
        )

    @pytest.mark.parametrize(
        ("privileges", "columns", "message"),
        [
            (("DELETE",), ("id",), "column privileges .* must be some of SELECT, INSERT, UPDATE"),
            ((), ("id",), "column privileges"),
            (("SELECT",), (), "needs at least one column"),
            (("SELECT",), ("Email",), "column 'Email' is not a valid name"),
        ],
    )
    def test_bad_column_grants_are_refused(self, privileges, columns, message):
        with pytest.raises(ValueError, match=message):
            sql.grant_column_privileges("core", "users", "r", privileges, columns)


# --- Operations on a scratch table ----------------------------------------------------------


@pytest.fixture
def state(db, settings) -> ProjectState:
    """A scratch runtime role name, a scratch schema and a `widgets` table in it."""
    settings.HZM_APP_ROLE = RUNTIME
    state = ProjectState()
    state, _ = apply(ops.CreateSchema(SCHEMA), state)
    create = migrations.CreateModel(
        "Widget",
        fields=[
            ("id", models.AutoField(primary_key=True)),
            ("tenant_id", models.IntegerField()),
            ("name", models.TextField()),
            ("secret", models.TextField(null=True)),
        ],
        options={"db_table": f'{SCHEMA}"."widgets'},
    )
    state, _ = apply(create, state)
    return state


def role_attributes(role: str) -> list[tuple]:
    return query(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit, rolcreatedb, rolcreaterole "
        "FROM pg_roles WHERE rolname = %s",
        [role],
    )


NO_PRIVILEGES = (False, False, False, False, False, False)


def table_privileges(role: str, table: str) -> set[str]:
    return {
        privilege
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        if query("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])[0][0]
    }


def writes_all_but_id(role: str, table: str) -> bool:
    """INSERT and UPDATE on every column of `table` but its identity id."""
    (ok,) = query(
        "SELECT bool_and(has_column_privilege(%s, a.attrelid, a.attnum, p) = (a.attname <> 'id')) "
        "FROM pg_attribute a CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE']) AS p "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        [role, table],
    )[0]
    return bool(ok)


def column_privilege(role: str, table: str, column: str, privilege: str = "SELECT") -> bool:
    return query("SELECT has_column_privilege(%s, %s, %s, %s)", [role, table, column, privilege])[
        0
    ][0]


def schema_usage(role: str, schema: str) -> bool:
    return query("SELECT has_schema_privilege(%s, %s, 'USAGE')", [role, schema])[0][0]


class TestEnsureServiceRole:
    def test_forwards_backwards_forwards(self, state):
        operation = ops.EnsureServiceRole("mail")
        apply(operation, state)
        assert role_attributes(SERVICE) == [NO_PRIVILEGES]
        apply(operation, state, backwards=True)
        assert role_attributes(SERVICE) == []
        apply(operation, state)
        assert role_attributes(SERVICE) == [NO_PRIVILEGES]

    def test_an_existing_role_loses_any_way_around_rls(self, state):
        query(f"CREATE ROLE {SERVICE} LOGIN BYPASSRLS CREATEROLE")
        apply(ops.EnsureServiceRole("mail"), state)
        assert role_attributes(SERVICE) == [NO_PRIVILEGES]

    def test_the_sql_is_the_runtime_roles_for_the_service_role(self, state):
        _, forwards = apply(ops.EnsureServiceRole("mail"), state, collect=True)
        assert forwards == [sql.ensure_runtime_role(SERVICE) + ";"]
        _, backwards = apply(ops.EnsureServiceRole("mail"), state, backwards=True, collect=True)
        assert backwards == [sql.drop_role_if_unused(SERVICE) + ";"]

    def test_the_name_follows_the_runtime_roles_setting(self, settings):
        settings.HZM_APP_ROLE = "staging_app"
        assert ops.service_role("billing") == "staging_app_billing"

    def test_protocol(self):
        operation = ops.EnsureServiceRole("comms")
        assert operation.deconstruct() == ("EnsureServiceRole", [], {"service": "comms"})
        assert operation.describe() == "Ensure the comms service role exists (<HZM_APP_ROLE>_comms)"
        assert operation.migration_name_fragment == "comms_service_role"
        with pytest.raises(ValueError, match="service 'Comms'"):
            ops.EnsureServiceRole("Comms")


class TestGrants:
    def test_schema_usage_forwards_backwards_forwards(self, state):
        apply(ops.EnsureServiceRole("mail"), state)
        operation = ops.GrantServiceSchemaUsage("mail", SCHEMA)
        _, statements = apply(operation, state, collect=True)
        assert statements == [f'GRANT USAGE ON SCHEMA "{SCHEMA}" TO "{SERVICE}";']
        apply(operation, state)
        assert schema_usage(SERVICE, SCHEMA)
        apply(operation, state, backwards=True)
        assert not schema_usage(SERVICE, SCHEMA)
        apply(operation, state)
        assert schema_usage(SERVICE, SCHEMA)

    def test_table_privileges_forwards_backwards_forwards(self, state):
        apply(ops.EnsureServiceRole("mail"), state)
        operation = ops.GrantServiceTablePrivileges("widget", "mail", ["SELECT", "INSERT"])
        _, statements = apply(operation, state, collect=True)
        assert statements == [f'GRANT SELECT, INSERT ON "{SCHEMA}"."widgets" TO "{SERVICE}";']
        apply(operation, state)
        assert table_privileges(SERVICE, f"{SCHEMA}.widgets") == {"SELECT", "INSERT"}
        apply(operation, state, backwards=True)
        assert table_privileges(SERVICE, f"{SCHEMA}.widgets") == set()
        apply(operation, state)
        assert table_privileges(SERVICE, f"{SCHEMA}.widgets") == {"SELECT", "INSERT"}

    def test_column_privileges_of_another_apps_model(self, state):
        apply(ops.EnsureServiceRole("mail"), state)
        # Named as a service names core's models: "<app label>.<model>".
        operation = ops.GrantServiceTablePrivileges(
            f"{APP}.widget", "mail", ["SELECT"], columns=["id", "name"]
        )
        _, statements = apply(operation, state, collect=True)
        assert statements == [
            f'GRANT SELECT ("id", "name") ON "{SCHEMA}"."widgets" TO "{SERVICE}";'
        ]
        apply(operation, state)
        table = f"{SCHEMA}.widgets"
        assert column_privilege(SERVICE, table, "name")
        assert not column_privilege(SERVICE, table, "secret")
        assert table_privileges(SERVICE, table) == set()
        apply(operation, state, backwards=True)
        assert not column_privilege(SERVICE, table, "name")
        apply(operation, state)
        assert column_privilege(SERVICE, table, "name")

    def test_protocol(self):
        operation = ops.GrantServiceTablePrivileges(
            "core.user", "comms", ("SELECT",), columns=("id", "email")
        )
        assert operation.deconstruct() == (
            "GrantServiceTablePrivileges",
            [],
            {
                "model_name": "core.user",
                "service": "comms",
                "privileges": ["SELECT"],
                "columns": ["id", "email"],
            },
        )
        assert operation.describe() == (
            "Grant SELECT on core.user (id, email) to the comms service role"
        )
        assert operation.migration_name_fragment == "grant_comms_core_user"
        assert operation.references_model("user", "core")
        assert not operation.references_model("core", "core")
        usage = ops.GrantServiceSchemaUsage("billing", "core")
        assert usage.deconstruct() == (
            "GrantServiceSchemaUsage",
            [],
            {"service": "billing", "schema": "core"},
        )
        assert usage.describe() == "Grant usage on schema core to the billing service role"

    def test_bad_grants_fail_when_the_migration_loads(self):
        with pytest.raises(ValueError, match="TRUNCATE"):
            ops.GrantServiceTablePrivileges("widget", "mail", ["TRUNCATE"])
        with pytest.raises(ValueError, match="column privileges"):
            ops.GrantServiceTablePrivileges("widget", "mail", ["DELETE"], columns=["id"])


SHOUT = "BEGIN NEW.name := upper(NEW.name); RETURN NEW; END"


class TestAttachFunctionTrigger:
    OPERATION = ops.AttachFunctionTrigger(
        "widget", kind="shout", function=f"{SCHEMA}.shout", timing="BEFORE", events=["INSERT"]
    )

    def test_forwards_backwards_forwards(self, state):
        state, _ = apply(
            ops.InstallFunction(f"{SCHEMA}.shout", "", "trigger", SHOUT),
            state,
        )
        triggers = (
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            f"WHERE tgrelid = '{SCHEMA}.widgets'::regclass AND NOT tgisinternal"
        )
        apply(self.OPERATION, state)
        assert query(triggers) == [
            (
                "trg_widgets_shout",
                f"CREATE TRIGGER trg_widgets_shout BEFORE INSERT ON {SCHEMA}.widgets "
                f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.shout()",
            )
        ]
        query(f"INSERT INTO {SCHEMA}.widgets (tenant_id, name) VALUES (1, 'quiet')")
        assert query(f"SELECT name FROM {SCHEMA}.widgets") == [("QUIET",)]
        apply(self.OPERATION, state, backwards=True)
        assert query(triggers) == []
        apply(self.OPERATION, state)
        assert [name for name, _ in query(triggers)] == ["trg_widgets_shout"]

    def test_protocol(self):
        assert self.OPERATION.deconstruct() == (
            "AttachFunctionTrigger",
            [],
            {
                "model_name": "widget",
                "kind": "shout",
                "function": f"{SCHEMA}.shout",
                "timing": "BEFORE",
                "events": ["INSERT"],
            },
        )
        assert self.OPERATION.describe() == f"Attach shout trigger ({SCHEMA}.shout) to widget"

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"timing": "INSTEAD OF"}, "trigger timing"),
            ({"events": ["TRUNCATE"]}, "trigger events"),
            ({"function": "a.b.c"}, "more than one"),
            ({"kind": "Shout"}, "trigger kind"),
        ],
    )
    def test_bad_triggers_fail_when_the_migration_loads(self, kwargs, message):
        arguments = {
            "kind": "shout",
            "function": "app.shout",
            "timing": "BEFORE",
            "events": ["INSERT"],
        }
        with pytest.raises(ValueError, match=message):
            ops.AttachFunctionTrigger("widget", **(arguments | kwargs))


@pytest.mark.parametrize(
    "operation",
    [
        ops.EnsureServiceRole("comms"),
        ops.GrantServiceSchemaUsage("comms", "core"),
        ops.GrantServiceTablePrivileges("core.user", "comms", ["SELECT"], columns=["email"]),
        ops.GrantServiceTablePrivileges("notification", "comms", ["SELECT", "UPDATE"]),
        TestAttachFunctionTrigger.OPERATION,
    ],
    ids=lambda operation: operation.describe(),
)
def test_operation_serializes_into_a_migration_and_back(operation):
    code, imports = MigrationWriter.serialize(operation)
    namespace: dict = {}
    exec("\n".join(sorted(imports)), namespace)
    rebuilt = eval(code, namespace)
    assert type(rebuilt) is type(operation)
    assert rebuilt.deconstruct() == operation.deconstruct()


# --- The roles the migrations made --------------------------------------------------------------


def as_role(role: str, tenant_id: int | None) -> None:
    """Switch this transaction to `role`, in the context of `tenant_id` (None: no context)."""
    query("SELECT set_config('role', %s, true)", [role])
    if tenant_id is not None:
        with connection.cursor() as cursor:
            sign_context(cursor, tenant_id)


def refused(statement: str, params=()) -> str:
    with pytest.raises(ProgrammingError) as error, transaction.atomic():
        query(statement, params)
    return str(error.value)


@pytest.mark.django_db
class TestMigratedServiceRoles:
    @pytest.mark.parametrize("service", ["comms", "billing"])
    def test_exist_without_any_way_around_rls(self, service):
        assert role_attributes(ops.service_role(service)) == [NO_PRIVILEGES]

    @pytest.mark.parametrize(
        ("service", "usable", "not_usable"),
        [
            ("comms", {"comms", "app", "core"}, {"billing", "cfg", "ops"}),
            ("billing", {"billing", "app", "core"}, {"comms", "cfg", "ops"}),
        ],
    )
    def test_use_their_schema_app_and_core_only(self, service, usable, not_usable):
        role = ops.service_role(service)
        assert {schema for schema in usable | not_usable if schema_usage(role, schema)} == usable

    def test_comms_reads_the_address_of_a_user_never_the_password_hash(self):
        role = ops.service_role("comms")
        assert column_privilege(role, "core.users", "email")
        assert not column_privilege(role, "core.users", "password_hash")
        assert not column_privilege(role, "core.users", "email_verification_token")
        assert table_privileges(role, "core.users") == set()
        # Inserts and updates on every column but the identity id (hzm 0005).
        assert table_privileges(role, "comms.email_queue") == {"SELECT"}
        assert writes_all_but_id(role, "comms.email_queue")
        assert table_privileges(role, "billing.subscriptions") == set()

    def test_billing_writes_subscriptions_and_reads_its_tenant_only_in_part(self):
        role = ops.service_role("billing")
        assert table_privileges(role, "billing.subscriptions") == {"SELECT"}
        assert writes_all_but_id(role, "billing.subscriptions")
        assert table_privileges(role, "billing.plans") == {"SELECT"}
        assert column_privilege(role, "core.tenants", "plan")
        assert not column_privilege(role, "core.tenants", "plan", "UPDATE")
        assert not column_privilege(role, "core.tenants", "settings")
        assert table_privileges(role, "comms.notifications") == set()

    def test_comms_sees_no_row_without_a_tenant_context_and_its_tenants_within_one(self):
        mine, theirs = NotificationFactory(), NotificationFactory()
        as_role(ops.service_role("comms"), None)
        assert query("SELECT count(*) FROM comms.notifications") == [(0,)]
        with connection.cursor() as cursor:
            sign_context(cursor, mine.tenant_id)
        assert query("SELECT id FROM comms.notifications") == [(mine.pk,)]
        assert query("SELECT id FROM core.users WHERE id = %s", [theirs.user_id]) == []
        assert query("SELECT email FROM core.users WHERE id = %s", [mine.user_id]) == [
            (mine.user.email,)
        ]

    def test_comms_cannot_write_into_another_tenant(self):
        mine, theirs = UserFactory(), UserFactory()
        as_role(ops.service_role("comms"), mine.tenant_id)
        message = refused(
            "INSERT INTO comms.notifications (tenant_id, user_id, kind, title) "
            "VALUES (%s, %s, 'x', 'y')",
            [theirs.tenant_id, theirs.pk],
        )
        assert "row-level security" in message

    def test_billing_cannot_read_comms_nor_write_tenants(self):
        subscription = SubscriptionFactory()
        as_role(ops.service_role("billing"), subscription.tenant_id)
        assert "permission denied for schema comms" in refused("SELECT 1 FROM comms.notifications")
        assert "permission denied for table tenants" in refused(
            "UPDATE core.tenants SET plan = 'free'"
        )
        assert query("SELECT plan FROM core.tenants") == [(subscription.plan.code,)]


# --- Tenant foreign keys with an ON DELETE rule ------------------------------------------------


class TestTenantKeyOnDelete:
    @pytest.mark.parametrize(
        ("rule", "columns", "clause"),
        [
            ("CASCADE", ("tenant_id", "file_id"), " ON DELETE CASCADE"),
            ("SET NULL", ("tenant_id", "invited_by"), ' ON DELETE SET NULL ("invited_by")'),
            ("SET NULL", ("tenant_id", "a", "b"), ' ON DELETE SET NULL ("a", "b")'),
        ],
    )
    def test_clause(self, rule, columns, clause):
        assert sql.tenant_key_on_delete_clause(rule, columns) == clause

    @pytest.mark.parametrize(
        ("rule", "columns", "message"),
        [
            ("NO ACTION", ("tenant_id", "x"), "is not one of CASCADE, SET NULL"),
            ("SET NULL", ("tenant_id",), "must include tenant_id and at least one other"),
            ("SET NULL", ("x",), "must include tenant_id"),
        ],
    )
    def test_bad_rules_are_refused(self, rule, columns, message):
        with pytest.raises(ValueError, match=message):
            sql.tenant_key_on_delete_clause(rule, columns)

    @pytest.fixture
    def owners(self, state):
        parent = migrations.CreateModel(
            "Owner",
            fields=[
                ("id", models.AutoField(primary_key=True)),
                ("tenant_id", models.IntegerField()),
            ],
            options={"db_table": f'{SCHEMA}"."owners'},
        )
        state, _ = apply(parent, state)
        query(f"ALTER TABLE {SCHEMA}.owners ADD UNIQUE (tenant_id, id)")
        query(f"ALTER TABLE {SCHEMA}.widgets ADD COLUMN owner_id int")
        query(f"INSERT INTO {SCHEMA}.owners (id, tenant_id) VALUES (1, 1)")
        query(f"INSERT INTO {SCHEMA}.widgets (tenant_id, name, owner_id) VALUES (1, 'w', 1)")
        return state

    @pytest.mark.parametrize(
        ("rule", "after_delete"),
        [("CASCADE", []), ("SET NULL", [(1, None)])],
    )
    def test_forwards_backwards_forwards(self, owners, rule, after_delete):
        operation = ops.AddTenantForeignKey(
            "widget",
            "fk_widgets_tenant_owner",
            ["tenant_id", "owner_id"],
            "owner",
            ["tenant_id", "id"],
            on_delete=rule,
        )
        definition = (
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'fk_widgets_tenant_owner'"
        )
        _, statements = apply(operation, owners, collect=True)
        clause = " ON DELETE CASCADE" if rule == "CASCADE" else ' ON DELETE SET NULL ("owner_id")'
        assert statements == [
            f'ALTER TABLE "{SCHEMA}"."widgets" ADD CONSTRAINT "fk_widgets_tenant_owner" '
            f'FOREIGN KEY ("tenant_id", "owner_id") REFERENCES "{SCHEMA}"."owners" '
            f'("tenant_id", "id"){clause};'
        ]
        apply(operation, owners)
        assert query(definition)[0][0].endswith(
            "ON DELETE CASCADE" if rule == "CASCADE" else "ON DELETE SET NULL (owner_id)"
        )
        apply(operation, owners, backwards=True)
        assert query(definition) == []
        apply(operation, owners)
        query(f"DELETE FROM {SCHEMA}.owners")
        assert query(f"SELECT tenant_id, owner_id FROM {SCHEMA}.widgets") == after_delete

    def test_protocol(self):
        operation = ops.AddTenantForeignKey(
            "imagevariant",
            "fk_image_variants_tenant_file",
            ["tenant_id", "file_id"],
            "core.file",
            ["tenant_id", "id"],
            on_delete="CASCADE",
        )
        assert operation.deconstruct()[2]["on_delete"] == "CASCADE"
        assert operation.describe() == (
            "Add tenant foreign key fk_image_variants_tenant_file on imagevariant -> core.file "
            "(on delete cascade)"
        )
        code, imports = MigrationWriter.serialize(operation)
        namespace: dict = {}
        exec("\n".join(sorted(imports)), namespace)
        assert eval(code, namespace).deconstruct() == operation.deconstruct()
        with pytest.raises(ValueError, match="ON DELETE rule 'RESTRICT'"):
            ops.AddTenantForeignKey(
                "w", "fk", ["tenant_id", "x"], "o", ["tenant_id", "id"], on_delete="RESTRICT"
            )
