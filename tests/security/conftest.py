"""What the security tests share: the tenant tables, two tenants' worlds, the runtime role.

The tests connect as a superuser, which row level security never applies to, so every
action of an attacker runs as the runtime role: inside tenant_context() (`as_tenant`)
or after a bare SET LOCAL ROLE (`as_runtime_role_without_context`). Both helpers check
`current_user` on entry, so a test cannot pass by accident as the superuser. Setting up
rows and checking the outcome afterwards runs as the superuser, which sees everything.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import factory
import psycopg
import pytest
from django.apps import apps
from django.db import models, transaction
from factory.django import DjangoModelFactory

from core.models import Project, TableMetadata, Tenant, User
from hzm.db.context import tenant_context
from hzm.db.operations import runtime_role
from hzm.db.sql import quote_identifier, split_db_table, table_ref
from ops.models import AuditLog
from tests import factories, factories_platform
from tests.support import TENANT_TABLES, fetchone, run

RUNTIME_ROLE = runtime_role()

# The tables with a tenant_id column today. The tests are generated from the models;
# this list is only compared with them, so that a table silently dropping out of the
# generated tests (a renamed column, a model moved out of the registry) is noticed.
EXPECTED_TENANT_TABLES = TENANT_TABLES
# Tenant tables the runtime role may only read: platform-wide translations are managed by
# the platform, only ops.log_audit() (SECURITY DEFINER) writes the audit trail, the billing
# service writes subscriptions (billing 0001) and platform staff flag overrides (cfg 0004).
READ_ONLY_TENANT_TABLES = frozenset(
    {"billing.subscriptions", "cfg.feature_flag_overrides", "cfg.translations", "ops.audit_logs"}
)
# Tenant tables whose platform-wide rows (tenant_id NULL) every tenant reads, through a
# policy of their own: global translations (cfg 0002), the default roles (core 0004).
SHARED_ROW_TABLES = frozenset({"cfg.translations", "core.role_permissions", "core.roles"})
# Where make_world() adds platform-wide rows: committed_rows removes the new ones.
GLOBAL_ROW_TABLES = [*sorted(SHARED_ROW_TABLES), "core.permissions"]


# --- The tenant tables, from the models -------------------------------------------------


def table_name(model: type[models.Model]) -> str:
    """'schema.table' of a model, as the catalog and the audit trail name it."""
    schema, table = split_db_table(model._meta.db_table)
    return f"{schema}.{table}" if schema else table


def table_sql(model: type[models.Model]) -> str:
    """The model's table, quoted for SQL."""
    return table_ref(*split_db_table(model._meta.db_table))


def bare_table(model: type[models.Model]) -> str:
    """The table's name without its schema, as PostgreSQL's error messages name it."""
    return split_db_table(model._meta.db_table)[1]


def has_tenant_column(model: type[models.Model]) -> bool:
    return any(f.column == "tenant_id" for f in model._meta.concrete_fields)


def tenant_models() -> list[type[models.Model]]:
    """Every concrete model, of any installed app, whose table has a tenant_id column."""
    found = [
        model
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed and has_tenant_column(model)
    ]
    return sorted(found, key=table_name)


TENANT_MODELS = tenant_models()


def tenant_model_params() -> list[Any]:
    return [pytest.param(model, id=table_name(model)) for model in TENANT_MODELS]


def is_read_only(model: type[models.Model]) -> bool:
    return table_name(model) in READ_ONLY_TENANT_TABLES


def has_shared_rows(model: type[models.Model]) -> bool:
    return table_name(model) in SHARED_ROW_TABLES


def tenant_references() -> list[tuple[type[models.Model], models.Field]]:
    """(model, foreign key) for each reference from a tenant table to another tenant table."""
    return [
        (model, f)
        for model in TENANT_MODELS
        for f in model._meta.concrete_fields
        if f.is_relation and f.column != "tenant_id" and has_tenant_column(f.related_model)
    ]


# --- Rows: two tenants, each with a row in every tenant table ----------------------------


class AuditLogFactory(DjangoModelFactory):
    """An audit row (tests/factories.py has none: the trigger writes them, as the owner)."""

    class Meta:
        model = AuditLog

    action = "UPDATE"
    entity_type = "core.projects"
    entity_id = factory.Sequence(str)
    new_values = factory.LazyFunction(lambda: {"name": "changed"})


def factory_for(model: type[models.Model]) -> type[DjangoModelFactory]:
    candidates = [*vars(factories).values(), *vars(factories_platform).values(), AuditLogFactory]
    for candidate in candidates:
        if (
            isinstance(candidate, type)
            and issubclass(candidate, DjangoModelFactory)
            and candidate._meta.model is model
        ):
            return candidate
    raise LookupError(
        f"no factory for {table_name(model)}: "
        "add one to tests/factories.py or tests/factories_platform.py"
    )


@dataclass
class TenantWorld:
    """A tenant with a user, a project, a table definition, and its other rows on demand."""

    tenant: Tenant
    user: User  # owns the tenant's rows
    spare_user: User  # referenced by new rows (user_2fa allows one row per user)
    project: Project
    table: TableMetadata
    rows: dict[type[models.Model], models.Model] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows.update({User: self.user, Project: self.project, TableMetadata: self.table})

    @property
    def id(self) -> int:
        return self.tenant.pk

    def row(self, model: type[models.Model]) -> models.Model:
        """The tenant's row in the model's table, made by its factory when first asked for.

        Ask before entering a context: the row is written by the connection's current role.
        """
        if model not in self.rows:
            self.rows[model] = factory_for(model)(**self.parent_kwargs(model, self.user))
        return self.rows[model]

    def parent(self, model: type[models.Model], user: User | None = None) -> models.Model | None:
        """This tenant's row that a row of another table may point at, if `model` has any."""
        if model is Tenant:
            return self.tenant
        if model is User:
            return user or self.user
        return self.row(model) if has_tenant_column(model) else None

    def parent_kwargs(self, model: type[models.Model], user: User) -> dict[str, Any]:
        """Factory arguments that keep every reference of a `model` row in this tenant."""
        kwargs: dict[str, Any] = {}
        for f in model._meta.concrete_fields:
            if f.column == "tenant_id" and not f.is_relation:
                kwargs[f.name] = self.tenant.pk  # cfg and ops hold the tenant as a plain id
            elif f.is_relation and (parent := self.parent(f.related_model, user)) is not None:
                kwargs[f.name] = parent
        return kwargs

    def new_row(self, model: type[models.Model], user: User | None = None) -> models.Model:
        """A valid, unsaved row of `model` for this tenant, pointing at `user` (or its spare)."""
        return factory_for(model).build(**self.parent_kwargs(model, user or self.spare_user))


def make_world() -> TenantWorld:
    """Create (as the superuser) a tenant, its user, project and table definition."""
    # Platform-wide rows (tenant_id NULL), shared by all: a translation, a global role.
    factories.TranslationFactory()
    factories_platform.RolePermissionFactory(role=factories_platform.RoleFactory(tenant=None))
    tenant = factories.TenantFactory()
    user = factories.UserFactory(tenant=tenant)
    project = factories.ProjectFactory(tenant=tenant, user=user)
    return TenantWorld(
        tenant=tenant,
        user=user,
        spare_user=factories.UserFactory(tenant=tenant),
        project=project,
        table=factories.TableMetadataFactory(project=project, tenant=tenant),
    )


@pytest.fixture
def world_a(db) -> TenantWorld:
    return make_world()


@pytest.fixture
def world_b(db) -> TenantWorld:
    return make_world()


@pytest.fixture
def committed_rows(transactional_db) -> Iterator[None]:
    """Remove what a transactional test committed to the platform schemas.

    Django's flush empties only the tables on the search_path, so every row of a tenant
    created during the test, the platform-wide rows make_world() added, the audit rows
    written meanwhile and any reference data the factories added are deleted here, with
    triggers off (session_replication_role).
    """
    (last_tenant, last_audit, languages, currencies) = fetchone(
        "SELECT (SELECT coalesce(max(id), 0) FROM core.tenants), "
        "(SELECT coalesce(max(id), 0) FROM ops.audit_logs), "
        "(SELECT coalesce(array_agg(code), '{}') FROM cfg.languages), "
        "(SELECT coalesce(array_agg(code), '{}') FROM cfg.currencies)"
    )
    last_global = {
        table: fetchone(f"SELECT coalesce(max(id), 0) FROM {table_ref(*table.split('.'))}")[0]
        for table in GLOBAL_ROW_TABLES
    }
    try:
        yield
    finally:
        with transaction.atomic():
            run("SET LOCAL session_replication_role = replica")
            for model in TENANT_MODELS:
                if fetchone("SELECT to_regclass(%s)", [table_sql(model)])[0]:  # migrated yet
                    run(f"DELETE FROM {table_sql(model)} WHERE tenant_id > %s", [last_tenant])
            for table, last_id in last_global.items():
                run(f"DELETE FROM {table_ref(*table.split('.'))} WHERE id > %s", [last_id])
            run("DELETE FROM ops.audit_logs WHERE id > %s", [last_audit])
            run("DELETE FROM core.tenants WHERE id > %s", [last_tenant])
            run("DELETE FROM cfg.languages WHERE code <> ALL(%s)", [languages])
            run("DELETE FROM cfg.currencies WHERE code <> ALL(%s)", [currencies])


# --- SQL on Django's connection ------------------------------------------------------------


# --- Acting as the runtime role ----------------------------------------------------------


def session_identity() -> tuple[str, int | None, int | None]:
    """(current_user, app.current_tenant(), app.current_user_id()) of the connection."""
    return fetchone("SELECT current_user::text, app.current_tenant(), app.current_user_id()")


@contextmanager
def as_tenant(tenant_id: int, user_id: int | None = None, **request: Any) -> Iterator[None]:
    """tenant_context() for the tenant, checked to really run as the runtime role."""
    with tenant_context(tenant_id, user_id, **request):
        assert session_identity() == (RUNTIME_ROLE, tenant_id, user_id)
        yield


@contextmanager
def as_runtime_role_without_context() -> Iterator[None]:
    """The runtime role with no tenant context (SET LOCAL ROLE only); rolled back after."""
    with transaction.atomic():
        run(f"SET LOCAL ROLE {quote_identifier(RUNTIME_ROLE)}")
        assert session_identity() == (RUNTIME_ROLE, None, None)
        yield
        transaction.set_rollback(True)


def assert_superuser() -> None:
    """The connection is back to the superuser login role, which sees every row."""
    assert fetchone(
        "SELECT current_user = session_user, rolsuper FROM pg_roles WHERE rolname = current_user"
    ) == (True, True)


# --- Refusals -------------------------------------------------------------------------------


def assert_rls_violation(error: psycopg.Error, model: type[models.Model]) -> None:
    """The error is row level security's WITH CHECK refusing the row."""
    assert (error.sqlstate, error.diag.message_primary) == (
        "42501",
        f'new row violates row-level security policy for table "{bare_table(model)}"',
    )


def assert_permission_denied(error: psycopg.Error, model: type[models.Model]) -> None:
    """The error is the runtime role lacking the privilege on the table."""
    assert (error.sqlstate, error.diag.message_primary) == (
        "42501",
        f"permission denied for table {bare_table(model)}",
    )


def assert_write_refused(error: psycopg.Error, model: type[models.Model]) -> None:
    """The refusal a write to another tenant gets: privileges first, else the policy."""
    if is_read_only(model):
        assert_permission_denied(error, model)
    else:
        assert_rls_violation(error, model)
