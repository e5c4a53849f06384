"""The service API (generic_data.services), run as the runtime role inside a tenant context."""

import re
from decimal import Decimal

import pytest

from core.models import TableMetadata
from generic_data import services
from generic_data.models import GenericData
from generic_data.schema import ValidationFailed
from hzm.db.context import TenantContextError
from tests.generic_data.conftest import as_tenant, make_project
from tests.support import fetchall, fetchone

pytestmark = pytest.mark.django_db

PRODUCTS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal", "min": 0},
    {"name": "qty", "type": "integer"},
    {"name": "day", "type": "date"},
    {"name": "status", "type": "choice", "options": ["new", "sold"], "default": "new"},
]


def ids(page: services.Page) -> list[int]:
    return [row.id for row in page.rows]


def messages(error: pytest.ExceptionInfo) -> list[str]:
    return [str(e) for e in error.value.errors]


def live_rows(table_id: int) -> int:
    """As the superuser: rows of the table that are not soft-deleted."""
    return GenericData.objects.filter(table_id=table_id).count()


@pytest.fixture
def products(project):
    with as_tenant(project):
        return services.define_table(project.pk, "products", PRODUCTS)


# --- Context and tenants ------------------------------------------------------------------


def test_without_a_tenant_context_nothing_runs(project):
    with pytest.raises(TenantContextError, match="runs inside a tenant context"):
        services.define_table(project.pk, "products", PRODUCTS)
    with pytest.raises(TenantContextError):
        services.query_rows(project.pk, "products")


def test_another_tenants_project_and_table_do_not_exist(products, project, other_project):
    with as_tenant(other_project):
        with pytest.raises(services.NotFound, match=f"project {project.pk} not found"):
            services.define_table(project.pk, "mine", PRODUCTS)
        with pytest.raises(services.NotFound, match="table 'products' not found"):
            services.create_rows(project.pk, "products", [{"title": "x"}])
        with pytest.raises(services.NotFound, match="table 'products' not found"):
            services.query_rows(project.pk, "products")


# --- Tables ----------------------------------------------------------------------------------


def test_a_table_is_defined_with_a_stable_physical_name(products, project):
    assert re.fullmatch(rf"t_{project.tenant_id}_{project.pk}_[0-9a-f]{{8}}",
                        products.physical_table_name)  # fmt: skip
    with as_tenant(project):
        renamed = services.alter_table(project.pk, "products", new_name="goods")
        assert renamed.name == "goods"
        assert renamed.physical_table_name == products.physical_table_name
        assert [t.name for t in services.list_tables(project.pk)] == ["goods"]
    stored = TableMetadata.objects.get(pk=products.id)
    assert (stored.tenant_id, stored.created_by) == (project.tenant_id, None)
    assert stored.fields[0] == {"name": "title", "type": "text", "required": True, "unique": False}


def test_names_are_unique_per_project_and_free_again_after_a_drop(products, project):
    with as_tenant(project):
        with pytest.raises(services.Conflict, match="table 'products' already exists"):
            services.define_table(project.pk, "products", [])
        services.drop_table(project.pk, "products")
        with pytest.raises(services.NotFound):
            services.get_table(project.pk, "products")
        again = services.define_table(project.pk, "products", [])
    assert again.id != products.id
    assert TableMetadata.all_objects.get(pk=products.id).is_deleted


def test_the_tenants_table_limit_is_enforced_with_a_clear_error():
    project = make_project(max_tables_per_project=2)
    with as_tenant(project):
        services.define_table(project.pk, "a", [])
        services.define_table(project.pk, "b", [])
        with pytest.raises(services.LimitExceeded) as error:
            services.define_table(project.pk, "c", [])
        # A dropped table makes room.
        services.drop_table(project.pk, "a")
        services.define_table(project.pk, "c", [])
    assert str(error.value) == (
        f"project '{project.name}' has 2 tables, the most its tenant's plan allows "
        "(max_tables_per_project = 2)"
    )
    assert error.value.status == 403


def test_references_name_tables_of_the_project_and_may_point_at_themselves(project):
    with as_tenant(project):
        customers = services.define_table(project.pk, "customers", [{"name": "n", "type": "text"}])
        orders = services.define_table(
            project.pk,
            "orders",
            [
                {"name": "customer", "type": "reference", "to": "customers"},
                {"name": "parent", "type": "reference", "to": "orders"},
            ],
        )
        names = services.table_names(project.pk)
    assert [f.to_table_id for f in orders.schema.fields] == [customers.id, orders.id]
    assert [f["to"] for f in orders.as_dict(names)["fields"]] == ["customers", "orders"]


def test_alter_renames_and_removes_fields_in_every_row_and_fills_defaults(products, project):
    with as_tenant(project):
        (first, second) = services.create_rows(
            project.pk, "products", [{"title": "a", "sku": "A", "qty": 1}, {"title": "b"}]
        )
        altered = services.alter_table(
            project.pk,
            "products",
            rename={"sku": "code"},
            remove=["qty"],
            add=[{"name": "colour", "type": "text", "default": "red"}],
        )
        assert [f.name for f in altered.schema.fields] == [
            "title", "code", "price", "day", "status", "colour"
        ]  # fmt: skip
        assert services.get_row(project.pk, "products", first).data == {
            "title": "a", "code": "A", "status": "new", "colour": "red"
        }  # fmt: skip
        assert services.get_row(project.pk, "products", second).data == {
            "title": "b", "status": "new", "colour": "red"
        }  # fmt: skip
        # The renamed unique field is still unique.
        with pytest.raises(services.Conflict, match="field 'code': value 'A' is already used"):
            services.create_rows(project.pk, "products", [{"title": "c", "code": "A"}])


def test_alter_refuses_what_it_cannot_do_naming_each_problem(products, project):
    with as_tenant(project):
        services.create_rows(project.pk, "products", [{"title": "a"}])
        with pytest.raises(ValidationFailed) as error:
            services.alter_table(
                project.pk,
                "products",
                rename={"nope": "x", "qty": "Bad"},
                remove=["ghost"],
                add=[{"name": "weight", "type": "decimal", "required": True},
                     {"name": "title", "type": "text"}],
            )  # fmt: skip
    assert messages(error) == [
        "field 'ghost': is not a field of this table",
        "field 'nope': is not a field of this table",
        "field 'qty': cannot be renamed to 'Bad': not a valid field name",
        "field 'title': would be defined twice",
        "field 'weight': is required but has no default, and the table has rows",
    ]


def test_a_table_another_table_refers_to_cannot_be_dropped(project):
    with as_tenant(project):
        services.define_table(project.pk, "customers", [])
        services.define_table(project.pk, "orders", [{"name": "c", "type": "reference",
                                                      "to": "customers"}])  # fmt: skip
        with pytest.raises(services.Conflict, match="referenced by field 'c' of table 'orders'"):
            services.drop_table(project.pk, "customers")
        services.alter_table(project.pk, "orders", remove=["c"])
        services.drop_table(project.pk, "customers")


# --- Writing rows ------------------------------------------------------------------------------


def test_rows_are_validated_normalised_and_stored_with_their_defaults(products, project):
    with as_tenant(project):
        row = services.create_row(
            project.pk, "products", {"title": "Shirt", "price": "12.50", "qty": "3"}
        )
        assert row.data == {"title": "Shirt", "price": Decimal("12.5"), "qty": 3, "status": "new"}
        assert row.version == 1
    stored = GenericData.objects.get(pk=row.id)
    assert (stored.tenant_id, stored.project_id, stored.table_id) == (
        project.tenant_id, project.pk, products.id
    )  # fmt: skip
    assert (stored.created_by, stored.updated_by) == (project.user_id, project.user_id)
    # jsonb holds the decimal as a number, so it compares as one.
    assert fetchone("SELECT (data->'price')::numeric = 12.50 FROM app.generic_data "
                    "WHERE id = %s", [row.id]) == (True,)  # fmt: skip


def test_a_bulk_create_with_any_invalid_row_writes_nothing_and_names_every_error(products, project):
    with as_tenant(project):
        services.create_rows(project.pk, "products", [{"title": "kept", "sku": "K"}])
        with pytest.raises(ValidationFailed) as error:
            services.create_rows(
                project.pk,
                "products",
                [
                    {"title": "fine", "sku": "A"},
                    {"title": "x", "price": "abc"},
                    {"sku": "A", "qty": 1.5},
                    {"title": "y", "colour": "red"},
                ],
            )
    assert messages(error) == [
        "row 2, field 'price': expected a decimal, got 'abc'",
        "row 3, field 'qty': expected an integer, got 1.5",
        "row 3, field 'title': is required",
        "row 3, field 'sku': value 'A' repeats row 1 (the field is unique)",
        "row 4, field 'colour': is not a field of this table",
    ]
    assert str(error.value).startswith("table 'products': row 2, field 'price'")
    assert live_rows(products.id) == 1


def test_the_tenants_record_limit_counts_live_rows_of_live_tables():
    project = make_project(max_records=3)
    with as_tenant(project):
        services.define_table(project.pk, "a", [{"name": "n", "type": "integer"}])
        services.define_table(project.pk, "b", [{"name": "n", "type": "integer"}])
        services.create_rows(project.pk, "a", [{"n": 1}, {"n": 2}])
        with pytest.raises(services.LimitExceeded) as error:
            services.create_rows(project.pk, "b", [{"n": 1}, {"n": 2}])
        assert str(error.value) == (
            "the tenant has 2 records; 2 more would exceed its plan's max_records (3)"
        )
        # Deleted rows and the rows of a dropped table do not count.
        (row_id,) = services.create_rows(project.pk, "b", [{"n": 1}])
        services.delete_row(project.pk, "b", row_id)
        services.drop_table(project.pk, "a")
        services.create_rows(project.pk, "b", [{"n": 1}, {"n": 2}, {"n": 3}])


def test_a_partial_update_changes_only_what_it_names(products, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "products", {"title": "a", "qty": 1, "price": 2})
        updated = services.update_row(project.pk, "products", row.id, {"qty": 5, "price": None})
        assert updated.data == {"title": "a", "qty": 5, "status": "new"}
        assert updated.version == 2
        with pytest.raises(ValidationFailed) as error:
            services.update_row(project.pk, "products", row.id, {"title": None, "qty": "x"})
        assert messages(error) == [
            "field 'qty': expected an integer, got 'x'",
            "field 'title': is required",
        ]
        with pytest.raises(services.Conflict, match="has version 2, not 1"):
            services.update_row(project.pk, "products", row.id, {"qty": 6}, version=1)
        assert services.update_row(
            project.pk, "products", row.id, {"qty": 6}, version=2
        ).version == 3  # fmt: skip


def test_a_delete_is_soft_and_hides_the_row(products, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "products", {"title": "a", "sku": "S"})
        services.delete_row(project.pk, "products", row.id)
        with pytest.raises(services.NotFound, match=f"row {row.id} not found"):
            services.get_row(project.pk, "products", row.id)
        with pytest.raises(services.NotFound):
            services.delete_row(project.pk, "products", row.id)
        # Its unique value is free again.
        services.create_row(project.pk, "products", {"title": "b", "sku": "S"})
    deleted = GenericData.all_objects.get(pk=row.id)
    assert (deleted.is_deleted, deleted.deleted_by) == (True, project.user_id)


# --- References ---------------------------------------------------------------------------------


@pytest.fixture
def orders(project):
    with as_tenant(project):
        services.define_table(project.pk, "customers", [{"name": "name", "type": "text"}])
        return services.define_table(
            project.pk, "orders", [{"name": "customer", "type": "reference", "to": "customers"}]
        )


def test_references_must_name_live_rows_of_their_table(orders, project, other_project):
    with as_tenant(other_project):
        services.define_table(other_project.pk, "customers", [{"name": "n", "type": "text"}])
        foreign = services.create_row(other_project.pk, "customers", {"n": "theirs"})
    with as_tenant(project):
        ann, bob = services.create_rows(project.pk, "customers", [{"name": "a"}, {"name": "b"}])
        services.delete_row(project.pk, "customers", bob)
        (order,) = services.create_rows(project.pk, "orders", [{"customer": ann}])
        with pytest.raises(ValidationFailed) as error:
            services.create_rows(
                project.pk,
                "orders",
                [{"customer": ann}, {"customer": bob}, {"customer": foreign.id},
                 {"customer": order}],
            )  # fmt: skip
    assert messages(error) == [
        f"row 2, field 'customer': no row {bob} in table 'customers'",
        f"row 3, field 'customer': no row {foreign.id} in table 'customers'",
        f"row 4, field 'customer': no row {order} in table 'customers'",
    ]


def test_a_row_others_refer_to_cannot_be_deleted(orders, project):
    with as_tenant(project):
        ann = services.create_row(project.pk, "customers", {"name": "a"})
        order = services.create_row(project.pk, "orders", {"customer": ann.id})
        with pytest.raises(services.Conflict) as error:
            services.delete_row(project.pk, "customers", ann.id)
        services.delete_row(project.pk, "orders", order.id)
        services.delete_row(project.pk, "customers", ann.id)
    assert str(error.value) == (
        f"row {ann.id} of table 'customers' is referred to by row {order.id} of table "
        "'orders' (field 'customer')"
    )


# --- Unique fields --------------------------------------------------------------------------------


def test_unique_values_conflict_with_existing_rows_naming_the_row(products, project):
    with as_tenant(project):
        services.create_rows(project.pk, "products", [{"title": "a", "sku": "A"}])
        with pytest.raises(services.Conflict) as error:
            services.create_rows(
                project.pk, "products", [{"title": "b", "sku": "B"}, {"title": "c", "sku": "A"}]
            )
        assert messages(error) == [
            "row 2, field 'sku': value 'A' is already used by another row (the field is unique)"
        ]
        assert error.value.status == 409
        (b,) = services.create_rows(project.pk, "products", [{"title": "b", "sku": "B"}])
        with pytest.raises(services.Conflict, match="field 'sku': value 'A' is already used"):
            services.update_row(project.pk, "products", b, {"sku": "A"})
        services.update_row(project.pk, "products", b, {"sku": "A2"})
        services.create_rows(project.pk, "products", [{"title": "d", "sku": "B"}])


def test_unique_values_are_per_table(products, project, other_project):
    with as_tenant(project):
        services.define_table(project.pk, "more", PRODUCTS)
        services.create_rows(project.pk, "products", [{"title": "a", "sku": "A"}])
        services.create_rows(project.pk, "more", [{"title": "a", "sku": "A"}])
    with as_tenant(other_project):
        services.define_table(other_project.pk, "products", PRODUCTS)
        services.create_rows(other_project.pk, "products", [{"title": "a", "sku": "A"}])
    assert fetchall(
        "SELECT field, value FROM app.generic_data_unique WHERE table_id = %s", [products.id]
    ) == [("sku", "A")]


def test_the_runtime_role_cannot_touch_the_unique_values(products, project):
    from django.db import ProgrammingError, transaction

    with as_tenant(project):
        for statement in (
            "SELECT * FROM app.generic_data_unique",
            "DELETE FROM app.generic_data_unique",
            "INSERT INTO app.generic_data_unique VALUES (1, 'x', 'y', 1)",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
                fetchall(statement)


# --- Queries ------------------------------------------------------------------------------------


@pytest.fixture
def stock(products, project):
    rows = [
        {"title": "nine", "price": "9", "qty": 9, "day": "2024-02-01", "status": "new"},
        {"title": "ten", "price": "10", "qty": 10, "day": "2024-10-01", "status": "sold"},
        {"title": "hundred", "price": "100.5", "qty": 100, "day": "2023-12-31"},
        {"title": "nothing"},
    ]
    with as_tenant(project):
        return services.create_rows(project.pk, "products", rows)


def query(project, **options) -> services.Page:
    with as_tenant(project):
        return services.query_rows(project.pk, "products", **options)


def test_numbers_compare_as_numbers_and_dates_as_dates(stock, project):
    nine, ten, hundred, _nothing = stock
    # As text, '9' > '10' and '100.5' < '9'.
    assert ids(query(project, filter={"field": "qty", "op": "gt", "value": 9})) == [ten, hundred]
    assert ids(query(project, filter={"field": "price", "op": "lte", "value": "10.0"})) == [
        nine, ten
    ]  # fmt: skip
    assert ids(query(project, filter={"field": "day", "op": "gte", "value": "2024-02-01"})) == [
        nine, ten
    ]  # fmt: skip


def test_every_operator(stock, project):
    nine, ten, hundred, nothing = stock

    def where(field, op, value):
        return ids(query(project, filter={"field": field, "op": op, "value": value}))

    assert where("status", "eq", "new") == [nine, hundred, nothing]
    assert where("status", "ne", "new") == [ten]
    assert where("qty", "ne", 9) == [ten, hundred, nothing]  # no value is not 9
    assert where("qty", "in", ["9", 100]) == [nine, hundred]
    assert where("qty", "lt", 100) == [nine, ten]
    assert where("title", "contains", "T") == [ten, nothing]
    assert where("title", "contains", "%") == []
    assert where("qty", "isnull", True) == [nothing]
    assert where("qty", "isnull", False) == [nine, ten, hundred]
    assert where("id", "in", [ten, nothing]) == [ten, nothing]


def test_and_or(stock, project):
    _nine, ten, hundred, _nothing = stock
    page = query(
        project,
        filter={
            "or": [
                {"and": [{"field": "status", "op": "eq", "value": "new"},
                         {"field": "qty", "op": "gte", "value": 50}]},
                {"field": "title", "op": "eq", "value": "ten"},
            ]
        },
    )  # fmt: skip
    assert ids(page) == [ten, hundred]


def test_sorting_puts_rows_without_a_value_last_ascending_and_first_descending(stock, project):
    nine, ten, hundred, nothing = stock
    assert ids(query(project, sort="price")) == [nine, ten, hundred, nothing]
    assert ids(query(project, sort="-price")) == [nothing, hundred, ten, nine]
    assert ids(query(project, sort="-id")) == [nothing, hundred, ten, nine]
    assert ids(query(project, sort="title")) == [hundred, nine, nothing, ten]


@pytest.mark.parametrize("sort", ["price", "-price", "id", "-id", "day", "-title"])
@pytest.mark.parametrize(
    "filter_",
    [
        None,
        {"field": "status", "op": "eq", "value": "new"},
        {"field": "qty", "op": "gt", "value": 3},
    ],
    ids=["no filter", "equality", "comparison"],
)
def test_keyset_pages_visit_every_row_once_in_order(products, project, sort, filter_):
    rows = [{"title": f"r{n % 7}", "qty": n % 11, "status": ("new", "sold")[n % 2],
             **({"price": n % 5} if n % 3 else {}), **({"day": f"2024-01-{n % 28 + 1:02d}"}
             if n % 4 else {})} for n in range(60)]  # fmt: skip
    with as_tenant(project):
        services.create_rows(project.pk, "products", rows)
        everything = services.query_rows(project.pk, "products", filter=filter_, sort=sort,
                                         limit=1000, count=True)  # fmt: skip
        seen, after = [], None
        while True:
            page = services.query_rows(project.pk, "products", filter=filter_, sort=sort,
                                       limit=7, after=after)  # fmt: skip
            seen += ids(page)
            after = page.next_cursor
            if after is None:
                break
    assert seen == ids(everything)
    assert len(seen) == everything.count > 0


def test_count_counts_every_match(stock, project):
    page = query(project, filter={"field": "status", "op": "eq", "value": "new"}, limit=1,
                 count=True)  # fmt: skip
    assert (len(page.rows), page.count, page.next_cursor is not None) == (1, 3, True)
    page = query(project, filter={"field": "qty", "op": "lt", "value": 50}, limit=1, count=True)
    assert page.count == 2


def test_full_text_search_ranks_the_best_match_first(products, project):
    with as_tenant(project):
        shirt, _, both = services.create_rows(
            project.pk,
            "products",
            [{"title": "blue shirt"}, {"title": "red trousers"},
             {"title": "blue shirts and shirts, shirt"}],
        )  # fmt: skip
        assert ids(services.search_rows(project.pk, "products", "shirts")) == [both, shirt]
        assert ids(services.search_rows(project.pk, "products", "blue -trousers")) == [both, shirt]
        assert ids(services.search_rows(project.pk, "products", '"red trousers"', count=True)) != []
        page = services.search_rows(
            project.pk, "products", "shirt", filter={"field": "title", "op": "eq",
                                                     "value": "blue shirt"}, count=True
        )  # fmt: skip
        assert (ids(page), page.count) == ([shirt], 1)
        first = services.search_rows(project.pk, "products", "shirt", limit=1)
        second = services.search_rows(project.pk, "products", "shirt", limit=1,
                                      after=first.next_cursor)  # fmt: skip
        assert ids(first) + ids(second) == [both, shirt]
        with pytest.raises(ValidationFailed, match="search: expected some text"):
            services.search_rows(project.pk, "products", "  ")


def test_deleted_rows_are_never_found(stock, project):
    nine = stock[0]
    with as_tenant(project):
        services.delete_row(project.pk, "products", nine)
        assert nine not in ids(services.query_rows(project.pk, "products"))
        assert ids(services.query_rows(
            project.pk, "products", filter={"field": "title", "op": "eq", "value": "nine"},
            count=True)) == []  # fmt: skip
        assert ids(services.search_rows(project.pk, "products", "nine")) == []


@pytest.mark.parametrize("max_candidates", [0, 1000], ids=["table scan", "candidates"])
def test_equalities_and_more_find_the_same_rows_by_candidates_or_by_the_table(
    stock, project, monkeypatch, max_candidates
):
    nine = stock[0]
    monkeypatch.setattr("generic_data.query.MAX_CANDIDATES", max_candidates)
    page = query(
        project,
        filter={"and": [{"field": "status", "op": "eq", "value": "new"},
                        {"field": "qty", "op": "lt", "value": 50}]},
        sort="-qty",
        count=True,
    )  # fmt: skip
    assert (ids(page), page.count) == ([nine], 1)


def test_a_row_referring_to_itself_can_be_deleted(project):
    with as_tenant(project):
        services.define_table(project.pk, "nodes", [{"name": "parent", "type": "reference",
                                                     "to": "nodes"}])  # fmt: skip
        root = services.create_row(project.pk, "nodes", {})
        services.update_row(project.pk, "nodes", root.id, {"parent": root.id})
        child = services.create_row(project.pk, "nodes", {"parent": root.id})
        with pytest.raises(services.Conflict, match=f"referred to by row {child.id}"):
            services.delete_row(project.pk, "nodes", root.id)
        services.delete_row(project.pk, "nodes", child.id)
        services.delete_row(project.pk, "nodes", root.id)


def test_fields_can_swap_names_and_a_removed_name_can_be_taken(products, project):
    with as_tenant(project):
        row = services.create_row(project.pk, "products", {"title": "t", "sku": "S", "qty": 2})
        services.alter_table(
            project.pk, "products", rename={"title": "sku", "sku": "title"}, remove=["status"]
        )
        assert services.get_row(project.pk, "products", row.id).data == {"sku": "t", "title": "S",
                                                                        "qty": 2}  # fmt: skip
        services.alter_table(project.pk, "products", rename={"qty": "status"}, remove=["price"])
        assert services.get_row(project.pk, "products", row.id).data == {
            "sku": "t", "title": "S", "status": 2
        }  # fmt: skip
