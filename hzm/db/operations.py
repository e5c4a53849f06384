"""Reversible migration operations for schemas, functions, row level security and triggers.

Each operation follows Django's whole operation protocol (state_forwards,
database_forwards/backwards, describe, migration_name_fragment, deconstruct) and
runs its DDL only through schema_editor.execute(), so `sqlmigrate` shows the real
SQL, as RunSQL does. The SQL comes from hzm.db.sql; forwards and backwards call
two helpers in swapped order. Table operations take a model name and find the
table in the migration state, never in today's models.
"""

from typing import Any

from django.db.migrations.operations.base import Operation

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


class InstallFunction(SQLOperation):
    """Install a SQL or PL/pgSQL function whose body is frozen in the migration.

    Reversing drops the function; a later change of the body is a new operation in
    a new migration, so an applied migration never changes meaning.
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
        # Render once now so a bad name or option fails when the migration is loaded.
        self._create_sql()

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "name": self.name,
            "arguments": self.arguments,
            "returns": self.returns,
            "body": self.body,
        }
        defaults = {
            "language": "plpgsql",
            "volatility": "VOLATILE",
            "strict": False,
            "parallel_safe": False,
            "security_definer": False,
            "search_path": None,
        }
        for key, default in defaults.items():
            if getattr(self, key) != default:
                kwargs[key] = getattr(self, key)
        return self.__class__.__qualname__, [], kwargs

    def _create_sql(self) -> str:
        return sql.create_function(
            self.name,
            self.arguments,
            self.returns,
            self.body,
            language=self.language,
            volatility=self.volatility,
            strict=self.strict,
            parallel_safe=self.parallel_safe,
            security_definer=self.security_definer,
            search_path=self.search_path,
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [self._create_sql()])

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [sql.drop_function(self.name, self.arguments)])

    def describe(self) -> str:
        return f"Install function {self.name}({sql.function_signature(self.arguments)})"

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
    its tenant_id is the tenant of the current context; no context, no rows.
    """

    def _policy(self, table: str) -> str:
        return sql.policy_name(self._stem(table))

    def _create_sql(self, schema: str, table: str) -> list[str]:
        predicate = sql.tenant_predicate()
        return [
            *sql.enable_row_level_security(schema, table),
            sql.create_policy(
                self._policy(table), schema, table, using=predicate, with_check=predicate
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


class AttachTrigger(TableOperation):
    """A row trigger named trg_<stem>_<kind> that runs `function` at `timing` on `events`."""

    kind: str
    timing: str
    events: tuple[str, ...]
    function: str

    def _name(self, table: str) -> str:
        return sql.trigger_name(self._stem(table), self.kind)

    def _create_sql(self, schema: str, table: str) -> list[str]:
        return [
            sql.create_trigger(
                self._name(table),
                schema,
                table,
                timing=self.timing,
                events=self.events,
                function=self.function,
            )
        ]

    def _drop_sql(self, schema: str, table: str) -> list[str]:
        return [sql.drop_trigger(self._name(table), schema, table)]

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
    """AFTER INSERT/UPDATE/DELETE: write the change to ops.audit_logs (ops.log_audit)."""

    kind = "audit"
    timing = "AFTER"
    events = ("INSERT", "UPDATE", "DELETE")
    function = "ops.log_audit"
