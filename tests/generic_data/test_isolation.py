"""The SECURITY DEFINER functions of generic_data stay inside the caller's tenant.

app.search_rows() and app.rows_containing() read app.generic_data without the tenant
policy (so that they can use its GIN indexes), app.unique_value_row() reads
app.generic_data_unique, which the runtime role may not, and app.api_key_lookup() reads
core.api_keys before there is a tenant. Each is attacked here as the runtime role.
"""

from typing import Any

import pytest
from django.db import connection, transaction

from core.models import ApiKey, Tenant
from generic_data import services
from hzm.db.operations import runtime_role
from tests.generic_data.conftest import as_tenant
from tests.support import fetchall, fetchone

pytestmark = pytest.mark.django_db

DEFINER_FUNCTIONS = {
    "app.search_rows": ["p_table_id", "p_query"],
    "app.rows_containing": [
        "p_project_id", "p_table_id", "p_doc", "p_after", "p_limit", "p_descending"
    ],
    # The whole key in, no hash out (generic_data 0006; app.api_key_tenant is closed).
    "app.api_key_lookup": ["p_key", "key_id", "tenant_id", "project_id", "user_id", "usable"],
    "app.sync_unique_values": None,
    # A unique field's row (generic_data 0011).
    "app.unique_value_row": ["p_table_id", "p_field", "p_value"],
}  # fmt: skip


def as_runtime_role_without_context(query: str, params: list[Any]) -> list[tuple]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE " + runtime_role())
        assert fetchone("SELECT current_user, app.current_tenant()") == (runtime_role(), None)
        cursor.execute(query, params)
        found = cursor.fetchall()
        transaction.set_rollback(True)
    return found


@pytest.fixture
def two_tenants(project, other_project):
    """The same table and the same row in two tenants' projects."""
    tables = {}
    for owner in (project, other_project):
        with as_tenant(owner):
            table = services.define_table(owner.pk, "notes", [{"name": "text", "type": "text"}])
            (row_id,) = services.create_rows(owner.pk, "notes", [{"text": "secret plans"}])
            tables[owner.pk] = (table.id, row_id)
    return tables


@pytest.mark.parametrize("name, arguments", DEFINER_FUNCTIONS.items())
def test_definer_functions_pin_their_search_path_and_take_no_tenant(name, arguments):
    schema, function = name.split(".")
    definer, config, names, owner, acl = fetchone(
        "SELECT p.prosecdef, p.proconfig, p.proargnames, pg_get_userbyid(p.proowner), "
        "p.proacl::text[] FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND p.proname = %s",
        [schema, function],
    )
    assert definer is True
    assert config[0] == "search_path=pg_catalog, pg_temp"
    assert config[1:] == {
        "search_rows": ["enable_indexscan=off"],
        # 0007, and 0009 (enable_indexscan saved, so the function may turn it off inside)
        "rows_containing": [
            "enable_sort=off",
            "enable_incremental_sort=off",
            "enable_indexscan=on",
            "plan_cache_mode=force_custom_plan",
        ],
    }.get(function, [])
    assert names == arguments  # the tenant comes from the context, never from an argument
    if arguments is not None:  # a trigger function cannot be called: it needs no grant
        # EXECUTE for the owner and the runtime role only, not PUBLIC ("=X/owner").
        assert sorted(entry.split("=")[0] for entry in acl) == sorted([owner, runtime_role()])


def test_without_a_context_the_search_functions_return_nothing(two_tenants, project):
    table_id, _row_id = two_tenants[project.pk]
    assert (
        as_runtime_role_without_context("SELECT * FROM app.search_rows(%s, 'secret')", [table_id])
        == []
    )
    assert (
        as_runtime_role_without_context(
            "SELECT * FROM app.rows_containing(%s, %s, '{}'::jsonb)", [project.pk, table_id]
        )
        == []
    )


def test_the_search_functions_cannot_be_pointed_at_another_tenants_table(
    two_tenants, project, other_project
):
    mine, theirs = two_tenants[project.pk], two_tenants[other_project.pk]
    with as_tenant(project):
        assert fetchall("SELECT * FROM app.search_rows(%s, 'secret')", [mine[0]]) == [(mine[1],)]
        assert fetchall("SELECT * FROM app.search_rows(%s, 'secret')", [theirs[0]]) == []
        for project_id, table_id in [(other_project.pk, theirs[0]), (project.pk, theirs[0]),
                                     (other_project.pk, mine[0])]:  # fmt: skip
            for limit in (None, 10):
                assert (
                    fetchall(
                        "SELECT * FROM app.rows_containing(%s, %s, '{}'::jsonb, NULL, %s)",
                        [project_id, table_id, limit],
                    )
                    == []
                )


@pytest.fixture
def two_skus(project, other_project):
    """The same unique value in two tenants' tables of the same name: {project id: (table
    id, row id)}."""
    found = {}
    for owner in (project, other_project):
        with as_tenant(owner):
            table = services.define_table(
                owner.pk, "items", [{"name": "sku", "type": "text", "unique": True}]
            )
            (row_id,) = services.create_rows(owner.pk, "items", [{"sku": "SKU-1"}])
            found[owner.pk] = (table.id, row_id)
    return found


def test_a_unique_value_of_another_tenants_table_is_never_found(two_skus, project, other_project):
    """Not even its existence: NULL, as for a value nobody uses."""
    mine, theirs = two_skus[project.pk], two_skus[other_project.pk]
    lookup = "SELECT app.unique_value_row(%s, 'sku', %s)"
    with as_tenant(project):
        assert fetchall(lookup, [mine[0], "SKU-1"]) == [(mine[1],)]
        assert fetchall(lookup, [theirs[0], "SKU-1"]) == [(None,)]
        assert fetchall(lookup, [mine[0], "SKU-2"]) == [(None,)]
        page = services.query_rows(
            project.pk, "items", filter={"field": "sku", "op": "eq", "value": "SKU-1"}, count=True
        )
        assert ([row.id for row in page.rows], page.count) == ([mine[1]], 1)
    assert as_runtime_role_without_context(lookup, [mine[0], "SKU-1"]) == [(None,)]


def test_search_text_is_a_value_not_sql(two_tenants, project):
    table_id, _ = two_tenants[project.pk]
    with as_tenant(project):
        for text in ["'); DELETE FROM app.generic_data; --", "nothing' OR 'x'='x", "$3"]:
            assert fetchall("SELECT * FROM app.search_rows(%s, %s)", [table_id, text]) == []
        assert (
            fetchall(
                "SELECT * FROM app.rows_containing(%s, %s, %s::jsonb)",
                [project.pk, table_id, '{"text": "x\' OR true --"}'],
            )
            == []
        )
    assert fetchone("SELECT count(*) FROM app.generic_data")[0] == 2


def test_a_temporary_table_of_the_caller_cannot_stand_in_for_generic_data(two_tenants, project):
    """search_path is pinned and every name qualified: pg_temp shadows nothing.

    The runtime role may not create temporary tables at all (hzm 0005); the session's
    temporary table is made before, by the connection's superuser, which shares pg_temp
    with every role the session switches to: the function must not see it either.
    """
    table_id, row_id = two_tenants[project.pk]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE generic_data ON COMMIT DROP AS "
            "SELECT * FROM app.generic_data WITH NO DATA"
        )
    with as_tenant(project):
        assert fetchall("SELECT * FROM app.search_rows(%s, 'secret')", [table_id]) == [(row_id,)]


def test_the_service_rereads_candidates_under_the_policy(two_tenants, project, other_project):
    """Even a candidate id of another tenant (were a function to return one) is dropped:
    the rows are read back as the runtime role, which the tenant policy filters."""
    theirs = two_tenants[other_project.pk][1]
    with as_tenant(project):
        assert (
            fetchall(
                "SELECT g.id FROM unnest(%s::bigint[]) AS c(id) CROSS JOIN LATERAL "
                "(SELECT * FROM app.generic_data AS g0 WHERE g0.id = c.id OFFSET 0) AS g",
                [[theirs]],
            )
            == []
        )


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_lookup_returns_one_keys_row_and_nothing_else(project, other_project):
    mine, plaintext = ApiKey.objects.issue(
        tenant=project.tenant, user=project.user, project=project, name="k"
    )
    ApiKey.objects.issue(tenant=other_project.tenant, user=other_project.user, name="k")
    found = as_runtime_role_without_context("SELECT * FROM app.api_key_lookup(%s)", [plaintext])
    assert found == [(mine.pk, project.tenant_id, project.pk, project.user_id, True)]
    for presented in ["", "%", "hzm_%", mine.key_prefix, f"{plaintext}' OR 'x'='x"]:
        assert (
            as_runtime_role_without_context("SELECT * FROM app.api_key_lookup(%s)", [presented])
            == []
        )


def test_api_key_lookup_marks_the_keys_of_a_deleted_tenant_unusable(project):
    _key, plaintext = ApiKey.objects.issue(tenant=project.tenant, user=project.user, name="k")
    Tenant.objects.filter(pk=project.tenant_id).delete()  # soft
    (row,) = as_runtime_role_without_context(
        "SELECT usable FROM app.api_key_lookup(%s)", [plaintext]
    )
    assert row == (False,)


def test_without_its_function_the_runtime_role_sees_no_api_key(project):
    ApiKey.objects.issue(tenant=project.tenant, user=project.user, name="k")
    assert as_runtime_role_without_context("SELECT count(*) FROM core.api_keys", []) == [(0,)]
