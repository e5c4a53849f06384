"""Tenant isolation as the runtime role, generated for every table with a tenant_id column.

Tenants A and B each have a row in every tenant table (made by the superuser). As A's
runtime context, B's rows must be invisible and untouchable, whatever the path: the
ORM's managers, raw SQL, save() of a copy of B's row. Each test also does the allowed
twin of the attack (A's own row), so that a refusal cannot come from a broken test.
"""

import json
from typing import Any

import psycopg
import pytest
from django.db import models
from django.db.models.expressions import DatabaseDefault

from cfg.models import Translation
from core.models import Project, Tenant, User, UserTwoFactor
from core.rbac import Role
from generic_data.models import GenericData
from hzm.db.checks import PLATFORM_SCHEMAS, tenant_tables
from ops.models import AuditLog
from tests.factories import TranslationFactory, UserFactory
from tests.security.conftest import (
    EXPECTED_TENANT_TABLES,
    RUNTIME_ROLE,
    TENANT_MODELS,
    TenantWorld,
    as_runtime_role_without_context,
    as_tenant,
    assert_permission_denied,
    assert_rls_violation,
    assert_superuser,
    assert_write_refused,
    has_shared_rows,
    is_read_only,
    table_name,
    table_sql,
    tenant_model_params,
    tenant_references,
)
from tests.support import fetchall, fetchone, refused, run, sql_refused

pytestmark = pytest.mark.django_db

# The references from one tenant table to another that a same-tenant key must guard.
EXPECTED_TENANT_REFERENCES = [
    "app.generic_data.project",
    "app.generic_data.table",
    "comms.email_queue.user",
    "comms.notifications.user",
    "comms.webhook_deliveries.webhook",
    "core.api_keys.project",
    "core.api_keys.user",
    "core.files.uploaded_by",
    "core.image_variants.file",
    "core.organization_members.invited_by",
    "core.organization_members.organization",
    "core.organization_members.user",
    "core.projects.user",
    "core.role_permissions.role",
    "core.table_metadata.project",
    "core.user_2fa.user",
    "core.user_roles.granted_by",
    "core.user_roles.organization",
    "core.user_roles.role",
    "core.user_roles.user",
    "core.user_sessions.user",
]


def visible_tenant_ids(model: type[models.Model]) -> list[int | None]:
    """Every row's tenant_id, as the current role sees the table through raw SQL."""
    rows = fetchall(f"SELECT tenant_id FROM {table_sql(model)} ORDER BY tenant_id")
    return [tenant_id for (tenant_id,) in rows]


def count_where(model: type[models.Model], condition: str, params: list[Any]) -> int:
    return fetchone(f"SELECT count(*) FROM {table_sql(model)} WHERE {condition}", params)[0]


def shared_rows(model: type[models.Model]) -> list[None]:
    """The platform-wide rows (tenant_id NULL) every tenant reads: translations, roles."""
    if not has_shared_rows(model):
        return []
    shared = count_where(model, "tenant_id IS NULL", [])
    assert shared > 0  # make_world() made one
    return [None] * shared


def managers(model: type[models.Model]) -> list[models.Manager]:
    """Every way the ORM reads the table: default, base and (soft delete) all-rows managers."""
    found = [model._default_manager, model._base_manager]
    if hasattr(model, "all_objects"):
        found.append(model.all_objects)
    return found


def row_state(model: type[models.Model], pk: Any) -> Any:
    """The whole row as JSON: any UPDATE changes it (the touch trigger bumps version)."""
    return fetchone(f"SELECT to_jsonb(t) FROM {table_sql(model)} t WHERE id = %s", [pk])[0]


def is_gone(model: type[models.Model], pk: Any) -> bool:
    """Deleted: the row is gone, or marked deleted by the soft-delete trigger."""
    has_mark = any(f.column == "is_deleted" for f in model._meta.fields)
    mark = "is_deleted IS TRUE" if has_mark else "false"
    return fetchone(
        f"SELECT NOT EXISTS (SELECT FROM {table_sql(model)} WHERE id = %s AND NOT {mark})", [pk]
    )[0]


def insert_plainly(obj: models.Model) -> None:
    """INSERT the row without RETURNING, as save() adds: only the WITH CHECK applies then.

    (With RETURNING, PostgreSQL also checks the new row against the read policy.)
    """
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated]
    if obj.pk is None and meta.auto_field is not None:
        fields.remove(meta.auto_field)
    # What the database fills in itself stays out, as save() leaves core.users.role out
    # (a column the runtime role may not write, hzm 0005).
    fields = [f for f in fields if not isinstance(getattr(obj, f.attname), DatabaseDefault)]
    type(obj)._base_manager._insert([obj], fields=fields, returning_fields=None)


# --- The generated set ---------------------------------------------------------------------


def test_every_tenant_table_is_tested():
    assert [table_name(model) for model in TENANT_MODELS] == EXPECTED_TENANT_TABLES


def test_the_doctor_checks_every_tenant_table():
    """dbdoctor (hzm.db.checks.tenant_tables) sees the tenant tables of every app, too."""
    assert tenant_tables() == [table_name(model) for model in TENANT_MODELS]


def test_every_reference_between_tenant_tables_is_tested():
    names = [f"{table_name(model)}.{f.name}" for model, f in tenant_references()]
    assert sorted(names) == EXPECTED_TENANT_REFERENCES


# --- Reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", tenant_model_params())
def test_other_tenants_rows_are_invisible(model, world_a: TenantWorld, world_b: TenantWorld):
    mine, theirs = world_a.row(model), world_b.row(model)
    # ORDER BY tenant_id puts NULL (shared rows) last.
    expected = [world_a.id] * count_where(model, "tenant_id = %s", [world_a.id])
    expected += shared_rows(model)
    assert count_where(model, "tenant_id = %s", [world_b.id]) > 0  # there is something to hide

    with as_tenant(world_a.id, world_a.user.pk):
        for manager in managers(model):
            assert not manager.filter(pk=theirs.pk).exists(), manager
            assert manager.filter(pk=mine.pk).exists(), manager
            assert world_b.id not in manager.values_list("tenant_id", flat=True)
        assert count_where(model, "id = %s", [theirs.pk]) == 0
        assert count_where(model, "id = %s", [mine.pk]) == 1
        assert count_where(model, "tenant_id = %s", [world_b.id]) == 0
        assert visible_tenant_ids(model) == expected
        assert model._base_manager.count() == len(expected)


# --- Writing --------------------------------------------------------------------------------


def has_identity_id(model) -> bool:
    (identity,) = fetchone(
        "SELECT attidentity <> '' FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attname = 'id'",
        [table_sql(model)],
    )
    return identity


@pytest.mark.parametrize("model", tenant_model_params())
def test_insert_for_another_tenant_is_refused(model, world_a, world_b):
    theirs, mine = world_b.new_row(model), world_a.new_row(model)

    with as_tenant(world_a.id, world_a.user.pk):
        assert_write_refused(refused(lambda: theirs.save(force_insert=True)), model)
        assert_write_refused(refused(lambda: insert_plainly(theirs)), model)
        if is_read_only(model):
            assert_permission_denied(refused(lambda: mine.save(force_insert=True)), model)
        else:
            mine.save(force_insert=True)
            assert model._base_manager.filter(pk=mine.pk).exists()

    # The refused row itself is valid: the superuser, whom no policy applies to, inserts it.
    assert_superuser()
    theirs.save(force_insert=True)
    assert model._base_manager.filter(pk=theirs.pk, tenant_id=world_b.id).exists()


@pytest.mark.parametrize("model", tenant_model_params())
def test_update_of_another_tenants_row_changes_nothing(model, world_a, world_b):
    mine, theirs = world_a.row(model), world_b.row(model)
    before = row_state(model, theirs.pk), row_state(model, mine.pk)
    statement = f"UPDATE {table_sql(model)} SET tenant_id = tenant_id WHERE id IN (%s, %s)"

    with as_tenant(world_a.id, world_a.user.pk):
        if is_read_only(model):
            assert_permission_denied(sql_refused(statement, [mine.pk, theirs.pk]), model)
        else:
            assert run(statement, [mine.pk, theirs.pk]) == 1  # A's row only
            # Taking B's row over through the ORM finds nothing to update.
            steal = model._base_manager.filter(pk=theirs.pk)
            assert steal.update(tenant_id=world_a.id) == 0

    assert_superuser()
    assert row_state(model, theirs.pk) == before[0]
    assert model._base_manager.get(pk=theirs.pk).tenant_id == world_b.id
    if not is_read_only(model):
        assert row_state(model, mine.pk) != before[1]  # the same statement did update A's


@pytest.mark.parametrize("model", tenant_model_params())
def test_save_of_a_copy_of_another_tenants_row_is_refused(model, world_a, world_b):
    """save() of B's row finds no row to update and then tries an INSERT, which is refused."""
    theirs = model._base_manager.get(pk=world_b.row(model).pk)
    before = row_state(model, theirs.pk)

    with as_tenant(world_a.id, world_a.user.pk):
        error = refused(theirs.save)
    # The INSERT names B's id: where that is an identity value the runtime role may not
    # choose it at all (hzm 0005), before any policy is asked.
    if is_read_only(model) or has_identity_id(model):
        assert_permission_denied(error, model)
    else:
        assert_rls_violation(error, model)

    assert_superuser()
    assert row_state(model, theirs.pk) == before


@pytest.mark.parametrize("model", tenant_model_params())
def test_moving_a_row_to_another_tenant_is_refused(model, world_a, world_b):
    mine = world_a.row(model)

    with as_tenant(world_a.id, world_a.user.pk):
        move = model._base_manager.filter(pk=mine.pk)
        error = refused(lambda: move.update(tenant_id=world_b.id))
        assert_write_refused(error, model)
        raw = f"UPDATE {table_sql(model)} SET tenant_id = %s WHERE id = %s"
        assert_write_refused(sql_refused(raw, [world_b.id, mine.pk]), model)
        # Without WHERE (or RETURNING) only the WITH CHECK guards the new rows.
        everything = f"UPDATE {table_sql(model)} SET tenant_id = %s"
        assert_write_refused(sql_refused(everything, [world_b.id]), model)
        assert model._base_manager.filter(pk=mine.pk, tenant_id=world_a.id).exists()

    assert_superuser()
    assert model._base_manager.get(pk=mine.pk).tenant_id == world_a.id


@pytest.mark.parametrize("model", tenant_model_params())
def test_delete_of_another_tenants_row_leaves_it(model, world_a, world_b):
    mine, theirs = world_a.row(model), world_b.row(model)
    statement = f"DELETE FROM {table_sql(model)} WHERE id IN (%s, %s)"

    with as_tenant(world_a.id, world_a.user.pk):
        if is_read_only(model):
            assert_permission_denied(sql_refused(statement, [mine.pk, theirs.pk]), model)
        else:
            assert run(f"DELETE FROM {table_sql(model)} WHERE id = %s", [theirs.pk]) == 0
            assert model._default_manager.filter(pk=theirs.pk).delete()[0] == 0
            run(statement, [mine.pk, theirs.pk])

    assert_superuser()
    assert not is_gone(model, theirs.pk)
    assert is_gone(model, mine.pk) is not is_read_only(model)  # A's own row did go


# --- Without a tenant context -------------------------------------------------------------


@pytest.mark.parametrize("model", tenant_model_params())
def test_without_context_no_tenant_row_is_visible_or_writable(model, world_a, world_b):
    mine, theirs = world_a.row(model), world_b.row(model)
    new_row = world_a.new_row(model)
    expected = shared_rows(model)

    with as_runtime_role_without_context():
        assert visible_tenant_ids(model) == expected
        for manager in managers(model):
            assert manager.filter(tenant_id__isnull=False).count() == 0, manager
        assert_write_refused(refused(lambda: new_row.save(force_insert=True)), model)
        statement = f"UPDATE {table_sql(model)} SET tenant_id = tenant_id WHERE id = %s"
        if is_read_only(model):
            assert_permission_denied(sql_refused(statement, [mine.pk]), model)
        else:
            assert run(statement, [mine.pk]) == 0
            run(f"DELETE FROM {table_sql(model)} WHERE tenant_id IS NOT NULL")

    assert_superuser()
    assert not is_gone(model, mine.pk)
    assert not is_gone(model, theirs.pk)


# --- References stay inside a tenant ------------------------------------------------------


def reference_params() -> list[Any]:
    return [
        pytest.param(model, f, id=f"{table_name(model)}.{f.name}")
        for model, f in tenant_references()
    ]


def constraint_columns(model: type[models.Model], constraint: str) -> list[str]:
    return fetchone(
        "SELECT array_agg(a.attname::text ORDER BY k.n) FROM pg_constraint c "
        "CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conname = %s AND c.conrelid = %s::regclass",
        [constraint, table_sql(model)],
    )[0]


def assert_tenant_key_refused(
    error: psycopg.Error, model, f: models.Field, role_check_message: str
) -> None:
    """A foreign key violation of the composite (tenant_id, <reference>) key.

    A role may be global (tenant_id NULL), so no composite key can guard a reference to
    core.roles: the trigger core.check_role_tenant() refuses it instead, with the same
    SQLSTATE, no constraint name and `role_check_message`.
    """
    assert isinstance(error, psycopg.errors.ForeignKeyViolation), error
    if f.related_model is Role:
        found = (error.diag.constraint_name, error.diag.message_primary)
        assert found == (None, role_check_message)
        return
    columns = constraint_columns(model, error.diag.constraint_name)
    assert columns[0] == "tenant_id" and f.column in columns, (error.diag.constraint_name, columns)


@pytest.mark.parametrize("model, f", reference_params())
def test_reference_to_another_tenants_row_is_refused(model, f, world_a, world_b):
    target = world_b.parent(f.related_model, world_b.spare_user)
    allowed = world_a.new_row(model)
    # Another user than `allowed`'s: a row with the same parents as `allowed` would hit a
    # unique key (organization_members, user_roles) before the reference is checked.
    pointing = world_a.new_row(model, UserFactory(tenant=world_a.tenant))
    setattr(pointing, f.name, target)
    # Re-pointing the row A just made, which no other row references yet.
    repoint = f"UPDATE {table_sql(model)} SET {f.column} = %s WHERE id = %s"
    # core.check_role_tenant() runs as the caller: row level security hides B's role from
    # A, while the superuser sees whose it is.
    role_hidden = f"{table_name(model)}: role {target.pk} does not exist"
    role_foreign = (
        f"{table_name(model)}: role {target.pk} belongs to tenant {world_b.id}, "
        f"the row to tenant {world_a.id}"
    )

    with as_tenant(world_a.id, world_a.user.pk):
        allowed.save(force_insert=True)  # the same row pointing inside A is fine
        error = refused(lambda: pointing.save(force_insert=True))
        assert_tenant_key_refused(error, model, f, role_hidden)
        error = sql_refused(repoint, [target.pk, allowed.pk])
        assert_tenant_key_refused(error, model, f, role_hidden)

    # Foreign key checks ignore row level security: the key holds for the owner too.
    assert_superuser()
    error = refused(lambda: pointing.save(force_insert=True))
    assert_tenant_key_refused(error, model, f, role_foreign)


# --- Special tables -----------------------------------------------------------------------


def test_tenant_sees_only_its_own_tenant_row_and_cannot_write_tenants(world_a, world_b):
    assert Tenant.all_objects.count() >= 2
    with as_tenant(world_a.id, world_a.user.pk):
        assert list(Tenant.all_objects.values_list("id", flat=True)) == [world_a.id]
        assert fetchall("SELECT id FROM core.tenants") == [(world_a.id,)]
        for statement, params in (
            ("INSERT INTO core.tenants (name, slug) VALUES ('Evil', 'evil')", []),
            ("UPDATE core.tenants SET name = 'Renamed' WHERE id = %s", [world_a.id]),
            ("DELETE FROM core.tenants WHERE id = %s", [world_a.id]),
        ):
            assert_permission_denied(sql_refused(statement, params), Tenant)

    assert_superuser()
    assert Tenant.objects.get(pk=world_a.id).name == world_a.tenant.name


def test_translations_show_global_rows_and_only_the_own_override(world_a, world_b):
    shared = TranslationFactory(translation_key="greeting", translation_value="Hello")
    override_a = TranslationFactory(tenant_id=world_a.id, translation_key="greeting")
    override_b = TranslationFactory(tenant_id=world_b.id, translation_key="greeting")

    for world, own, other in ((world_a, override_a, override_b), (world_b, override_b, override_a)):
        with as_tenant(world.id, world.user.pk):
            visible = set(Translation.objects.filter(translation_key="greeting"))
            assert visible == {shared, own}
            assert not Translation.objects.filter(pk=other.pk).exists()
            for statement, params in (
                (
                    "INSERT INTO cfg.translations (tenant_id, language_code, translation_key) "
                    "VALUES (%s, 'en', 'mine')",
                    [world.id],
                ),
                ("UPDATE cfg.translations SET translation_value = 'x' WHERE id = %s", [shared.pk]),
                ("UPDATE cfg.translations SET translation_value = 'x' WHERE id = %s", [own.pk]),
                ("DELETE FROM cfg.translations WHERE id = %s", [own.pk]),
            ):
                assert_permission_denied(sql_refused(statement, params), Translation)


def test_audit_trail_shows_a_tenant_only_its_own_rows(world_a, world_b):
    by_tenant = dict(fetchall("SELECT tenant_id, count(*) FROM ops.audit_logs GROUP BY tenant_id"))
    assert by_tenant.get(world_b.id, 0) > 0 and by_tenant.get(None, 0) > 0  # tenants, platform

    with as_tenant(world_a.id, world_a.user.pk):
        seen = list(AuditLog.objects.values_list("tenant_id", flat=True))

    assert seen == [world_a.id] * by_tenant[world_a.id]


# Platform-wide reference data every tenant reads and none writes: no tenant column.
SHARED_REFERENCE_TABLES = [
    "billing.plans",
    "cfg.currencies",
    "cfg.exchange_rates",
    "cfg.feature_flags",
    "cfg.languages",
    "core.permissions",
]
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def test_runtime_role_reaches_only_row_secured_tables_and_reference_data():
    """Any table the runtime role may touch filters by tenant, or is read-only reference data.

    Generated from the catalog, partitions included (a partition has its own privileges
    and row level security), so a table granted later without a policy is caught.
    """
    rows = fetchall(
        "SELECT n.nspname || '.' || c.relname, c.relrowsecurity AND c.relforcerowsecurity, "
        "array(SELECT p FROM unnest(%s::text[]) AS p "
        "      WHERE has_table_privilege(%s, c.oid, p) ORDER BY p) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY(%s) ORDER BY 1",
        [list(TABLE_PRIVILEGES), RUNTIME_ROLE, list(PLATFORM_SCHEMAS)],
    )
    reachable = {table: (secured, privileges) for table, secured, privileges in rows if privileges}
    unsecured = {table: p for table, (secured, p) in reachable.items() if not secured}

    assert unsecured == {table: ["SELECT"] for table in SHARED_REFERENCE_TABLES}
    assert set(EXPECTED_TENANT_TABLES) <= set(reachable)


# SECURITY DEFINER functions run as their owner, past row level security: each one the
# runtime role may call is a door through the policies and must be reviewed.
REVIEWED_SECURITY_DEFINER_FUNCTIONS = [
    # Before any tenant context (API-key sign-in): one key by the whole key, its hash
    # compared in the database (generic_data 0006; app.api_key_tenant is no longer open).
    "app.api_key_lookup(text)",
    # Before any tenant context (session sign-in, hzm/migrations/0004): one user by its
    # email (its id and password hash, for the sign-in form) or by its id (no hash).
    "app.auth_login(text)",
    "app.auth_user(integer)",
    # Count one request or error of a key of the context's tenant only, and answer
    # whether it is let through (core/migrations/0006, tests/security/test_api_key_usage.py).
    "app.count_api_key_error(integer)",
    "app.count_api_key_request(integer,boolean)",
    # The verified context (hzm 0006): the tenant and user of this transaction's signed
    # token, read with the keys only the owner may read; nothing else.
    "app.current_tenant()",
    "app.current_user_id()",
    # Row ids of the context's tenant only (test below); the caller re-reads them under RLS.
    "app.rows_containing(integer,integer,jsonb,bigint,integer,boolean)",
    "app.search_rows(integer,text)",
    # The row id of a unique value in a table of the context's tenant only, NULL for
    # another tenant's table or no context, so not even a value's use elsewhere shows
    # (generic_data 0011; tests/generic_data/test_isolation.py attacks it).
    "app.unique_value_row(integer,text,text)",
    # The definer trigger functions (ops.log_audit, app.sync_unique_values,
    # app.count_records, billing.sync_tenant_subscription) are nobody's to execute since
    # hzm 0005: a trigger fires without it, and with it a role could attach them to a
    # table of its own (tests/security/test_hardening.py).
    # Appends one line to ops.system_logs, which the runtime role cannot read; the
    # tenant and user come from the context.
    "ops.write_system_log(text,text,text,jsonb,text)",
]
# The tenants' sign-in throttle (core/migrations/0008 and 0010; tests/production/
# test_tenant_sign_in_throttle.py attacks them): the wait of one email and address, a
# failure of one signed by the web process for this transaction (the cool-off at most a
# day), and clearing the failures of the verified context's own user only. None of them
# returns a row of app.sign_in_failures. 0008's unsigned failure is the owner's only.
REVIEWED_SECURITY_DEFINER_FUNCTIONS += [
    "app.count_sign_in_failure(text,text,integer,integer,text)",
    "app.sign_in_succeeded(text)",
    "app.sign_in_wait(text,text)",
]
# One session by its key (hzm/migrations/0004): nothing lists or finds sessions, so a
# caller reaches only the session whose key it already holds.
REVIEWED_SECURITY_DEFINER_FUNCTIONS += [
    "app.session_delete(text)",
    "app.session_exists(text)",
    "app.session_load(text)",
    "app.session_save(text,text,timestamp with time zone,boolean)",
]
REVIEWED_SECURITY_DEFINER_FUNCTIONS.sort()


def test_security_definer_functions_open_to_the_runtime_role_are_the_reviewed_ones():
    rows = fetchall(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname = ANY(%s) "
        "AND has_function_privilege(%s, p.oid, 'EXECUTE') ORDER BY 1",
        [list(PLATFORM_SCHEMAS), RUNTIME_ROLE],
    )
    assert sorted(name for (name,) in rows) == REVIEWED_SECURITY_DEFINER_FUNCTIONS


def test_trigger_functions_cannot_be_called_directly(world_a):
    with as_tenant(world_a.id, world_a.user.pk):
        for function in (
            "ops.log_audit",
            "app.sync_unique_values",
            "billing.sync_tenant_subscription",
        ):
            error = sql_refused(f"SELECT {function}()")
            # Not even to the "only as triggers" refusal: no EXECUTE at all (hzm 0005).
            assert error.sqlstate == "42501", error
            assert error.diag.message_primary == (
                f"permission denied for function {function.rpartition('.')[2]}"
            )


def test_search_functions_return_only_the_context_tenants_rows(world_a, world_b):
    """app.search_rows and app.rows_containing skip RLS for speed; they must not for tenants."""
    mine, theirs = world_a.row(GenericData), world_b.row(GenericData)

    def search(row: GenericData) -> list[int]:
        ids = fetchall("SELECT app.search_rows(%s, %s)", [row.table_id, row.data["title"]])
        return [i for (i,) in ids]

    def containing(row: GenericData) -> list[int]:
        ids = fetchall(
            "SELECT app.rows_containing(%s, %s, %s::jsonb)",
            [row.project_id, row.table_id, json.dumps(row.data)],
        )
        return [i for (i,) in ids]

    with as_tenant(world_a.id, world_a.user.pk):
        assert search(mine) == containing(mine) == [mine.pk]
        assert search(theirs) == containing(theirs) == []
    with as_runtime_role_without_context():
        assert search(mine) == containing(mine) == []


def test_runtime_role_reads_no_table_outside_the_platform_schemas(world_a):
    """Django's own tables (sessions of every tenant's users, the admin log) stay closed.

    All but django_migrations, which /healthz reads as the runtime role (it names the
    migrations applied, nothing of any tenant).
    """
    tables = fetchall(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
        [list(PLATFORM_SCHEMAS)],
    )
    assert "public.django_session" in [table for table, _ in tables]
    tables = [(table, bare) for table, bare in tables if bare != "django_migrations"]

    assert "hzm_private.context_keys" in [table for table, _ in tables]
    with as_tenant(world_a.id, world_a.user.pk):
        for table, bare in tables:
            error = sql_refused(f"SELECT count(*) FROM {table}")
            # The context keys' schema is the owner's alone: not even USAGE.
            denied = "schema hzm_private" if table.startswith("hzm_private.") else f"table {bare}"
            assert (error.sqlstate, error.diag.message_primary) == (
                "42501",
                f"permission denied for {denied}",
            )


# --- Known limits -------------------------------------------------------------------------


def test_known_limit_unique_email_reveals_an_address_of_another_tenant(world_a, world_b):
    """A tenant can learn that an e-mail address is registered with another tenant.

    core.users.email is unique across the platform (one sign-in address, one tenant, as
    the seed defines it). A unique index is checked against every row, visible or not,
    so inserting B's address as A fails with a unique violation although A cannot read
    B's user. Accepted: an address is a weak secret, sign-up already reveals it, and a
    per-tenant unique key would change how users sign in.
    """
    address = world_b.user.email

    with as_tenant(world_a.id, world_a.user.pk):
        assert not User._base_manager.filter(email=address).exists()
        error = refused(lambda: UserFactory.build(tenant=world_a.tenant, email=address).save())
        assert isinstance(error, psycopg.errors.UniqueViolation)
        assert error.diag.constraint_name == "users_email_key"
        # An address nobody uses goes in: the refusal is exactly the existence signal.
        UserFactory.build(tenant=world_a.tenant, email="unused@example.com").save()


# Unique keys of tenant tables that do not include tenant_id: each one is checked
# against every tenant's rows, so a refused duplicate tells that the value exists.
GLOBAL_UNIQUE_KEYS = [
    "billing.subscriptions (external_id)",  # the payment provider's id, set by the billing service
    "core.api_keys (key_prefix)",  # random, made by ApiKey.objects.issue()
    "core.projects (api_key)",  # a credential: must be random to be one at all
    # Tolerable only if the platform makes it up, never from a tenant's own table name
    # alone (no code sets it yet).
    "core.table_metadata (physical_table_name)",
    "core.user_2fa (user_id)",  # reveals which users have 2FA: see the test below
    "core.user_sessions (token)",  # random session tokens
    "core.users (email)",  # one sign-in address, one tenant: see the test above
]


def test_known_limit_global_unique_keys_are_the_accepted_ones():
    """The unique keys that span tenants are exactly the reviewed list.

    Each is an existence oracle like users.email; the comments above say why each is
    tolerable. A new one must be reviewed and added there.
    """
    rows = fetchall(
        "SELECT n.nspname || '.' || c.relname || ' (' || string_agg(a.attname, ', ' "
        "ORDER BY k.n) || ')' FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE i.indisunique AND NOT i.indisprimary "
        "AND n.nspname || '.' || c.relname = ANY(%s) "
        "GROUP BY n.nspname, c.relname, i.indexrelid "
        "HAVING NOT 'tenant_id' = ANY(array_agg(a.attname::text)) ORDER BY 1",
        [EXPECTED_TENANT_TABLES],
    )
    assert [key for (key,) in rows] == GLOBAL_UNIQUE_KEYS


def test_known_limit_refused_references_reveal_that_another_tenants_user_exists(world_a, world_b):
    """Which constraint refuses a reference tells whether the id exists in another tenant.

    The single-column foreign keys (kept beside the composite ones) and the unique
    user_2fa.user_id are checked against every tenant's rows: pointing at an unused id
    fails one key, at another tenant's user another, and at another tenant's user who
    has 2FA the unique key. Ids are sequential, so their existence says little; what
    leaks is "user N has a second factor". Making the key (tenant_id, user_id) and
    relying on the composite foreign keys alone would close both.
    """
    unused = fetchone("SELECT max(id) + 1000 FROM core.users")[0]
    assert world_b.row(UserTwoFactor).user == world_b.user  # B's user has a second factor

    def two_factor_for(user_id: int) -> psycopg.Error:
        row = world_a.new_row(UserTwoFactor)
        row.user_id = user_id
        return refused(lambda: row.save(force_insert=True))

    with as_tenant(world_a.id, world_a.user.pk):
        refusals = {
            "unused id": two_factor_for(unused),
            "B's user without 2FA": two_factor_for(world_b.spare_user.pk),
            "B's user with 2FA": two_factor_for(world_b.user.pk),
        }

    found = {
        case: (error.sqlstate, constraint_columns(UserTwoFactor, error.diag.constraint_name))
        for case, error in refusals.items()
    }
    assert found == {
        "unused id": ("23503", ["user_id"]),  # foreign key to users (id)
        "B's user without 2FA": ("23503", ["tenant_id", "user_id"]),  # same-tenant key
        "B's user with 2FA": ("23505", ["user_id"]),  # unique: one second factor per user
    }


def test_sql_run_as_the_runtime_role_cannot_name_another_tenant(world_a, world_b):
    """Once a known limit: the tenant was a setting any role could change (issue 12).

    Now the context is a token signed for this transaction, verified by the database:
    rewriting the settings, or calling app.set_context(), names no tenant at all
    (tests/production/test_unforgeable_context.py tries every way as the authenticator).
    """
    theirs = world_b.project.pk
    with as_tenant(world_a.id, world_a.user.pk):
        assert Project.objects.filter(pk=world_a.project.pk).exists()
        run("SELECT set_config('app.tenant_id', %s, true)", [str(world_b.id)])
        run("SELECT set_config('app.user_id', %s, true)", [str(world_b.user.pk)])
        assert not Project.objects.filter(pk=theirs).exists()
        assert fetchone("SELECT app.current_tenant(), app.current_user_id()") == (
            world_a.id,
            world_a.user.pk,
        )
        run("SELECT app.set_context(%s, %s)", [world_b.id, world_b.user.pk])
        assert not Project.objects.filter(pk__in=[theirs, world_a.project.pk]).exists()
        assert fetchone("SELECT app.current_tenant(), app.current_user_id()") == (None, None)
