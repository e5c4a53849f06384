"""Reversible migration operations for schemas, functions, row level security and triggers.

Each operation follows Django's whole operation protocol (state_forwards,
database_forwards/backwards, describe, migration_name_fragment, deconstruct) and
runs its DDL only through schema_editor.execute(), so `sqlmigrate` shows the real
SQL, as RunSQL does. The SQL comes from hzm.db.sql; forwards and backwards call
two helpers in swapped order. Table operations take a model name and find the
table in the migration state, never in today's models.
"""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.postgres.operations import NotInTransactionMixin
from django.db import NotSupportedError
from django.db.migrations.operations.base import Operation
from django.db.migrations.operations.fields import FieldOperation
from django.db.models import NOT_PROVIDED, GeneratedField

from hzm import progress
from hzm.db import sql


class SQLOperation(Operation):
    """Base: DDL that changes no model state, rendered by `_create_sql`/`_drop_sql`."""

    reversible = True
    reduces_to_sql = True

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _run(self, schema_editor: Any, statements: list[str]) -> None:
        for statement in statements:
            schema_editor.execute(statement, params=None)


class CreateSchema(SQLOperation):
    """Create a PostgreSQL schema; reversing drops it (and fails if it is not empty)."""

    def __init__(self, name: str) -> None:
        self.name = sql.validate_identifier(name, "schema")

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"name": self.name}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.create_schema(self.name)])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.drop_schema(self.name)])

    def describe(self) -> str:
        return f"Create schema {self.name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"create_schema_{self.name}"


FUNCTION_OPTION_DEFAULTS: dict[str, Any] = {
    "language": "plpgsql",
    "volatility": "VOLATILE",
    "strict": False,
    "parallel_safe": False,
    "security_definer": False,
    "search_path": None,
    "settings": None,
}


class InstallFunction(SQLOperation):
    """Install a SQL or PL/pgSQL function whose body is frozen in the migration.

    Reversing drops the function. A later change of a function is a new
    InstallFunction in a new migration with `replaces`: the previous definition
    (returns, body and any non-default options, as a dict), which reversing restores,
    so an applied migration never changes meaning.
    """

    def __init__(
        self,
        name: str,
        arguments: str,
        returns: str,
        body: str,
        language: str = "plpgsql",
        volatility: str = "VOLATILE",
        strict: bool = False,
        parallel_safe: bool = False,
        security_definer: bool = False,
        search_path: str | None = None,
        settings: dict[str, str] | None = None,
        replaces: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.arguments = arguments
        self.returns = returns
        self.body = body
        self.language = language
        self.volatility = volatility
        self.strict = strict
        self.parallel_safe = parallel_safe
        self.security_definer = security_definer
        self.search_path = search_path
        self.settings = settings
        self.replaces = replaces
        # Render once now so a bad name or option fails when the migration is loaded.
        self._create_sql()
        self._restore_sql()

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "name": self.name,
            "arguments": self.arguments,
            "returns": self.returns,
            "body": self.body,
        }
        for key, default in FUNCTION_OPTION_DEFAULTS.items():
            if getattr(self, key) != default:
                kwargs[key] = getattr(self, key)
        if self.replaces is not None:
            kwargs["replaces"] = self.replaces
        return self.__class__.__qualname__, [], kwargs

    def _create_sql(self) -> str:
        options = {key: getattr(self, key) for key in FUNCTION_OPTION_DEFAULTS}
        return sql.create_function(self.name, self.arguments, self.returns, self.body, **options)

    def _restore_sql(self) -> str:
        """Reversing: the previous definition back, or the function dropped."""
        if self.replaces is None:
            return sql.drop_function(self.name, self.arguments)
        previous = {**FUNCTION_OPTION_DEFAULTS, **self.replaces}
        return sql.create_function(self.name, self.arguments, **previous)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [self._create_sql()])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [self._restore_sql()])

    def describe(self) -> str:
        verb = "Replace" if self.replaces is not None else "Install"
        return f"{verb} function {self.name}({sql.function_signature(self.arguments)})"

    @property
    def migration_name_fragment(self) -> str:
        return f"install_function_{self.name.replace('.', '_')}"


class TableOperation(SQLOperation):
    """Base for operations on one model's table, found through the migration state.

    `stem` names the objects (trg_<stem>_touch, rls_<stem>_tenant); it defaults to the
    table name, and the seed shortens a few (user_sessions -> sessions).
    """

    def __init__(self, model_name: str, stem: str | None = None) -> None:
        self.model_name = model_name
        self.stem = sql.validate_name_part(stem, "stem") if stem is not None else None

    @property
    def model_name_lower(self) -> str:
        return self.model_name.lower()

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"model_name": self.model_name}
        if self.stem is not None:
            kwargs["stem"] = self.stem
        return self.__class__.__qualname__, [], kwargs

    def _table(self, app_label: str, state: Any, schema_editor: Any) -> tuple[str, str] | None:
        """(schema, table) of the model in `state`, or None when the router skips it."""
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        return sql.split_db_table(model._meta.db_table)

    def _stem(self, table: str) -> str:
        return self.stem or table

    def _create_sql(self, schema: str, table: str) -> list[str]:
        raise NotImplementedError

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        raise NotImplementedError

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._table(app_label, to_state, schema_editor)
        if target:
            self._run(schema_editor, self._create_sql(*target))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._table(app_label, from_state, schema_editor)
        if target:
            self._run(schema_editor, self._drop_sql(*target))

    def references_model(self, name: str, app_label: str) -> bool:
        return name.lower() == self.model_name_lower


class EnableTenantRLS(TableOperation):
    """ENABLE and FORCE row level security with the policy rls_<stem>_tenant.

    The policy admits a row for reading (USING) and writing (WITH CHECK) only when
    its `column` (tenant_id; core.tenants uses its own id) is the tenant of the
    current context; no context, no rows. With `shared_rows`, rows whose column is
    NULL are readable by every tenant but still writable by none.
    """

    def __init__(
        self,
        model_name: str,
        stem: str | None = None,
        column: str = "tenant_id",
        shared_rows: bool = False,
    ) -> None:
        super().__init__(model_name, stem)
        self.column = sql.validate_identifier(column, "column")
        self.shared_rows = shared_rows

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        if self.column != "tenant_id":
            kwargs["column"] = self.column
        if self.shared_rows:
            kwargs["shared_rows"] = True
        return name, args, kwargs

    def _policy(self, table: str) -> str:
        return sql.policy_name(self._stem(table))

    def _create_sql(self, schema: str, table: str) -> list[str]:
        return [
            *sql.enable_row_level_security(schema, table),
            sql.create_policy(
                self._policy(table),
                schema,
                table,
                using=sql.tenant_predicate(self.column, shared_rows=self.shared_rows),
                with_check=sql.tenant_predicate(self.column),
            ),
        ]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [
            sql.drop_policy(self._policy(table), schema, table),
            *sql.disable_row_level_security(schema, table),
        ]

    def describe(self) -> str:
        return f"Enable tenant row level security on {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name_lower}_tenant_rls"


class CreatePolicy(TableOperation):
    """An additional row level security policy, its conditions frozen in the migration."""

    def __init__(
        self,
        model_name: str,
        name: str,
        command: str = "ALL",
        using: str | None = None,
        with_check: str | None = None,
    ) -> None:
        super().__init__(model_name)
        self.name = sql.validate_identifier(name, "policy")
        self.command = command
        self.using = using
        self.with_check = with_check
        self._create_sql("s", "t")  # a bad command or missing condition fails on load

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"model_name": self.model_name, "name": self.name}
        if self.command != "ALL":
            kwargs["command"] = self.command
        if self.using is not None:
            kwargs["using"] = self.using
        if self.with_check is not None:
            kwargs["with_check"] = self.with_check
        return self.__class__.__qualname__, [], kwargs

    def _create_sql(self, schema: str, table: str) -> list[str]:
        return [
            sql.create_policy(
                self.name,
                schema,
                table,
                using=self.using,
                with_check=self.with_check,
                command=self.command,
            )
        ]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [sql.drop_policy(self.name, schema, table)]

    def describe(self) -> str:
        return f"Create policy {self.name} on {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"policy_{self.name}"


class AttachTrigger(TableOperation):
    """A row trigger named trg_<stem>_<kind> that runs `function` at `timing` on `events`."""

    kind: str
    timing: str
    events: tuple[str, ...]
    function: str

    def _name(self, table: str) -> str:
        return sql.trigger_name(self._stem(table), self.kind)

    def _arguments(self, model: Any) -> tuple[str, ...]:
        return ()

    def _create_sql(self, schema: str, table: str, model: Any = None) -> list[str]:
        return [
            sql.create_trigger(
                self._name(table),
                schema,
                table,
                timing=self.timing,
                events=self.events,
                function=self.function,
                arguments=self._arguments(model),
            )
        ]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [sql.drop_trigger(self._name(table), schema, table)]

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        target = self._table(app_label, to_state, schema_editor)
        if target:
            self._run(schema_editor, self._create_sql(*target, model=model))

    def describe(self) -> str:
        return f"Attach {self.kind} trigger ({self.function}) to {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name_lower}_{self.kind}_trigger"


class AttachTouchTrigger(AttachTrigger):
    """BEFORE UPDATE: stamp updated_at and bump version (app.touch_row)."""

    kind = "touch"
    timing = "BEFORE"
    events = ("UPDATE",)
    function = "app.touch_row"


class AttachSoftDeleteTrigger(AttachTrigger):
    """BEFORE DELETE: mark the row is_deleted instead of deleting it (app.soft_delete)."""

    kind = "softdel"
    timing = "BEFORE"
    events = ("DELETE",)
    function = "app.soft_delete"


class AttachAuditTrigger(AttachTrigger):
    """AFTER INSERT/UPDATE/DELETE: write the change to ops.audit_logs (ops.log_audit).

    A table whose primary key is not `id` passes its key columns to the function,
    which records them, comma-separated, as the entity id.
    """

    kind = "audit"
    timing = "AFTER"
    events = ("INSERT", "UPDATE", "DELETE")
    function = "ops.log_audit"

    def _arguments(self, model: Any) -> tuple[str, ...]:
        if model is None:
            return ()
        key_columns = tuple(field.column for field in _primary_key_fields(model))
        return () if key_columns == ("id",) else key_columns


class ChangeAuditTriggerEvents(AttachAuditTrigger):
    """The audit trigger trg_<stem>_audit on other events, changed in place.

    CREATE OR REPLACE TRIGGER (PostgreSQL 14+): the trigger is never missing, and keeps
    its function and arguments (the key columns, as AttachAuditTrigger passes them).
    For a table whose INSERTs another trigger audits, once per statement
    (ops.log_audit_inserts with AttachStatementTrigger). Reversing puts `previous_events`
    back.
    """

    def __init__(
        self,
        model_name: str,
        events: tuple[str, ...] | list[str],
        previous_events: tuple[str, ...] | list[str] = AttachAuditTrigger.events,
        stem: str | None = None,
    ) -> None:
        super().__init__(model_name, stem)
        self.events = tuple(events)
        self.previous_events = tuple(previous_events)
        self._replace_sql("s", "t", None, self.events)  # bad events fail when loaded
        self._replace_sql("s", "t", None, self.previous_events)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        kwargs["events"] = list(self.events)
        if self.previous_events != AttachAuditTrigger.events:
            kwargs["previous_events"] = list(self.previous_events)
        return name, args, kwargs

    def _replace_sql(
        self, schema: str, table: str, model: Any, events: tuple[str, ...]
    ) -> list[str]:
        return [
            sql.create_trigger(
                self._name(table),
                schema,
                table,
                timing=self.timing,
                events=events,
                function=self.function,
                arguments=self._arguments(model),
                replace=True,
            )
        ]

    def _change(self, app_label: str, schema_editor: Any, state: Any, events: tuple) -> None:
        target = self._table(app_label, state, schema_editor)
        if target:
            model = state.apps.get_model(app_label, self.model_name)
            self._run(schema_editor, self._replace_sql(*target, model, events))

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._change(app_label, schema_editor, to_state, self.events)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._change(app_label, schema_editor, from_state, self.previous_events)

    def describe(self) -> str:
        return f"Audit {self.model_name} rows on {', '.join(self.events)} only"

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name_lower}_audit_events"


def _primary_key_fields(model: Any) -> list[Any]:
    """The fields of a model's primary key (several for a CompositePrimaryKey)."""
    pk = model._meta.pk
    return list(getattr(pk, "fields", None) or [pk])


class EnsureRuntimeRole(SQLOperation):
    """Create the runtime role (settings.HZM_APP_ROLE) when absent, without any bypass.

    Roles are cluster-wide: reversing drops it only when no other database on the
    cluster still grants it anything.
    """

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.ensure_runtime_role(runtime_role())])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.drop_role_if_unused(runtime_role())])

    def describe(self) -> str:
        return "Ensure the runtime role exists (settings.HZM_APP_ROLE)"

    @property
    def migration_name_fragment(self) -> str:
        return "runtime_role"


def runtime_role() -> str:
    """The runtime role's name, from settings (HZM_APP_ROLE, default hzm_app)."""
    from django.conf import settings

    return sql.validate_identifier(getattr(settings, "HZM_APP_ROLE", "hzm_app"), "HZM_APP_ROLE")


class GrantSchemaUsage(SQLOperation):
    """GRANT USAGE on a schema to the runtime role; reversing revokes it."""

    def __init__(self, schema: str) -> None:
        self.schema = sql.validate_identifier(schema, "schema")

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"schema": self.schema}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_schema_usage(self.schema, runtime_role())])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.revoke_schema_usage(self.schema, runtime_role())])

    def describe(self) -> str:
        return f"Grant usage on schema {self.schema} to the runtime role"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_usage_{self.schema}"


class GrantTablePrivileges(TableOperation):
    """GRANT table privileges on a model's table to the runtime role; reversing revokes."""

    def __init__(self, model_name: str, privileges: tuple[str, ...] | list[str]) -> None:
        super().__init__(model_name)
        self.privileges = tuple(privileges)
        sql.grant_table_privileges("s", "t", "r", self.privileges)  # fails on load if bad

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {"model_name": self.model_name, "privileges": list(self.privileges)},
        )

    def _create_sql(self, schema: str, table: str) -> list[str]:
        return [sql.grant_table_privileges(schema, table, runtime_role(), self.privileges)]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [sql.revoke_table_privileges(schema, table, runtime_role(), self.privileges)]

    def describe(self) -> str:
        return f"Grant {', '.join(self.privileges)} on {self.model_name} to the runtime role"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_{self.model_name_lower}"


class AddTenantForeignKey(TableOperation):
    """A composite foreign key (tenant_id, x_id) -> target (tenant_id, id).

    Django has no multi-column foreign key field; this constraint lives beside the
    model's own single-column one and makes the database refuse a row that points at
    another tenant's row, whoever writes it (foreign key checks ignore RLS).
    `on_delete` must be the rule of x_id's own key (CASCADE or SET NULL, which empties
    the columns but tenant_id): the two keys' triggers fire in no guaranteed order, so a
    NO ACTION key beside a CASCADE one could refuse the very cascade the other performs.

    On a populated table, `validate_separately=True` adds the key NOT VALID (checked for
    new rows at once, under a brief SHARE ROW EXCLUSIVE lock) and then VALIDATE CONSTRAINT
    checks the existing rows under SHARE UPDATE EXCLUSIVE, which lets reads and writes go
    on. The two must commit apart, so the migration needs `atomic = False`; by default
    the key is added and validated in one statement, as before. A run that stopped (a row
    VALIDATE refused, since fixed) can simply run again: the NOT VALID key is dropped
    and added again in the same statement.
    """

    def __init__(
        self,
        model_name: str,
        name: str,
        columns: tuple[str, ...] | list[str],
        to_model: str,
        to_columns: tuple[str, ...] | list[str],
        on_delete: str = "NO ACTION",
        validate_separately: bool = False,
    ) -> None:
        super().__init__(model_name)
        self.name = sql.validate_identifier(name, "constraint")
        self.columns = tuple(columns)
        self.to_model = to_model
        self.to_columns = tuple(to_columns)
        self.on_delete = on_delete
        if not isinstance(validate_separately, bool):
            raise ValueError(
                f"AddTenantForeignKey({name}): validate_separately must be True or False, "
                f"got {validate_separately!r}"
            )
        self.validate_separately = validate_separately
        sql.add_foreign_key(self.name, "", "t", self.columns, "", "t", self.to_columns)
        self._on_delete_sql()  # a bad rule fails when the migration loads

    def _on_delete_sql(self) -> str:
        if self.on_delete == "NO ACTION":
            return ""
        return sql.tenant_key_on_delete_clause(self.on_delete, self.columns)

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "name": self.name,
            "columns": list(self.columns),
            "to_model": self.to_model,
            "to_columns": list(self.to_columns),
        }
        if self.on_delete != "NO ACTION":
            kwargs["on_delete"] = self.on_delete
        if self.validate_separately:
            kwargs["validate_separately"] = True
        return self.__class__.__qualname__, [], kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self.validate_separately and schema_editor.connection.in_atomic_block:
            raise NotSupportedError(
                f"AddTenantForeignKey({self.name}, validate_separately=True) adds the key NOT "
                "VALID and validates it in a second transaction: set atomic = False on the "
                "migration (in one transaction the first lock is held while it validates)"
            )
        target = self._table(app_label, to_state, schema_editor)
        if target:
            to_app, _, to_name = self.to_model.rpartition(".")
            to_model = to_state.apps.get_model(to_app or app_label, to_name)
            to_schema, to_table = sql.split_db_table(to_model._meta.db_table)
            statement = sql.add_foreign_key(
                self.name, *target, self.columns, to_schema, to_table, self.to_columns
            )
            statement += self._on_delete_sql()
            if not self.validate_separately:
                self._run(schema_editor, [statement])
                return
            self._run(
                schema_editor,
                [
                    sql.readd_not_valid(statement, self.name),
                    sql.validate_constraint(*target, self.name),
                ],
            )

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [sql.drop_constraint(self.name, schema, table)]

    def describe(self) -> str:
        rule = f" (on delete {self.on_delete.lower()})" if self.on_delete != "NO ACTION" else ""
        then = ", NOT VALID then validated" if self.validate_separately else ""
        return (
            f"Add tenant foreign key {self.name} on {self.model_name} -> {self.to_model}"
            f"{rule}{then}"
        )

    @property
    def migration_name_fragment(self) -> str:
        return self.name

    def references_model(self, name: str, app_label: str) -> bool:
        to_name = self.to_model.rpartition(".")[2]
        return name.lower() in (self.model_name_lower, to_name.lower())


# --- Zero-downtime NOT NULL columns ---------------------------------------------------------
INTEGER_KEYS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
    }
)
DEFAULT_BATCH_SIZE = 1000


class AddNotNullColumnSafely(NotInTransactionMixin, FieldOperation):
    """Add a NOT NULL column to a live table in the seed's zero-downtime steps.

    1. ADD COLUMN nullable, SET DEFAULT: brief lock, no rewrite; rows inserted from now on,
       by old code too (it does not name the column), get the default;
    2. backfill the existing rows in primary key ranges, one commit per batch, only where
       still NULL (resumable), with `backfill` (an SQL expression frozen here) or the default;
    3. CHECK (col IS NOT NULL) NOT VALID; 4. VALIDATE it (reads and writes go on);
    5. SET NOT NULL (no scan: the valid CHECK proves it); 6. drop the CHECK.
    Every step is idempotent, so re-running an interrupted migration continues. The batches
    commit, so the migration must say `atomic = False`. The field needs a db_default (the
    value for rows written meanwhile) and an integer primary key to batch on. The model
    state changes exactly as with AddField; reversing drops the column.
    """

    reversible = True

    def __init__(
        self,
        model_name: str,
        name: str,
        field: Any,
        backfill: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        super().__init__(model_name, name, field)
        self.backfill = backfill
        self.batch_size = batch_size
        where = f"AddNotNullColumnSafely({model_name}.{name})"
        if field.null:
            raise ValueError(f"{where}: the field is null=True; use AddField for a nullable one")
        if field.db_default is NOT_PROVIDED:
            raise ValueError(
                f"{where}: the field needs a db_default, the value of rows that code not yet "
                "deployed inserts while (and after) the backfill runs"
            )
        if (
            field.is_relation
            or field.primary_key
            or field.unique
            or isinstance(field, GeneratedField)
        ):
            raise ValueError(
                f"{where}: only plain columns; a foreign key, key, unique or generated column "
                "needs its own constraint or index step"
            )
        sql.backfill_in_batches("s", "t", "c", "id", batch_size=batch_size)  # fails on load if bad

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "name": self.name,
            "field": self.field,
        }
        if self.backfill is not None:
            kwargs["backfill"] = self.backfill
        if self.batch_size != DEFAULT_BATCH_SIZE:
            kwargs["batch_size"] = self.batch_size
        return self.__class__.__qualname__, [], kwargs

    def state_forwards(self, app_label: str, state: Any) -> None:
        state.add_field(app_label, self.model_name_lower, self.name, self.field, True)

    def _create_sql(self, schema_editor: Any, model: Any) -> list[tuple[str, Any]]:
        schema, table = sql.split_db_table(model._meta.db_table)
        field = model._meta.get_field(self.name)
        key = model._meta.pk
        if key.get_internal_type() not in INTEGER_KEYS:
            raise ValueError(
                f"AddNotNullColumnSafely({self.model_name}.{self.name}): the backfill batches "
                f"on an integer primary key; {table}.{key.name} is a {key.get_internal_type()}"
            )
        default, params = schema_editor.db_default_sql(field)
        check = sql.not_null_check_name(table, field.column)
        return [
            (
                sql.add_nullable_column(
                    schema, table, field.column, field.db_type(schema_editor.connection), default
                ),
                params,
            ),
            (
                sql.backfill_in_batches(
                    schema,
                    table,
                    field.column,
                    key.column,
                    value=self.backfill or "DEFAULT",
                    batch_size=self.batch_size,
                ),
                None,
            ),
            (sql.add_not_null_check(schema, table, field.column, check), None),
            (sql.validate_constraint(schema, table, check), None),
            (sql.set_not_null(schema, table, field.column), None),
            (sql.drop_constraint_if_exists(check, schema, table), None),
        ]

    def _drop_sql(self, schema_editor: Any, model: Any) -> list[tuple[str, Any]]:
        schema, table = sql.split_db_table(model._meta.db_table)
        return [(sql.drop_column(schema, table, model._meta.get_field(self.name).column), None)]

    def _run_steps(self, schema_editor: Any, steps: list[tuple[str, Any]]) -> None:
        with _backfill_progress(schema_editor):
            for statement, params in steps:
                schema_editor.execute(statement, params=params)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._ensure_not_in_transaction(schema_editor)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._run_steps(schema_editor, self._create_sql(schema_editor, model))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._ensure_not_in_transaction(schema_editor)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            self._run_steps(schema_editor, self._drop_sql(schema_editor, model))

    def describe(self) -> str:
        return (
            f"Add NOT NULL field {self.name} to {self.model_name} without blocking writes "
            f"(backfill in batches of {self.batch_size})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name_lower}_{self.name_lower}"


@contextmanager
def _backfill_progress(schema_editor: Any) -> Iterator[None]:
    """Show the backfill's RAISE NOTICE progress lines while the steps run (not in sqlmigrate).

    At most one line per hzm.progress.INTERVAL, and the last one always, each with the
    time so far and the rate; to the running command's progress writer (migrate: its
    stdout, none at -v 0). The notices must reach the client whatever its
    client_min_messages (PGOPTIONS='-c client_min_messages=warning' is common): the
    session's setting is raised to notice for the steps and put back afterwards.
    """
    write = progress.current_writer()
    if schema_editor.collect_sql or write is None:
        yield
        return
    started = time.monotonic()
    shown = {"at": started, "last": None, "pending": False}

    def line(message: str) -> str:
        elapsed = time.monotonic() - started
        filled = re.search(r": (\d+) rows filled", message)
        rate = f", {int(filled[1]) / elapsed:,.0f} rows/s" if filled and elapsed > 0 else ""
        return f"\n    {message} ({elapsed:.1f} s{rate})"

    def show(diagnostic: Any) -> None:
        message = diagnostic.message_primary or ""
        if not message.startswith("backfill "):
            return
        shown["last"], shown["pending"] = message, True
        if time.monotonic() - shown["at"] >= progress.INTERVAL:
            write(line(message))
            shown["at"], shown["pending"] = time.monotonic(), False

    connection = schema_editor.connection
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.execute(
        "SELECT current_setting('client_min_messages'), "
        "set_config('client_min_messages', 'notice', false)"
    ).fetchone()[0]
    raw.add_notice_handler(show)
    try:
        yield
    finally:
        raw.remove_notice_handler(show)
        if shown["pending"]:
            write(line(shown["last"]))
        if not raw.closed and not raw.info.transaction_status:
            raw.execute("SELECT set_config('client_min_messages', %s, false)", [previous])


# --- Microservice roles ---------------------------------------------------------------
# Each service schema (comms, billing) has a role of its own, built like the runtime
# role (NOLOGIN, no RLS bypass, owns nothing) and granted only its schema and what it
# must read of core. Tables of other apps are named "app_label.model".


def service_role(service: str) -> str:
    """The role of a microservice: <HZM_APP_ROLE>_<service>, e.g. hzm_app_comms.

    Derived from the runtime role's setting rather than fixed: roles belong to the
    whole cluster, and one setting then keeps all of a deployment's roles apart from
    another's on the same server (staging beside production, the tests' scratch
    databases), so a migration can never grant or drop another deployment's role.
    """
    return sql.service_role_name(runtime_role(), service)


class EnsureServiceRole(SQLOperation):
    """Create a microservice's role when absent, with the runtime role's attributes.

    Reversing drops it only when no other database on the cluster still grants it
    anything (as EnsureRuntimeRole).
    """

    def __init__(self, service: str) -> None:
        self.service = sql.validate_name_part(service, "service")

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"service": self.service}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.ensure_runtime_role(service_role(self.service))])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.drop_role_if_unused(service_role(self.service))])

    def describe(self) -> str:
        return f"Ensure the {self.service} service role exists (<HZM_APP_ROLE>_{self.service})"

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.service}_service_role"


class GrantServiceSchemaUsage(SQLOperation):
    """GRANT USAGE on a schema to a microservice's role; reversing revokes it."""

    def __init__(self, service: str, schema: str) -> None:
        self.service = sql.validate_name_part(service, "service")
        self.schema = sql.validate_identifier(schema, "schema")

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {"service": self.service, "schema": self.schema},
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_schema_usage(self.schema, service_role(self.service))])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        role = service_role(self.service)
        self._run(schema_editor, [sql.revoke_schema_usage(self.schema, role)])

    def describe(self) -> str:
        return f"Grant usage on schema {self.schema} to the {self.service} service role"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_{self.service}_usage_{self.schema}"


class GrantServiceTablePrivileges(TableOperation):
    """GRANT privileges on a table (or only some of its columns) to a microservice's role.

    `model_name` may be another app's model ("core.user"), so a service's migrations
    grant it what it must read of core. Reversing revokes exactly what was granted.
    """

    def __init__(
        self,
        model_name: str,
        service: str,
        privileges: tuple[str, ...] | list[str],
        columns: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        super().__init__(model_name)
        self.service = sql.validate_name_part(service, "service")
        self.privileges = tuple(privileges)
        self.columns = tuple(columns) if columns is not None else None
        self._grant_sql("s", "t", "r")  # a bad privilege or column fails when loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "service": self.service,
            "privileges": list(self.privileges),
        }
        if self.columns is not None:
            kwargs["columns"] = list(self.columns)
        return self.__class__.__qualname__, [], kwargs

    def _table(self, app_label: str, state: Any, schema_editor: Any) -> tuple[str, str] | None:
        other_app, _, name = self.model_name.rpartition(".")
        model = state.apps.get_model(other_app or app_label, name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        return sql.split_db_table(model._meta.db_table)

    def _grant_sql(self, schema: str, table: str, role: str) -> str:
        if self.columns is None:
            return sql.grant_table_privileges(schema, table, role, self.privileges)
        return sql.grant_column_privileges(schema, table, role, self.privileges, self.columns)

    def _create_sql(self, schema: str, table: str) -> list[str]:
        return [self._grant_sql(schema, table, service_role(self.service))]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        role = service_role(self.service)
        if self.columns is None:
            return [sql.revoke_table_privileges(schema, table, role, self.privileges)]
        return [sql.revoke_column_privileges(schema, table, role, self.privileges, self.columns)]

    def describe(self) -> str:
        on = self.model_name
        if self.columns is not None:
            on += f" ({', '.join(self.columns)})"
        return f"Grant {', '.join(self.privileges)} on {on} to the {self.service} service role"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_{self.service}_{self.model_name_lower.replace('.', '_')}"

    def references_model(self, name: str, app_label: str) -> bool:
        return name.lower() == self.model_name_lower.rpartition(".")[2]


# Triggers that run a table's own function (installed by InstallFunction), named like
# the seed's: trg_<stem>_<kind>. Used by the service schemas' and core's later tables.


class AttachFunctionTrigger(AttachTrigger):
    """A row trigger trg_<stem>_<kind> that runs `function` at `timing` on `events`."""

    def __init__(
        self,
        model_name: str,
        kind: str,
        function: str,
        timing: str,
        events: tuple[str, ...] | list[str],
        stem: str | None = None,
    ) -> None:
        super().__init__(model_name, stem)
        self.kind = sql.validate_name_part(kind, "trigger kind")
        self.function = function
        self.timing = timing
        self.events = tuple(events)
        self._create_sql("s", "t")  # a bad function name, timing or event fails when loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        kwargs.update(
            kind=self.kind, function=self.function, timing=self.timing, events=list(self.events)
        )
        return name, args, kwargs


# --- Function privileges, options and statement triggers ------------------------------


class GrantExecute(SQLOperation):
    """EXECUTE on a function for the runtime role only; reversing gives it back to PUBLIC."""

    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        sql.grant_execute(name, arguments, "r")  # a bad name fails when the migration is loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"name": self.name, "arguments": self.arguments}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, sql.grant_execute(self.name, self.arguments, runtime_role()))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, sql.revoke_execute(self.name, self.arguments, runtime_role()))

    def describe(self) -> str:
        signature = sql.function_signature(self.arguments)
        return f"Grant execute on {self.name}({signature}) to the runtime role only"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_execute_{self.name.replace('.', '_')}"


class GrantServiceExecute(SQLOperation):
    """EXECUTE on a function for a service role too (after GrantExecute took it from PUBLIC)."""

    def __init__(self, name: str, arguments: str, service: str) -> None:
        self.name = name
        self.arguments = arguments
        self.service = sql.validate_name_part(service, "service")
        sql.grant_function_execute(name, arguments, "r")  # a bad name fails when loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {"name": self.name, "arguments": self.arguments, "service": self.service},
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        role = service_role(self.service)
        self._run(schema_editor, [sql.grant_function_execute(self.name, self.arguments, role)])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        role = service_role(self.service)
        self._run(schema_editor, [sql.revoke_function_execute(self.name, self.arguments, role)])

    def describe(self) -> str:
        signature = sql.function_signature(self.arguments)
        return f"Grant execute on {self.name}({signature}) to the {self.service} service role"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_{self.service}_execute_{self.name.replace('.', '_')}"


class RevokeExecute(SQLOperation):
    """Take EXECUTE on a function from the runtime role again (a function it no longer needs).

    The reverse of GrantExecute's grant, without GrantExecute's giving it back to PUBLIC:
    reversing grants it to the runtime role once more.
    """

    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        sql.revoke_function_execute(name, arguments, "r")  # a bad name fails when loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"name": self.name, "arguments": self.arguments}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        statement = sql.revoke_function_execute(self.name, self.arguments, runtime_role())
        self._run(schema_editor, [statement])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        statement = sql.grant_function_execute(self.name, self.arguments, runtime_role())
        self._run(schema_editor, [statement])

    def describe(self) -> str:
        signature = sql.function_signature(self.arguments)
        return f"Revoke execute on {self.name}({signature}) from the runtime role"

    @property
    def migration_name_fragment(self) -> str:
        return f"revoke_execute_{self.name.replace('.', '_')}"


class GrantNamedTablePrivileges(SQLOperation):
    """Privileges on a table no model of the migration state describes (django_migrations).

    To the runtime role, or with `service` to that service's role; reversing revokes them.
    """

    def __init__(
        self, table: str, privileges: tuple[str, ...] | list[str], service: str | None = None
    ) -> None:
        self.schema, self.table = sql.split_db_table(table)
        self.privileges = tuple(privileges)
        self.service = None if service is None else sql.validate_name_part(service, "service")
        sql.grant_table_privileges(self.schema, self.table, "r", self.privileges)  # fails on load

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        table = f'{self.schema}"."{self.table}' if self.schema else self.table
        kwargs: dict[str, Any] = {"table": table, "privileges": list(self.privileges)}
        if self.service is not None:
            kwargs["service"] = self.service
        return self.__class__.__qualname__, [], kwargs

    def _role(self) -> str:
        return runtime_role() if self.service is None else service_role(self.service)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        statement = sql.grant_table_privileges(
            self.schema, self.table, self._role(), self.privileges
        )
        self._run(schema_editor, [statement])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        role = self._role()
        self._run(
            schema_editor,
            [sql.revoke_table_privileges(self.schema, self.table, role, self.privileges)],
        )

    def describe(self) -> str:
        to = "the runtime role" if self.service is None else f"the {self.service} service role"
        return f"Grant {', '.join(self.privileges)} on {self.table} to {to}"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_{self.service or 'runtime'}_{self.table}"


class ConfigureFunction(SQLOperation):
    """A setting the function runs with (ALTER FUNCTION ... SET); reversing resets it."""

    def __init__(self, name: str, arguments: str, setting: str, value: str) -> None:
        self.name = name
        self.arguments = arguments
        self.setting = setting
        self.value = value
        sql.set_function_option(name, arguments, setting, value)  # bad input fails on load

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {
                "name": self.name,
                "arguments": self.arguments,
                "setting": self.setting,
                "value": self.value,
            },
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(
            schema_editor,
            [sql.set_function_option(self.name, self.arguments, self.setting, self.value)],
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(
            schema_editor, [sql.reset_function_option(self.name, self.arguments, self.setting)]
        )

    def describe(self) -> str:
        return f"Run function {self.name} with {self.setting} = {self.value}"

    @property
    def migration_name_fragment(self) -> str:
        return f"configure_{self.name.replace('.', '_')}_{self.setting}"


class AttachStatementTrigger(AttachTrigger):
    """An AFTER <event> FOR EACH STATEMENT trigger trg_<stem>_<kind> with transition tables.

    A subclass of the toolkit's AttachTrigger, so the doctor (hzm.db.checks) finds it
    among the declared triggers and checks that it exists and runs `function`.
    """

    timing = "AFTER"

    def __init__(
        self,
        model_name: str,
        kind: str,
        event: str,
        function: str,
        old_table: str | None = None,
        new_table: str | None = None,
        stem: str | None = None,
    ) -> None:
        super().__init__(model_name, stem)
        self.kind = sql.validate_name_part(kind, "trigger kind")
        self.event = event
        self.events = (event,)
        self.function = function
        self.old_table = old_table
        self.new_table = new_table
        self._create_sql("s", "t")  # a bad event or transition table fails on load

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        kwargs.update(kind=self.kind, event=self.event, function=self.function)
        if self.old_table is not None:
            kwargs["old_table"] = self.old_table
        if self.new_table is not None:
            kwargs["new_table"] = self.new_table
        return name, args, kwargs

    def _create_sql(self, schema: str, table: str, model: Any = None) -> list[str]:
        return [
            sql.create_statement_trigger(
                self._name(table),
                schema,
                table,
                event=self.event,
                function=self.function,
                old_table=self.old_table,
                new_table=self.new_table,
            )
        ]

    def describe(self) -> str:
        return (
            f"Attach statement trigger {self.kind} (AFTER {self.event}, {self.function}) "
            f"to {self.model_name}"
        )


# --- Hardening (issue 11) ------------------------------------------------------------------


def _state_model(model_name: str, app_label: str, state: Any) -> Any:
    """A model of the migration state: 'user' of this app, or another app's 'core.user'."""
    other_app, _, name = model_name.rpartition(".")
    return state.apps.get_model(other_app or app_label, name)


class RevokePublicExecute(SQLOperation):
    """Take PostgreSQL's default EXECUTE for PUBLIC from a function; reversing gives it back.

    For SECURITY DEFINER trigger functions: a trigger needs no grant to fire, but any role
    holding EXECUTE could attach the function to a table of its own (a TEMP table) and
    run it as the owner with rows of its choosing.
    """

    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        sql.revoke_public_execute(name, arguments)  # a bad name fails when loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"name": self.name, "arguments": self.arguments}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.revoke_public_execute(self.name, self.arguments)])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_public_execute(self.name, self.arguments)])

    def describe(self) -> str:
        return (
            f"Revoke execute on {self.name}({sql.function_signature(self.arguments)}) from PUBLIC"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"revoke_public_execute_{self.name.replace('.', '_')}"


class RestrictColumnPrivileges(SQLOperation):
    """Narrow a table privilege of the runtime role (or a service's) to all columns but some.

    INSERT without `id` keeps identity values the sequence's (a tenant choosing ids
    ahead of it would make other tenants' inserts fail); UPDATE without `role` keeps a
    tenant from making its user a platform admin. The columns are the model's in the
    migration state, so a column added later needs a grant of its own (dbdoctor says so).
    Reversing gives the privilege back on the whole table.
    """

    def __init__(
        self,
        model_name: str,
        privileges: tuple[str, ...] | list[str],
        exclude: tuple[str, ...] | list[str],
        service: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.privileges = tuple(privileges)
        self.exclude = tuple(exclude)
        self.service = None if service is None else sql.validate_name_part(service, "service")
        sql.grant_column_privileges("s", "t", "r", self.privileges, ("c",))  # fails on load
        for column in self.exclude:
            sql.validate_identifier(column, "column")

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "privileges": list(self.privileges),
            "exclude": list(self.exclude),
        }
        if self.service is not None:
            kwargs["service"] = self.service
        return self.__class__.__qualname__, [], kwargs

    def _role(self) -> str:
        return runtime_role() if self.service is None else service_role(self.service)

    def _target(self, app_label: str, state: Any, schema_editor: Any) -> Any:
        model = _state_model(self.model_name, app_label, state)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        columns = tuple(
            f.column for f in model._meta.concrete_fields if f.column not in self.exclude
        )
        return (*sql.split_db_table(model._meta.db_table), columns)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._target(app_label, to_state, schema_editor)
        if target:
            schema, table, columns = target
            self._run(schema_editor, self.restrict_sql(schema, table, columns))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._target(app_label, from_state, schema_editor)
        if target:
            schema, table, _columns = target
            self._run(schema_editor, self.widen_sql(schema, table))

    def restrict_sql(self, schema: str, table: str, columns: tuple[str, ...]) -> list[str]:
        role = self._role()
        return [
            sql.revoke_table_privileges(schema, table, role, self.privileges),
            sql.grant_column_privileges(schema, table, role, self.privileges, columns),
        ]

    def widen_sql(self, schema: str, table: str) -> list[str]:
        # Revoking a table privilege revokes the same privilege on its columns too.
        role = self._role()
        return [
            sql.revoke_table_privileges(schema, table, role, self.privileges),
            sql.grant_table_privileges(schema, table, role, self.privileges),
        ]

    def describe(self) -> str:
        return (
            f"Grant {', '.join(self.privileges)} on {self.model_name} only on columns other "
            f"than {', '.join(self.exclude)}"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"restrict_{self.model_name.lower().replace('.', '_')}"

    def references_model(self, name: str, app_label: str) -> bool:
        return name.lower() == self.model_name.lower().rpartition(".")[2]


class RevokeDatabaseTemporary(SQLOperation):
    """No TEMPORARY on the database for PUBLIC (the runtime, service and login roles)."""

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.revoke_database_temporary()])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_database_temporary()])

    def describe(self) -> str:
        return "Revoke TEMPORARY on the database from PUBLIC"

    @property
    def migration_name_fragment(self) -> str:
        return "revoke_temporary"


class RevokeCatalogFunctions(SQLOperation):
    """Large objects and backend signals taken from PUBLIC, when migrate runs as a superuser.

    hzm.db.sql.SUPERUSER_REVOKED_FUNCTIONS says which and why; elsewhere the README's
    superuser set-up does it and dbdoctor reports it until then.
    """

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.revoke_catalog_functions()])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_catalog_functions()])

    def describe(self) -> str:
        return "Revoke large objects and backend signals from PUBLIC (superuser only)"

    @property
    def migration_name_fragment(self) -> str:
        return "revoke_catalog_functions"


class AlterPolicy(SQLOperation):
    """ALTER POLICY to new conditions or roles; reversing puts the previous ones back.

    Both sides are frozen in the migration, as InstallFunction's `replaces` is.
    """

    def __init__(
        self,
        model_name: str,
        name: str,
        *,
        using: str | None = None,
        with_check: str | None = None,
        to: str | None = None,
        previous_using: str | None = None,
        previous_with_check: str | None = None,
        previous_to: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.name = sql.validate_identifier(name, "policy")
        self.using, self.with_check, self.to = using, with_check, to
        self.previous_using, self.previous_with_check = previous_using, previous_with_check
        self.previous_to = previous_to
        sql.alter_policy(name, "s", "t", using=using, with_check=with_check, to=to)
        sql.alter_policy(
            name, "s", "t", using=previous_using, with_check=previous_with_check, to=previous_to
        )

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"model_name": self.model_name, "name": self.name}
        for key in (
            "using", "with_check", "to", "previous_using", "previous_with_check", "previous_to"
        ):  # fmt: skip
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return self.__class__.__qualname__, [], kwargs

    def _table(self, app_label: str, state: Any, schema_editor: Any) -> Any:
        model = _state_model(self.model_name, app_label, state)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        return sql.split_db_table(model._meta.db_table)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._table(app_label, to_state, schema_editor)
        if target:
            statement = sql.alter_policy(
                self.name, *target, using=self.using, with_check=self.with_check, to=self.to
            )
            self._run(schema_editor, [statement])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        target = self._table(app_label, from_state, schema_editor)
        if target:
            statement = sql.alter_policy(
                self.name,
                *target,
                using=self.previous_using,
                with_check=self.previous_with_check,
                to=self.previous_to,
            )
            self._run(schema_editor, [statement])

    def describe(self) -> str:
        return f"Alter policy {self.name} on {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"alter_{self.name}"

    def references_model(self, name: str, app_label: str) -> bool:
        return name.lower() == self.model_name.lower().rpartition(".")[2]


class CreateContextKeyStore(SQLOperation):
    """The owner-only table of the tenant-context keys (hzm_private.context_keys).

    No role but the owner may use the schema or read the table: the keys are what makes a
    context token unforgeable. migrate fills it (hzm.db.context_keys, on post_migrate);
    reversing drops it with its keys.
    """

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, sql.create_context_key_store())

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, sql.drop_context_key_store())

    def describe(self) -> str:
        return f"Create the owner-only context key table {sql.CONTEXT_KEY_TABLE}"

    @property
    def migration_name_fragment(self) -> str:
        return "create_context_key_store"


class GrantPublicExecute(SQLOperation):
    """EXECUTE on a SECURITY DEFINER function for every role, reviewed and declared.

    For a function that gives its caller nothing but what the caller's own transaction
    already holds (the verified context: app.current_tenant()): every role whose
    statements meet a tenant policy must be able to call it, including roles the project
    does not know of. dbdoctor accepts PUBLIC's EXECUTE on a definer function only where
    a migration declares it so. `previously_public`: the function was executable by PUBLIC
    before (PostgreSQL's default), so reversing leaves that grant in place.
    """

    def __init__(self, name: str, arguments: str, previously_public: bool = False) -> None:
        self.name = name
        self.arguments = arguments
        self.previously_public = previously_public
        sql.grant_public_execute(name, arguments)  # a bad name fails when the migration is loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.previously_public:
            kwargs["previously_public"] = True
        return self.__class__.__qualname__, [], kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.grant_public_execute(self.name, self.arguments)])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if not self.previously_public:
            self._run(schema_editor, [sql.revoke_public_execute(self.name, self.arguments)])

    def describe(self) -> str:
        signature = sql.function_signature(self.arguments)
        return f"Grant execute on {self.name}({signature}) to PUBLIC (reviewed)"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_public_execute_{self.name.replace('.', '_')}"
