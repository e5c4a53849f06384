"""Migration operations generic_data needs and the toolkit does not have yet.

- GrantExecute: a function callable by the runtime role and by nobody else
  (REVOKE ... FROM PUBLIC, GRANT ... TO the runtime role).
- AttachStatementTrigger: a FOR EACH STATEMENT trigger with transition tables, which
  sees all the rows of a statement at once (a bulk insert is one trigger call).
- ConfigureFunction: a setting a function runs with (ALTER FUNCTION ... SET), which
  PostgreSQL applies on entry and undoes on exit.

They follow hzm.db.operations: the SQL comes from the pure renderers below (names
validated and quoted by hzm.db.sql), runs only through schema_editor.execute(), and
forwards and backwards call two helpers in swapped order. Candidates for the toolkit
(hzm/db/sql.py and hzm/db/operations.py).
"""

import re
from typing import Any

from hzm.db import sql
from hzm.db.operations import AttachTrigger, SQLOperation, runtime_role

# --- SQL renderers ------------------------------------------------------------------------


def grant_execute(function: str, arguments: str, role: str) -> list[str]:
    """Only `role` may call the function: PostgreSQL grants EXECUTE to PUBLIC by default."""
    signature = _signature(function, arguments)
    return [
        f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {sql.quote_identifier(role, 'role')}",
    ]


def revoke_execute(function: str, arguments: str, role: str) -> list[str]:
    """Undo grant_execute(): PostgreSQL's default (EXECUTE for PUBLIC) back."""
    signature = _signature(function, arguments)
    return [
        f"REVOKE EXECUTE ON FUNCTION {signature} FROM {sql.quote_identifier(role, 'role')}",
        f"GRANT EXECUTE ON FUNCTION {signature} TO PUBLIC",
    ]


_SETTING_VALUE = re.compile(r"[a-z0-9_.]+\Z")


def set_function_option(function: str, arguments: str, setting: str, value: str) -> str:
    """ALTER FUNCTION ... SET setting = value (a plain word: on, off, 0, a name)."""
    if not isinstance(value, str) or not _SETTING_VALUE.match(value):
        raise ValueError(f"setting value {value!r} must be a plain word (letters, digits, _ .)")
    return (
        f"ALTER FUNCTION {_signature(function, arguments)} "
        f"SET {sql.quote_identifier(setting, 'setting')} = {value}"
    )


def reset_function_option(function: str, arguments: str, setting: str) -> str:
    return (
        f"ALTER FUNCTION {_signature(function, arguments)} "
        f"RESET {sql.quote_identifier(setting, 'setting')}"
    )


def _signature(function: str, arguments: str) -> str:
    return f"{sql.qualified_name(function, 'function')}({sql.function_signature(arguments)})"


STATEMENT_TRIGGER_EVENTS = ("INSERT", "UPDATE", "DELETE")


def create_statement_trigger(
    name: str,
    schema: str,
    table: str,
    *,
    event: str,
    function: str,
    old_table: str | None = None,
    new_table: str | None = None,
) -> str:
    """CREATE TRIGGER ... AFTER <event> REFERENCING ... FOR EACH STATEMENT.

    PostgreSQL allows transition tables only on AFTER triggers of a single event:
    OLD TABLE for UPDATE and DELETE, NEW TABLE for INSERT and UPDATE.
    """
    if event not in STATEMENT_TRIGGER_EVENTS:
        raise ValueError(
            f"trigger event {event!r} is not one of {', '.join(STATEMENT_TRIGGER_EVENTS)}"
        )
    if old_table is not None and event == "INSERT":
        raise ValueError(f"trigger {name!r}: an INSERT has no OLD TABLE")
    if new_table is not None and event == "DELETE":
        raise ValueError(f"trigger {name!r}: a DELETE has no NEW TABLE")
    referencing = []
    if old_table is not None:
        referencing.append(f"OLD TABLE AS {sql.quote_identifier(old_table, 'transition table')}")
    if new_table is not None:
        referencing.append(f"NEW TABLE AS {sql.quote_identifier(new_table, 'transition table')}")
    clause = f" REFERENCING {' '.join(referencing)}" if referencing else ""
    return (
        f"CREATE TRIGGER {sql.quote_identifier(name, 'trigger')} AFTER {event} "
        f"ON {sql.table_ref(schema, table)}{clause} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {sql.qualified_name(function, 'function')}()"
    )


# --- Operations ---------------------------------------------------------------------------


class GrantExecute(SQLOperation):
    """EXECUTE on a function for the runtime role only; reversing gives it back to PUBLIC."""

    def __init__(self, name: str, arguments: str) -> None:
        self.name = name
        self.arguments = arguments
        grant_execute(name, arguments, "r")  # a bad name fails when the migration is loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {"name": self.name, "arguments": self.arguments}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, grant_execute(self.name, self.arguments, runtime_role()))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, revoke_execute(self.name, self.arguments, runtime_role()))

    def describe(self) -> str:
        signature = sql.function_signature(self.arguments)
        return f"Grant execute on {self.name}({signature}) to the runtime role only"

    @property
    def migration_name_fragment(self) -> str:
        return f"grant_execute_{self.name.replace('.', '_')}"


class ConfigureFunction(SQLOperation):
    """A setting the function runs with (ALTER FUNCTION ... SET); reversing resets it."""

    def __init__(self, name: str, arguments: str, setting: str, value: str) -> None:
        self.name = name
        self.arguments = arguments
        self.setting = setting
        self.value = value
        set_function_option(name, arguments, setting, value)  # bad input fails on load

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
            [set_function_option(self.name, self.arguments, self.setting, self.value)],
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [reset_function_option(self.name, self.arguments, self.setting)])

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
            create_statement_trigger(
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
