"""AddTenantForeignKey(validate_separately=True) on a populated table, for real.

On a scratch database (so that its two steps really commit apart): a key added NOT VALID,
then validated, forwards, backwards and forwards again with rows present; a row of
another tenant stops the validation, and the step runs again once it is fixed.
"""

from collections.abc import Iterator

import pytest
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connection, migrations, models
from django.db import transaction as db_transaction
from django.db.migrations.state import ProjectState

from hzm.db import operations as ops
from hzm.deploy.connection import use_database
from tests.deploy.conftest import query

APP = "fktest"
SCHEMA = "hzm_fktest"
ROWS = 5_000
OPERATION = ops.AddTenantForeignKey(
    "part",
    "fk_parts_tenant_owner",
    ["tenant_id", "owner_id"],
    "owner",
    ["tenant_id", "id"],
    validate_separately=True,
)


def apply(operation, state: ProjectState, *, backwards=False, collect=False, atomic=False):
    new_state = state.clone()
    operation.state_forwards(APP, new_state)
    with connection.schema_editor(collect_sql=collect, atomic=atomic) as editor:
        if backwards:
            operation.database_backwards(APP, editor, new_state, state)
        else:
            operation.database_forwards(APP, editor, state, new_state)
    return new_state, getattr(editor, "collected_sql", [])


def key(database: str) -> list[tuple]:
    """(definition, validated) of the key, [] when there is none."""
    return query(
        database,
        "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conname = 'fk_parts_tenant_owner'",
    )


@pytest.fixture
def parts(databases, django_db_blocker) -> Iterator[tuple[str, ProjectState]]:
    """(database, state): owners of two tenants and ROWS parts pointing at their own."""
    database = databases.empty()
    settings = {**connection.settings_dict, "NAME": database}
    with django_db_blocker.unblock(), use_database(DEFAULT_DB_ALIAS, settings):
        state, _ = apply(ops.CreateSchema(SCHEMA), ProjectState())
        for name, fields in (
            ("Owner", [("tenant_id", models.IntegerField())]),
            ("Part", [("tenant_id", models.IntegerField()), ("owner_id", models.IntegerField())]),
        ):
            create = migrations.CreateModel(
                name,
                fields=[("id", models.AutoField(primary_key=True)), *fields],
                options={"db_table": f'{SCHEMA}"."{name.lower()}s'},
            )
            state, _ = apply(create, state)
        query(
            database,
            f"ALTER TABLE {SCHEMA}.owners ADD UNIQUE (tenant_id, id); "
            f"INSERT INTO {SCHEMA}.owners (tenant_id) VALUES (1), (2); "
            f"INSERT INTO {SCHEMA}.parts (tenant_id, owner_id) SELECT o.tenant_id, o.id "
            f"FROM {SCHEMA}.owners o, generate_series(1, {ROWS // 2})",
        )
        yield database, state


def test_not_valid_then_validate_forwards_backwards_forwards_with_rows(parts):
    database, state = parts
    _, collected = apply(OPERATION, state, collect=True)
    assert [statement.split(" ADD ")[0] for statement in collected[:1]] == [
        f'ALTER TABLE "{SCHEMA}"."parts" DROP CONSTRAINT IF EXISTS "fk_parts_tenant_owner",'
    ]
    assert collected[0].endswith(" NOT VALID;")
    assert collected[1] == (
        f'ALTER TABLE "{SCHEMA}"."parts" VALIDATE CONSTRAINT "fk_parts_tenant_owner";'
    )

    apply(OPERATION, state)
    definition = f"FOREIGN KEY (tenant_id, owner_id) REFERENCES {SCHEMA}.owners(tenant_id, id)"
    assert key(database) == [(definition, True)]
    apply(OPERATION, state, backwards=True)
    assert key(database) == []
    apply(OPERATION, state)
    assert key(database) == [(definition, True)]
    assert query(database, f"SELECT count(*) FROM {SCHEMA}.parts") == [(ROWS,)]


def test_a_row_of_another_tenant_stops_validation_and_a_rerun_finishes_once_fixed(parts):
    database, state = parts
    query(database, f"UPDATE {SCHEMA}.parts SET tenant_id = 2 WHERE id = 1")  # owner of 1
    with pytest.raises(Exception, match="fk_parts_tenant_owner"):
        apply(OPERATION, state)
    # Added, not valid: new rows are checked already, the old ones not yet.
    assert [validated for _, validated in key(database)] == [False]
    query(database, f"UPDATE {SCHEMA}.parts SET tenant_id = 1 WHERE id = 1")
    apply(OPERATION, state)
    assert [validated for _, validated in key(database)] == [True]


def test_it_refuses_to_run_inside_a_transaction(parts):
    _database, state = parts
    with db_transaction.atomic(), pytest.raises(NotSupportedError, match="atomic = False"):
        apply(OPERATION, state)


def test_the_default_is_todays_single_statement():
    default = ops.AddTenantForeignKey("part", "fk", ["tenant_id", "owner_id"], "owner", ["a", "b"])
    assert "validate_separately" not in default.deconstruct()[2]
    assert OPERATION.deconstruct()[2]["validate_separately"] is True
    assert OPERATION.describe().endswith(", NOT VALID then validated")
    with pytest.raises(ValueError, match="validate_separately must be True or False"):
        ops.AddTenantForeignKey("p", "fk", ["a"], "o", ["b"], validate_separately="yes")


def test_readd_not_valid_renders_one_re_runnable_statement():
    from hzm.db import sql

    add = sql.add_foreign_key("fk_x", "app", "rows", ("tenant_id", "x_id"), "app", "xs", ("a", "b"))
    assert sql.readd_not_valid(add, "fk_x") == (
        'ALTER TABLE "app"."rows" DROP CONSTRAINT IF EXISTS "fk_x", ADD CONSTRAINT "fk_x" '
        'FOREIGN KEY ("tenant_id", "x_id") REFERENCES "app"."xs" ("a", "b") NOT VALID'
    )
    with pytest.raises(ValueError, match="not an ALTER TABLE"):
        sql.readd_not_valid("CREATE INDEX x ON t (a)", "x")
