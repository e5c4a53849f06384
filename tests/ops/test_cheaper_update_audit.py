"""ops 0007 (issue 15): the audit of an UPDATE finds its changed columns in one pass, the
statement audit of INSERTs names keyed rows through ops.audit_entity_id(); the trail holds
what it held, and the migration goes forwards, backwards and forwards on the catalog."""

from importlib import import_module

import pytest
from django.db import connection
from django.db.migrations.state import ProjectState

from ops.models import AuditLog
from tests.support import fetchall, fetchone, run

pytestmark = pytest.mark.django_db

MIGRATION = import_module("ops.migrations.0007_cheaper_update_audit")
CHEAPER_AUDIT = import_module("ops.migrations.0006_cheaper_audit")


@pytest.mark.parametrize(
    "keys, expected",
    [
        (["b", "a"], "1,x"),
        (["a", "b"], "x,1"),
        (["a"], "x"),
        (["c", "a"], "x"),  # a JSON null is left out, as string_agg() leaves out NULL
        ([], None),
    ],
)
def test_audit_entity_id_joins_the_key_columns_in_their_order(keys, expected):
    assert fetchone(
        "SELECT ops.audit_entity_id(%s::jsonb, %s::text[])",
        ['{"a": "x", "b": 1, "c": null, "d": 4}', keys],
    ) == (expected,)


@pytest.fixture(params=["0007", "0006"])
def audit_bodies(request):
    """The audit functions of ops 0007, or those of 0006 (0007 reversed): the same trail."""
    if request.param == "0006":
        apply("backwards")
    return request.param


def trail(entity_type: str) -> list[tuple]:
    return [
        (a.action, a.entity_id, a.old_values, a.new_values)
        for a in AuditLog.objects.filter(entity_type=entity_type).order_by("id")
    ]


def test_the_row_audit_records_changed_columns_and_keys_of_keyed_and_secret_rows(
    audit_bodies,
):
    # Inside the test's transaction, as the superuser (no other role may attach it).
    run(
        "CREATE TABLE public.audit_probe (id int PRIMARY KEY, api_key text, note text, "
        "n numeric, updated_at timestamptz, version int)"
    )
    run("CREATE TABLE public.audit_keyed (code text, day int, note text, PRIMARY KEY (code, day))")
    run(
        "CREATE TRIGGER trg_audit_probe_audit AFTER INSERT OR UPDATE OR DELETE ON "
        "public.audit_probe FOR EACH ROW EXECUTE FUNCTION ops.log_audit()"
    )
    run(
        "CREATE TRIGGER trg_audit_keyed_audit AFTER INSERT OR UPDATE OR DELETE ON "
        "public.audit_keyed FOR EACH ROW EXECUTE FUNCTION ops.log_audit('code', 'day')"
    )
    run("INSERT INTO public.audit_probe VALUES (1, 'k1', 'a', 1.0, now(), 1)")
    run("UPDATE public.audit_probe SET note = 'b', api_key = 'k2' WHERE id = 1")
    # The same value (1.0 = 1.00 as jsonb), and the bookkeeping alone: no row.
    run("UPDATE public.audit_probe SET n = 1.00, updated_at = now() + interval '1 s'")
    run("UPDATE public.audit_probe SET version = 2")
    run("UPDATE public.audit_probe SET note = NULL, version = 3")
    run("DELETE FROM public.audit_probe")
    inserted, changed, emptied, deleted = trail("public.audit_probe")
    assert inserted[:3] == ("INSERT", "1", None)
    assert (inserted[3]["api_key"], inserted[3]["note"], inserted[3]["n"]) == (
        "[redacted]",
        "a",
        1.0,
    )
    assert changed == (
        "UPDATE",
        "1",
        {"id": 1, "note": "a", "api_key": "[redacted]"},
        {"id": 1, "note": "b", "api_key": "[redacted]"},
    )
    # A column set to NULL is a change; the version it made is recorded with it.
    assert emptied == (
        "UPDATE",
        "1",
        {"id": 1, "note": "b", "version": 2},
        {"id": 1, "note": None, "version": 3},
    )
    assert deleted[:2] == ("DELETE", "1") and deleted[3] is None
    assert (deleted[2]["note"], deleted[2]["api_key"]) == (None, "[redacted]")

    run("INSERT INTO public.audit_keyed VALUES ('x', 1, 'c')")
    run("UPDATE public.audit_keyed SET note = 'd'")
    run("UPDATE public.audit_keyed SET day = 2")
    key = {"code": "x", "day": 1}
    assert trail("public.audit_keyed") == [
        ("INSERT", "x,1", None, {**key, "note": "c"}),
        ("UPDATE", "x,1", {**key, "note": "c"}, {**key, "note": "d"}),
        # A key column that changed: each side names its own row.
        ("UPDATE", "x,2", {**key}, {"code": "x", "day": 2}),
    ]


def test_the_statement_audit_names_keyed_rows_and_others_by_id(audit_bodies):
    run("CREATE TABLE public.audit_keyed (code text, day int, note text, PRIMARY KEY (code, day))")
    run("CREATE TABLE public.audit_plain (id int PRIMARY KEY, note text)")
    for table, arguments in (("audit_keyed", "'code', 'day'"), ("audit_plain", "")):
        run(
            f"CREATE TRIGGER trg_{table}_audit AFTER INSERT ON public.{table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION ops.log_audit_inserts({arguments})"
        )
    run("INSERT INTO public.audit_keyed VALUES ('x', 1, 'a'), ('y', 2, 'b')")
    run("INSERT INTO public.audit_plain VALUES (7, 'c')")
    assert [entity for _, entity, _, _ in trail("public.audit_keyed")] == ["x,1", "y,2"]
    assert trail("public.audit_plain") == [("INSERT", "7", None, {"id": 7, "note": "c"})]


# --- The migration ------------------------------------------------------------------------------


def body_of(function: str) -> str | None:
    found = fetchall("SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(%s)", [function])
    return found[0][0] if found else None


def apply(direction: str) -> None:
    """The migration's operations, forwards or backwards (in reverse order)."""
    state = ProjectState()
    operations = MIGRATION.Migration.operations
    with connection.schema_editor(atomic=False) as editor:
        for operation in operations if direction == "forwards" else reversed(operations):
            getattr(operation, f"database_{direction}")("ops", editor, state, state)


AUDIT_FUNCTIONS = ("ops.log_audit()", "ops.log_audit_inserts()")


def definer_settings() -> list[tuple]:
    """Each audit function: SECURITY DEFINER, its search_path, EXECUTE for PUBLIC."""
    return [
        fetchone(
            "SELECT prosecdef, proconfig, has_function_privilege('public', oid, 'EXECUTE') "
            "FROM pg_proc WHERE oid = %s::regprocedure",
            [function],
        )
        for function in AUDIT_FUNCTIONS
    ]


def test_the_migration_forwards_backwards_forwards():
    new = (MIGRATION.LOG_AUDIT, MIGRATION.LOG_AUDIT_INSERTS)
    pinned = [(True, ["search_path=pg_catalog, pg_temp"], False)] * 2
    assert tuple(map(body_of, AUDIT_FUNCTIONS)) == new  # migrated
    assert body_of("ops.audit_entity_id(jsonb, text[])") == MIGRATION.AUDIT_ENTITY_ID
    apply("backwards")
    assert tuple(map(body_of, AUDIT_FUNCTIONS)) == (
        CHEAPER_AUDIT.LOG_AUDIT,
        CHEAPER_AUDIT.LOG_AUDIT_INSERTS,
    )
    assert body_of("ops.audit_entity_id(jsonb, text[])") is None
    assert definer_settings() == pinned
    apply("forwards")
    assert tuple(map(body_of, AUDIT_FUNCTIONS)) == new
    assert body_of("ops.audit_entity_id(jsonb, text[])") == MIGRATION.AUDIT_ENTITY_ID
    assert definer_settings() == pinned
    assert fetchone(
        "SELECT provolatile, proisstrict, prosecdef FROM pg_proc "
        "WHERE oid = 'ops.audit_entity_id(jsonb, text[])'::regprocedure"
    ) == ("i", True, False)
