"""ops.system_logs (partitioned by month) and the retention commands of the logs and audit trail."""

import datetime
from io import StringIO

import pytest
from django.apps.registry import Apps
from django.core.management import CommandError, call_command
from django.db import connection, models

from hzm import progress
from hzm.db import partitions
from hzm.db.context import sign_context, tenant_context
from hzm.db.operations import runtime_role
from ops.models import AuditLog
from ops.monitoring import SystemLog, write_system_log
from ops.retention import RetentionRefused, prune_audit_logs, prune_system_logs
from tests.factories import TenantFactory, UserFactory
from tests.factories_platform import SystemLogFactory
from tests.platform_support import as_role, assert_admin_pages_open, query, sign_in_platform_admin
from tests.support import refused, run

UTC = datetime.UTC
# Months long past, so that what the commands write now (their own log line) is newer.
JAN, FEB, MAR = (datetime.date(2020, month, 1) for month in (1, 2, 3))
APR, MAY = datetime.date(2020, 4, 1), datetime.date(2020, 5, 1)


def at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), UTC)


# --- The renderers (no database) ---------------------------------------------------------------


def test_month_arithmetic_and_names():
    assert partitions.add_months(datetime.date(2020, 11, 1), 3) == datetime.date(2021, 2, 1)
    assert partitions.add_months(JAN, -1) == datetime.date(2019, 12, 1)
    assert partitions.month_partition_name("system_logs", FEB) == "system_logs_2020_02"
    assert partitions.partition_month("system_logs", "system_logs_2020_02") == FEB
    for other in (
        "system_logs_default",
        "system_logs_2020_13",
        "other_2020_02",
        "system_logs_2020_2",
    ):
        assert partitions.partition_month("system_logs", other) is None


def test_create_partitioned_table():
    assert partitions.create_partitioned_table(
        "ops", "t", [("id", "bigint"), ("at", "timestamptz NOT NULL")], ("id", "at"), "at"
    ) == (
        'CREATE TABLE "ops"."t" (\n'
        '  "id" bigint,\n'
        '  "at" timestamptz NOT NULL,\n'
        '  PRIMARY KEY ("id", "at")\n'
        ') PARTITION BY RANGE ("at")'
    )
    with pytest.raises(ValueError, match="must be one of its columns and part of its primary key"):
        partitions.create_partitioned_table("ops", "t", [("id", "bigint")], ("id",), "at")
    with pytest.raises(ValueError, match="unknown column"):
        partitions.create_partitioned_table("ops", "t", [("at", "date")], ("id", "at"), "at")


def test_create_month_partition_moves_the_months_rows_out_of_the_default_one():
    assert partitions.create_month_partition("ops", "system_logs", "created_at", FEB) == [
        'CREATE TABLE "ops"."system_logs_2020_02" (LIKE "ops"."system_logs" '
        "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        'WITH moved AS (DELETE FROM "ops"."system_logs_default" WHERE "created_at" >= '
        "'2020-02-01 00:00:00+00' AND \"created_at\" < '2020-03-01 00:00:00+00' RETURNING *) "
        'INSERT INTO "ops"."system_logs_2020_02" SELECT * FROM moved',
        'ALTER TABLE "ops"."system_logs" ATTACH PARTITION "ops"."system_logs_2020_02" '
        "FOR VALUES FROM ('2020-02-01 00:00:00+00') TO ('2020-03-01 00:00:00+00')",
    ]
    with pytest.raises(ValueError, match="not the first day of a month"):
        partitions.create_month_partition("ops", "t", "at", datetime.date(2020, 2, 2))


def test_other_renderers():
    assert partitions.create_default_partition("ops", "t") == (
        'CREATE TABLE "ops"."t_default" PARTITION OF "ops"."t" DEFAULT'
    )
    assert partitions.drop_table("ops", "t_2020_01") == 'DROP TABLE "ops"."t_2020_01"'
    assert partitions.delete_from_default_before("ops", "t", "at") == (
        'DELETE FROM "ops"."t_default" WHERE "at" < %s'
    )
    assert partitions.count_default_before("ops", "t", "at") == (
        'SELECT count(*) FROM "ops"."t_default" WHERE "at" < %s'
    )


@pytest.mark.parametrize(
    ("existing", "older_than", "ahead", "drop", "create"),
    [
        # Keep this month (March) and the one before; March to May must exist.
        (
            ["t_default", "t_2019_12", "t_2020_01", "t_2020_02", "t_2020_03", "t_manual"],
            1,
            2,
            ["t_2019_12", "t_2020_01"],
            [APR, MAY],
        ),
        (["t_2020_01"], 0, 0, ["t_2020_01"], [MAR]),
        ([], 12, 0, [], [MAR]),
    ],
)
def test_retention_plan(existing, older_than, ahead, drop, create):
    cutoff, dropped, created = partitions.retention_plan(
        "t", existing, datetime.date(2020, 3, 17), older_than, ahead
    )
    assert cutoff == partitions.add_months(MAR, -older_than)
    assert (dropped, created) == (drop, create)


def test_retention_plan_refuses_negative_counts():
    with pytest.raises(ValueError, match="must be 0 or more"):
        partitions.retention_plan("t", [], JAN, -1, 0)


# --- The table ------------------------------------------------------------------------------------

db = pytest.mark.django_db


@db
def test_the_table_is_partitioned_by_month_of_created_at_with_a_default_partition():
    assert query(
        "SELECT pg_get_partkeydef('ops.system_logs'::regclass), "
        "pg_get_constraintdef(c.oid) FROM pg_constraint c "
        "WHERE c.conrelid = 'ops.system_logs'::regclass AND c.contype = 'p'"
    ) == [("RANGE (created_at)", "PRIMARY KEY (id, created_at)")]
    assert query(partitions.LIST_PARTITIONS, ['"ops"."system_logs"'])[:1] == [
        ("system_logs_default", "DEFAULT")
    ]


def columns(table: str) -> list[tuple]:
    return query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid), a.attidentity FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [table],
    )


@db
def test_the_frozen_columns_are_what_django_would_create_for_the_model():
    """The migration's column list and the model cannot drift apart unnoticed."""

    class Probe(models.Model):
        id = models.BigAutoField(primary_key=True)

        class Meta:
            apps = Apps()  # not the project's registry: makemigrations must never see it
            app_label = "ops"
            db_table = "hzm_issue7_system_logs_probe"

        def __str__(self) -> str:
            return str(self.pk)

    for field in SystemLog._meta.concrete_fields:
        if not field.primary_key:
            clone = field.clone()
            clone.set_attributes_from_name(field.name)
            Probe.add_to_class(field.name, clone)
    with connection.schema_editor() as editor:
        editor.create_model(Probe)
    assert columns("ops.system_logs") == columns("hzm_issue7_system_logs_probe")


@db
def test_indexes_reach_every_partition():
    prune_system_logs(0, months_ahead=0, today=JAN)
    names = {
        name
        for (name,) in query(
            "SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid = 'ops.system_logs_2020_01'::regclass"
        )
    }
    assert len(names) == 5  # the primary key and the four named indexes, each per partition
    assert {
        name
        for (name,) in query(
            "SELECT indexrelid::regclass::text FROM pg_index "
            "WHERE indrelid = 'ops.system_logs'::regclass"
        )
    } >= {"ops.idx_system_logs_created", "ops.idx_system_logs_request"}


@db
def test_the_level_is_one_of_the_five():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError, match="system_logs_level_check"), transaction.atomic():
        SystemLogFactory(level="verbose")


@db
def test_write_system_log_stamps_the_context_and_the_runtime_role_cannot_read_it():
    tenant = TenantFactory()
    user = UserFactory(tenant=tenant)
    with tenant_context(tenant.pk, user.pk, request_id="req-1"):
        log_id = write_system_log("error", "payments", "card declined", {"order": 5})
        error = refused(lambda: list(SystemLog.objects.all()))
        assert error.diag.message_primary == "permission denied for table system_logs"
    row = SystemLog.objects.get(pk=log_id)
    assert (row.level, row.source, row.message, row.request_id) == (
        "error",
        "payments",
        "card declined",
        "req-1",
    )
    assert row.context == {"order": 5, "tenant_id": tenant.pk, "user_id": user.pk}
    assert query(
        "SELECT tableoid::regclass::text FROM ops.system_logs WHERE id = %s", [log_id]
    ) == [("ops.system_logs_default",)]


@db
def test_a_caller_cannot_name_the_tenant_or_user_of_a_log_line():
    """Outside a tenant context the line has no tenant, whatever the caller's context says."""
    from django.db import transaction

    with transaction.atomic():
        log_id = write_system_log("info", "x", "y", {"tenant_id": 5, "user_id": 9, "a": 1})
    assert SystemLog.objects.get(pk=log_id).context == {"a": 1}


@db
def test_the_runtime_role_may_append_only_through_the_function():
    with tenant_context(TenantFactory().pk):
        error = refused(
            lambda: run(
                "INSERT INTO ops.system_logs (level, source, message) VALUES ('info', 'x', 'y')"
            )
        )
        assert error.diag.message_primary == "permission denied for table system_logs"


# --- prune_system_logs ----------------------------------------------------------------------------


def partitions_now() -> list[str]:
    return [name for name, _ in query(partitions.LIST_PARTITIONS, ['"ops"."system_logs"'])]


@db
def test_pruning_creates_the_coming_months_and_takes_their_rows_from_the_default_partition():
    early = SystemLogFactory(created_at=at(JAN))
    later = SystemLogFactory(created_at=at(MAR))
    result = prune_system_logs(3, months_ahead=2, today=JAN)
    assert result.created == ["system_logs_2020_01", "system_logs_2020_02", "system_logs_2020_03"]
    assert partitions_now() == [
        "system_logs_2020_01",
        "system_logs_2020_02",
        "system_logs_2020_03",
        "system_logs_default",
    ]
    assert query(
        "SELECT id, tableoid::regclass::text FROM ops.system_logs WHERE source = 'tests' "
        "ORDER BY id"
    ) == [(early.pk, "ops.system_logs_2020_01"), (later.pk, "ops.system_logs_2020_03")]
    # Inserts go to their month from now on; the identity keeps counting.
    assert SystemLogFactory(created_at=at(FEB)).pk > later.pk
    assert prune_system_logs(3, months_ahead=2, today=JAN).created == []


@db
def test_pruning_drops_old_months_and_old_rows_of_the_default_partition():
    prune_system_logs(12, months_ahead=2, today=JAN)  # January to March
    stray = SystemLogFactory(created_at=at(datetime.date(2019, 6, 1)))  # the default partition
    kept = SystemLogFactory(created_at=at(MAR))
    SystemLogFactory(created_at=at(JAN))
    result = prune_system_logs(0, months_ahead=0, today=datetime.date(2020, 3, 9))
    assert (result.cutoff, result.dropped, result.created) == (
        MAR,
        ["system_logs_2020_01", "system_logs_2020_02"],
        [],
    )
    assert result.deleted_from_default == 1
    assert list(SystemLog.objects.filter(source="tests").values_list("pk", flat=True)) == [kept.pk]
    assert not SystemLog.objects.filter(pk=stray.pk).exists()
    assert partitions_now() == ["system_logs_2020_03", "system_logs_default"]
    # The prune is on record in the system log itself.
    record = SystemLog.objects.filter(source="ops.retention").latest("id")
    assert record.context["dropped"] == ["system_logs_2020_01", "system_logs_2020_02"]
    assert record.context["deleted_from_default"] == 1


@db
def test_a_dry_run_changes_nothing():
    SystemLogFactory(created_at=at(datetime.date(2019, 1, 1)))
    before = partitions_now()
    result = prune_system_logs(1, months_ahead=1, today=JAN, dry_run=True)
    assert result.created == ["system_logs_2020_01", "system_logs_2020_02"]
    assert result.deleted_from_default == 1
    assert partitions_now() == before
    assert SystemLog.objects.count() == 1


@db
def test_the_command():
    out = StringIO()
    call_command("prune_system_logs", "--older-than-months", "3", "--dry-run", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("would create ops.system_logs_")
    assert "would delete 0 older rows from the default partition" in lines[-1]
    with pytest.raises(CommandError, match="must be 0 or more"):
        call_command("prune_system_logs", "--older-than-months", "-1")


# --- Who may prune --------------------------------------------------------------------------------


@db
@pytest.mark.parametrize("prune", [lambda: prune_system_logs(1), lambda: prune_audit_logs(30)])
def test_pruning_is_refused_in_a_tenant_context(prune):
    with tenant_context(TenantFactory().pk):
        with pytest.raises(RetentionRefused, match="inside the tenant context of tenant"):
            prune()


@db
@pytest.mark.parametrize("prune", [lambda: prune_system_logs(1), lambda: prune_audit_logs(30)])
def test_pruning_is_refused_as_the_runtime_role(prune):
    with as_role(runtime_role()):
        with pytest.raises(RetentionRefused, match=f"as the runtime role {runtime_role()}"):
            prune()


@db
def test_pruning_is_refused_to_a_role_that_does_not_own_the_tables():
    run("CREATE ROLE hzm_issue7_stranger NOLOGIN")
    run("GRANT USAGE ON SCHEMA ops, app TO hzm_issue7_stranger")
    with as_role("hzm_issue7_stranger"):
        with pytest.raises(
            RetentionRefused, match="as role hzm_issue7_stranger, which does not own"
        ):
            prune_audit_logs(30)


@db
def test_pruning_is_refused_when_the_transaction_has_a_tenant_set():
    with connection.cursor() as cursor:
        sign_context(cursor, TenantFactory().pk)
    with pytest.raises(RetentionRefused, match="the transaction is in the context of tenant"):
        prune_audit_logs(30)


# --- prune_audit_logs -----------------------------------------------------------------------------


def old_audit_rows(count: int, days: int) -> list[int]:
    return [
        AuditLog.objects.create(
            action="UPDATE",
            entity_type="core.projects",
            entity_id=str(n),
            created_at=datetime.datetime.now(UTC) - datetime.timedelta(days=days),
        ).pk
        for n in range(count)
    ]


@db
def test_prune_audit_logs_deletes_old_rows_in_batches_and_records_itself():
    old = old_audit_rows(5, days=40)
    recent = old_audit_rows(2, days=10)
    result = prune_audit_logs(30, batch_size=2)
    assert (result.deleted, result.batches) == (5, 3)
    assert not AuditLog.objects.filter(pk__in=old).exists()
    assert AuditLog.objects.filter(pk__in=recent).count() == 2
    record = AuditLog.objects.get(action="PRUNE")
    assert (record.tenant_id, record.entity_type) == (None, "ops.audit_logs")
    assert record.new_values == {
        "older_than_days": 30,
        "cutoff": result.cutoff.isoformat(),
        "deleted": 5,
        "batch_size": 2,
        "batches": 3,
        "database_role": query("SELECT current_user::text")[0][0],
        "completed": True,
    }


@db
def test_prune_audit_logs_dry_run_counts_and_records_nothing():
    old_audit_rows(3, days=40)
    out = StringIO()
    call_command("prune_audit_logs", "--older-than-days", "30", "--dry-run", stdout=out)
    assert "would delete 3 rows" in out.getvalue()
    assert AuditLog.objects.filter(action="UPDATE").count() == 3
    assert not AuditLog.objects.filter(action="PRUNE").exists()


@db
def test_prune_audit_logs_command():
    old_audit_rows(1, days=400)
    out = StringIO()
    call_command("prune_audit_logs", "--older-than-days", "365", stdout=out)
    assert "deleted 1 rows" in out.getvalue() and "recorded as PRUNE" in out.getvalue()
    with pytest.raises(CommandError, match="older_than_days must be at least 1, got 0"):
        call_command("prune_audit_logs", "--older-than-days", "0")


@db
def test_the_retention_commands_report_progress_and_are_quiet_at_verbosity_0(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL", 0)  # a line at every batch, not every 2 s
    old_audit_rows(5, days=400)
    out = StringIO()
    call_command("prune_audit_logs", "--older-than-days", "365", "--batch-size", "2", stdout=out)
    lines = out.getvalue().splitlines()
    deleting = [line for line in lines if line.startswith("ops.audit_logs: deleting: ")]
    assert [line.split(": ")[2].split(",")[0] for line in deleting] == [
        "2 rows",
        "4 rows",
        "5 rows",
        "5 rows",  # the closing line
    ]
    assert all(" s, " in line and "rows/s" in line for line in deleting), deleting

    out = StringIO()
    call_command("prune_system_logs", "--older-than-months", "3", stdout=out)
    steps = out.getvalue().splitlines()
    assert steps[0].startswith("ops.system_logs: 1 steps, ")
    assert "(created ops.system_logs_" in steps[0]
    assert "from the default partition)" in steps[-2]

    old_audit_rows(3, days=400)
    for command, option, value in (
        ("prune_audit_logs", "--older-than-days", "365"),
        ("prune_system_logs", "--older-than-months", "3"),
    ):
        out = StringIO()
        call_command(command, option, value, verbosity=0, stdout=out)
        assert out.getvalue() == "", command
    assert not AuditLog.objects.filter(action="UPDATE", entity_type="core.projects").exists()


@db
def test_an_owner_that_row_level_security_applies_to_can_prune_every_tenants_rows():
    """In production the owner is no superuser: the owner policies let it read and delete."""
    old = old_audit_rows(2, days=40)
    AuditLog.objects.filter(pk=old[0]).update(tenant_id=TenantFactory().pk)
    run("CREATE ROLE hzm_issue7_owner NOLOGIN NOBYPASSRLS")
    run("GRANT USAGE ON SCHEMA ops, app TO hzm_issue7_owner")
    run("ALTER TABLE ops.audit_logs OWNER TO hzm_issue7_owner")
    # The owner policies apply to the owner alone (hzm 0005): they follow the ownership.
    for policy in ("rls_audit_logs_owner_read", "rls_audit_logs_owner_prune"):
        run(f"ALTER POLICY {policy} ON ops.audit_logs TO hzm_issue7_owner")
    with as_role("hzm_issue7_owner"):
        assert prune_audit_logs(30).deleted == 2
        assert AuditLog.objects.filter(action="PRUNE").count() == 1
    with as_role(runtime_role(), None):
        assert AuditLog.objects.count() == 0  # the owner policies are the owner's alone


@db
def test_the_runtime_role_cannot_delete_audit_rows_even_with_the_owner_policies():
    old_audit_rows(1, days=40)
    with tenant_context(TenantFactory().pk):
        error = refused(lambda: run("DELETE FROM ops.audit_logs"))
        assert error.diag.message_primary == "permission denied for table audit_logs"


# --- Admin ----------------------------------------------------------------------------------------


@db
def test_the_admin_shows_the_system_log_read_only(client):
    signed_in = sign_in_platform_admin(client)
    row = SystemLogFactory()
    assert_admin_pages_open(signed_in, row, can_add=False)
    assert signed_in.get(f"/admin/ops/systemlog/{row.pk}/delete/").status_code == 403


# --- The operation -------------------------------------------------------------------------------

EVENTS = partitions.CreatePartitionedTable(
    table="hzm_parttest.events",
    columns=[["id", "bigint GENERATED BY DEFAULT AS IDENTITY"], ["at", "timestamptz NOT NULL"]],
    primary_key=["id", "at"],
    partition_key="at",
)


def relations(schema: str) -> list[tuple[str, str]]:
    return query(
        "SELECT c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
        [schema],
    )


@db
def test_create_partitioned_table_forwards_backwards_forwards():
    from django.db.migrations.state import ProjectState

    from hzm.db.operations import CreateSchema
    from tests.db.test_operations import apply

    state, _ = apply(CreateSchema("hzm_parttest"), ProjectState())
    apply(EVENTS, state)
    assert relations("hzm_parttest") == [("events", "p"), ("events_default", "r")]
    apply(EVENTS, state, backwards=True)
    assert relations("hzm_parttest") == []
    apply(EVENTS, state)
    run("INSERT INTO hzm_parttest.events (at) VALUES (now())")
    assert query("SELECT tableoid::regclass::text FROM hzm_parttest.events") == [
        ("hzm_parttest.events_default",)
    ]


def test_create_partitioned_table_protocol():
    from django.db.migrations.writer import MigrationWriter

    assert EVENTS.describe() == "Create table hzm_parttest.events partitioned by range of at"
    assert EVENTS.migration_name_fragment == "create_partitioned_hzm_parttest_events"
    code, imports = MigrationWriter.serialize(EVENTS)
    namespace: dict = {}
    exec("\n".join(sorted(imports)), namespace)
    assert eval(code, namespace).deconstruct() == EVENTS.deconstruct()
    with pytest.raises(ValueError, match="partition key 'id' of table 'events'"):
        partitions.CreatePartitionedTable("s.events", [["id", "int"]], ["x"], "id")
