"""Pure SQL renderers for the platform's database objects.

Names and values in, SQL text out: no Django, no database. Every identifier is
validated and then quoted here, in one place; callers never format SQL themselves.
The migration operations in hzm.db.operations call these functions, and the tests
check each one to the exact string.
"""

import re

MAX_IDENTIFIER_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1: longer names are truncated silently.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*\Z")
_DOLLAR_TAG = re.compile(r"\$[a-z_]*\$")

TRIGGER_TIMINGS = ("BEFORE", "AFTER")
TRIGGER_EVENTS = ("INSERT", "UPDATE", "DELETE")
VOLATILITIES = ("IMMUTABLE", "STABLE", "VOLATILE")
ON_DELETE_RULES = ("CASCADE", "NO ACTION", "RESTRICT", "SET NULL")


def validate_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a lower-case PostgreSQL identifier of at most 63 bytes."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name: use lower-case letters, digits and "
            "underscores, starting with a letter or underscore"
        )
    if len(name.encode()) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(
            f"{what} {name!r} is {len(name.encode())} bytes long; PostgreSQL keeps only "
            f"{MAX_IDENTIFIER_LENGTH}"
        )
    return name


def validate_name_part(part: str, what: str = "name part") -> str:
    """Return `part` if it can stand inside an identifier (lower-case letters, digits, '_')."""
    if not isinstance(part, str) or not re.fullmatch(r"[a-z0-9_]+", part):
        raise ValueError(
            f"{what} {part!r} may only contain lower-case letters, digits and underscores"
        )
    return part


def quote_identifier(name: str, what: str = "identifier") -> str:
    """Validate `name` and return it double-quoted."""
    return f'"{validate_identifier(name, what)}"'


def qualified_name(name: str, what: str = "name") -> str:
    """Quote a `schema.object` (or bare `object`) name: 'app.touch_row' -> '"app"."touch_row"'."""
    parts = name.split(".")
    if len(parts) > 2:
        raise ValueError(f"{what} {name!r} has more than one '.'; expected schema.name")
    return ".".join(quote_identifier(part, what) for part in parts)


def split_db_table(db_table: str) -> tuple[str, str]:
    """Split a Django db_table ('core"."users' or 'users') into (schema, table)."""
    if '"."' in db_table:
        schema, table = db_table.split('"."', 1)
        return schema.strip('"'), table.strip('"')
    return "", db_table.strip('"')


def table_ref(schema: str, table: str) -> str:
    """Render a schema-qualified (or bare, when schema is '') table reference."""
    if schema:
        return f"{quote_identifier(schema, 'schema')}.{quote_identifier(table, 'table')}"
    return quote_identifier(table, "table")


# --- Schemas --------------------------------------------------------------------------


def create_schema(schema: str) -> str:
    return f"CREATE SCHEMA {quote_identifier(schema, 'schema')}"


def drop_schema(schema: str) -> str:
    # No CASCADE: reversing must fail loudly rather than drop objects it did not create.
    return f"DROP SCHEMA {quote_identifier(schema, 'schema')}"


# --- Functions ------------------------------------------------------------------------


def _split_arguments(arguments: str) -> list[str]:
    """Split a function's argument list on top-level commas (not inside parentheses)."""
    parts, depth, current = [], 0, []
    for char in arguments:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return parts


def function_signature(arguments: str) -> str:
    """The argument list as DROP FUNCTION takes it: 'a int DEFAULT 1' -> 'a int'."""
    return ", ".join(
        re.split(r"\s+(?:DEFAULT\b|=)", part, maxsplit=1, flags=re.IGNORECASE)[0].strip()
        for part in _split_arguments(arguments)
    )


def _dollar_quote(body: str) -> str:
    """Wrap a function body in dollar quotes whose tag does not occur in the body."""
    tag = "$$"
    if tag in body:
        used = set(_DOLLAR_TAG.findall(body))
        tag = next(f"$fn{n}$" for n in range(1000) if f"$fn{n}$" not in used)
    return f"{tag}{body}{tag}"


def create_function(
    name: str,
    arguments: str,
    returns: str,
    body: str,
    *,
    language: str = "plpgsql",
    volatility: str = "VOLATILE",
    strict: bool = False,
    parallel_safe: bool = False,
    security_definer: bool = False,
    search_path: str | None = None,
    settings: dict[str, str] | None = None,
) -> str:
    """CREATE OR REPLACE FUNCTION with the body frozen in dollar quotes.

    `arguments` and `returns` are SQL type text written in a migration, never user
    input; `body` is the function's source as the migration freezes it. `settings`: what
    else the function runs with (SET name = value, after search_path); given here rather
    than by ALTER FUNCTION, a CREATE OR REPLACE that restores the function restores them
    too (it replaces every SET clause).
    """
    if volatility not in VOLATILITIES:
        raise ValueError(f"volatility {volatility!r} is not one of {', '.join(VOLATILITIES)}")
    validate_identifier(language, "language")
    options = [f"LANGUAGE {language}"]
    if volatility != "VOLATILE":
        options.append(volatility)
    if strict:
        options.append("STRICT")
    if parallel_safe:
        options.append("PARALLEL SAFE")
    if security_definer:
        options.append("SECURITY DEFINER")
    if search_path is not None:
        schemas = ", ".join(
            quote_identifier(s.strip(), "schema") for s in search_path.split(",") if s.strip()
        )
        # An empty search_path ('') pins it to pg_catalog only.
        options.append(f"SET search_path = {schemas or chr(39) * 2}")
    for setting, value in (settings or {}).items():
        options.append(f"SET {quote_identifier(setting, 'setting')} = {_setting_value(value)}")
    return (
        f"CREATE OR REPLACE FUNCTION {qualified_name(name, 'function')}({arguments})\n"
        f"RETURNS {returns} {' '.join(options)} AS {_dollar_quote(body)}"
    )


def drop_function(name: str, arguments: str) -> str:
    return f"DROP FUNCTION {qualified_name(name, 'function')}({function_signature(arguments)})"


# --- Roles and privileges ------------------------------------------------------------

# What the runtime role may never be: a superuser, a role that bypasses row level
# security, a login role (the application reaches it only through SET ROLE), or one
# that creates databases or roles.
RUNTIME_ROLE_ATTRIBUTES = "NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _role_literal(role: str) -> str:
    """A validated role name as a string literal (validation excludes quotes)."""
    return "'" + validate_identifier(role, "role") + "'"


def ensure_runtime_role(role: str) -> str:
    """Create the runtime role when absent; strip any dangerous attribute it already has.

    Roles belong to the cluster, not the database: a role made by another database's
    migrations (or by a DBA) is reused, and only altered if it could bypass RLS.
    """
    literal, quoted = _role_literal(role), quote_identifier(role, "role")
    return (
        "DO $$\n"
        "BEGIN\n"
        f"  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal}) THEN\n"
        f"    CREATE ROLE {quoted} {RUNTIME_ROLE_ATTRIBUTES};\n"
        "  ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = "
        f"{literal} AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole "
        "OR rolinherit)) THEN\n"
        f"    ALTER ROLE {quoted} {RUNTIME_ROLE_ATTRIBUTES};\n"
        "  END IF;\n"
        "END\n"
        "$$"
    )


def drop_role_if_unused(role: str) -> str:
    """Drop the role unless another database still grants it something (then keep it)."""
    literal, quoted = _role_literal(role), quote_identifier(role, "role")
    return (
        "DO $$\n"
        "BEGIN\n"
        f"  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {literal}) THEN\n"
        f"    DROP ROLE {quoted};\n"
        "  END IF;\n"
        "EXCEPTION WHEN dependent_objects_still_exist THEN\n"
        f"  RAISE NOTICE 'role % is still used by another database: kept', {literal};\n"
        "END\n"
        "$$"
    )


def grant_schema_usage(schema: str, role: str) -> str:
    return (
        f"GRANT USAGE ON SCHEMA {quote_identifier(schema, 'schema')} "
        f"TO {quote_identifier(role, 'role')}"
    )


def revoke_schema_usage(schema: str, role: str) -> str:
    return (
        f"REVOKE USAGE ON SCHEMA {quote_identifier(schema, 'schema')} "
        f"FROM {quote_identifier(role, 'role')}"
    )


def _privileges(privileges: tuple[str, ...]) -> str:
    if not privileges or any(p not in TABLE_PRIVILEGES for p in privileges):
        raise ValueError(
            f"table privileges {privileges!r} must be some of {', '.join(TABLE_PRIVILEGES)}"
        )
    return ", ".join(privileges)


def grant_table_privileges(schema: str, table: str, role: str, privileges: tuple[str, ...]) -> str:
    return (
        f"GRANT {_privileges(privileges)} ON {table_ref(schema, table)} "
        f"TO {quote_identifier(role, 'role')}"
    )


def revoke_table_privileges(schema: str, table: str, role: str, privileges: tuple[str, ...]) -> str:
    return (
        f"REVOKE {_privileges(privileges)} ON {table_ref(schema, table)} "
        f"FROM {quote_identifier(role, 'role')}"
    )


# --- Row level security -----------------------------------------------------------------


def tenant_predicate(column: str = "tenant_id", *, shared_rows: bool = False) -> str:
    """The tenant policy's condition: the row belongs to the tenant of the current context.

    With `shared_rows`, rows whose tenant column is NULL (platform-wide rows, such as
    global translations) are visible to every tenant as well.
    """
    predicate = f"{quote_identifier(column, 'column')} = app.current_tenant()"
    if shared_rows:
        predicate = f"{quote_identifier(column, 'column')} IS NULL OR {predicate}"
    return predicate


def enable_row_level_security(schema: str, table: str, *, force: bool = True) -> list[str]:
    statements = [f"ALTER TABLE {table_ref(schema, table)} ENABLE ROW LEVEL SECURITY"]
    if force:
        # Without FORCE the table owner (the role migrations run as) bypasses every policy.
        statements.append(f"ALTER TABLE {table_ref(schema, table)} FORCE ROW LEVEL SECURITY")
    return statements


def disable_row_level_security(schema: str, table: str, *, force: bool = True) -> list[str]:
    statements = []
    if force:
        statements.append(f"ALTER TABLE {table_ref(schema, table)} NO FORCE ROW LEVEL SECURITY")
    statements.append(f"ALTER TABLE {table_ref(schema, table)} DISABLE ROW LEVEL SECURITY")
    return statements


POLICY_COMMANDS = ("ALL", "SELECT", "INSERT", "UPDATE", "DELETE")


def create_policy(
    name: str,
    schema: str,
    table: str,
    *,
    using: str | None,
    with_check: str | None = None,
    command: str = "ALL",
) -> str:
    """CREATE POLICY; `using`/`with_check` are SQL conditions written in code, never input."""
    if command not in POLICY_COMMANDS:
        raise ValueError(f"policy command {command!r} is not one of {', '.join(POLICY_COMMANDS)}")
    if using is None and with_check is None:
        raise ValueError(f"policy {name!r} needs a USING or a WITH CHECK condition")
    sql = f"CREATE POLICY {quote_identifier(name, 'policy')} ON {table_ref(schema, table)}"
    if command != "ALL":
        sql += f" FOR {command}"
    if using is not None:
        sql += f" USING ({using})"
    if with_check is not None:
        sql += f" WITH CHECK ({with_check})"
    return sql


def drop_policy(name: str, schema: str, table: str) -> str:
    return f"DROP POLICY {quote_identifier(name, 'policy')} ON {table_ref(schema, table)}"


# --- Triggers -------------------------------------------------------------------------


def trigger_name(stem: str, kind: str) -> str:
    """The seed's trigger naming: trg_<table>_<kind>, e.g. trg_users_touch."""
    return validate_identifier(f"trg_{stem}_{kind}", "trigger")


def policy_name(stem: str) -> str:
    """The seed's policy naming: rls_<table>_tenant, e.g. rls_users_tenant."""
    return validate_identifier(f"rls_{stem}_tenant", "policy")


def create_trigger(
    name: str,
    schema: str,
    table: str,
    *,
    timing: str,
    events: tuple[str, ...],
    function: str,
    arguments: tuple[str, ...] = (),
    replace: bool = False,
) -> str:
    """CREATE TRIGGER ... FOR EACH ROW EXECUTE FUNCTION <function>(<arguments>).

    Trigger arguments reach the function as TG_ARGV; they are column names here
    (validated), rendered as string literals. `replace`: CREATE OR REPLACE TRIGGER
    (PostgreSQL 14+), which changes an existing trigger in place.
    """
    if timing not in TRIGGER_TIMINGS:
        raise ValueError(f"trigger timing {timing!r} is not one of {', '.join(TRIGGER_TIMINGS)}")
    if not events or any(event not in TRIGGER_EVENTS for event in events):
        raise ValueError(f"trigger events {events!r} must be some of {', '.join(TRIGGER_EVENTS)}")
    args = ", ".join(f"'{validate_identifier(a, 'trigger argument')}'" for a in arguments)
    verb = "CREATE OR REPLACE TRIGGER" if replace else "CREATE TRIGGER"
    return (
        f"{verb} {quote_identifier(name, 'trigger')} {timing} {' OR '.join(events)} "
        f"ON {table_ref(schema, table)} FOR EACH ROW "
        f"EXECUTE FUNCTION {qualified_name(function, 'function')}({args})"
    )


def drop_trigger(name: str, schema: str, table: str) -> str:
    return f"DROP TRIGGER {quote_identifier(name, 'trigger')} ON {table_ref(schema, table)}"


# --- Foreign keys -----------------------------------------------------------------------


def add_foreign_key(
    name: str,
    schema: str,
    table: str,
    columns: tuple[str, ...],
    to_schema: str,
    to_table: str,
    to_columns: tuple[str, ...],
    on_delete: str = "NO ACTION",
) -> str:
    """ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY over one or more columns."""
    if not columns or len(columns) != len(to_columns):
        raise ValueError(
            f"foreign key {name!r}: {len(columns)} column(s) cannot reference "
            f"{len(to_columns)} column(s)"
        )
    cols = ", ".join(quote_identifier(c, "column") for c in columns)
    to_cols = ", ".join(quote_identifier(c, "column") for c in to_columns)
    return (
        f"ALTER TABLE {table_ref(schema, table)} "
        f"ADD CONSTRAINT {quote_identifier(name, 'constraint')} "
        f"FOREIGN KEY ({cols}) REFERENCES {table_ref(to_schema, to_table)} ({to_cols})"
        f"{on_delete_clause(on_delete)}"
    )


def readd_not_valid(add_constraint: str, name: str) -> str:
    """`ALTER TABLE t ADD CONSTRAINT name ...` as a re-runnable NOT VALID step.

    ALTER TABLE t DROP CONSTRAINT IF EXISTS name, ADD CONSTRAINT name ... NOT VALID: the
    existing rows are not checked (VALIDATE CONSTRAINT does that next, without blocking
    writes), and a second run after an interruption replaces the key instead of failing.
    """
    head, separator, rest = add_constraint.partition(" ADD CONSTRAINT ")
    if not separator or not head.startswith("ALTER TABLE "):
        raise ValueError(f"not an ALTER TABLE ... ADD CONSTRAINT statement: {add_constraint!r}")
    quoted = quote_identifier(name, "constraint")
    return f"{head} DROP CONSTRAINT IF EXISTS {quoted}, ADD CONSTRAINT {rest} NOT VALID"


def drop_constraint(name: str, schema: str, table: str) -> str:
    return (
        f"ALTER TABLE {table_ref(schema, table)} "
        f"DROP CONSTRAINT {quote_identifier(name, 'constraint')}"
    )


def on_delete_clause(rule: str) -> str:
    """The ON DELETE clause appended to a foreign key constraint (leading space included)."""
    if rule not in ON_DELETE_RULES:
        raise ValueError(f"ON DELETE rule {rule!r} is not one of {', '.join(ON_DELETE_RULES)}")
    # NO ACTION is PostgreSQL's default; rendering nothing keeps the DDL as the seed writes it.
    return "" if rule == "NO ACTION" else f" ON DELETE {rule}"


# --- Zero-downtime NOT NULL columns (AddNotNullColumnSafely) ----------------------------


def not_null_check_name(table: str, column: str) -> str:
    """The temporary CHECK (column IS NOT NULL) constraint: chk_<table>_<column>_not_null."""
    return validate_identifier(f"chk_{table}_{column}_not_null", "constraint")


def add_nullable_column(schema: str, table: str, column: str, db_type: str, default: str) -> str:
    """Step 1: add the column nullable, with its default for the rows inserted from now on.

    SET DEFAULT rather than ADD COLUMN ... DEFAULT: existing rows stay NULL and are filled
    by the batched backfill, so even a volatile default (gen_random_uuid()) never rewrites
    the table under its lock. One statement, so no row is inserted between the two
    changes; IF NOT EXISTS makes a re-run after an interruption continue. `db_type` and
    `default` are SQL written by Django's field, not input; the default's values travel
    as parameters.
    """
    column = quote_identifier(column, "column")
    return (
        f"ALTER TABLE {table_ref(schema, table)} ADD COLUMN IF NOT EXISTS {column} {db_type}, "
        f"ALTER COLUMN {column} SET DEFAULT {default}"
    )


def backfill_in_batches(
    schema: str, table: str, column: str, key: str, *, value: str = "DEFAULT", batch_size: int
) -> str:
    """Step 2: fill the NULLs of existing rows in primary key ranges, one COMMIT per range.

    A DO block run outside a transaction block may COMMIT (PostgreSQL 11+), so each batch
    is its own short transaction. Only rows still NULL are touched, so a re-run after an
    interruption continues where it stopped; rows inserted meanwhile already have the
    column default. `value` is an SQL expression frozen in the migration (DEFAULT: the
    column default, evaluated per row). Progress is reported with RAISE NOTICE. Under row
    level security the role would see (and fill) no rows, so it refuses instead.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch size {batch_size!r} must be a positive integer")
    ref = table_ref(schema, table)
    column_q, key_q = quote_identifier(column, "column"), quote_identifier(key, "column")
    label = ".".join(part for part in (schema, table, column) if part)
    body = (
        "\nDECLARE\n"
        "  lo bigint;\n"
        "  hi bigint;\n"
        "  n bigint;\n"
        "  done bigint := 0;\n"
        "BEGIN\n"
        f"  IF row_security_active('{ref}') THEN\n"
        f"    RAISE EXCEPTION 'backfill of {label}: row level security hides rows from role %; "
        "run migrate as a role with BYPASSRLS', current_user;\n"
        "  END IF;\n"
        f"  SELECT min({key_q}), max({key_q}) INTO lo, hi FROM {ref};\n"
        "  WHILE lo <= hi LOOP\n"
        f"    UPDATE {ref} SET {column_q} = {value}\n"
        f"      WHERE {key_q} >= lo AND {key_q} < lo + {batch_size} AND {column_q} IS NULL;\n"
        "    GET DIAGNOSTICS n = ROW_COUNT;\n"
        "    done := done + n;\n"
        "    COMMIT;\n"
        f"    RAISE NOTICE 'backfill {label}: % rows filled, keys up to % of %', "
        f"done, least(lo + {batch_size - 1}, hi), hi;\n"
        f"    lo := lo + {batch_size};\n"
        "  END LOOP;\n"
        "END\n"
    )
    return f"DO {_dollar_quote(body)}"


def add_not_null_check(schema: str, table: str, column: str, name: str) -> str:
    """Step 3: CHECK (column IS NOT NULL) NOT VALID: new rows are checked, old ones not yet.

    Dropped first if present, so that a re-run after an interruption starts this step over.
    """
    name = quote_identifier(name, "constraint")
    return (
        f"ALTER TABLE {table_ref(schema, table)} DROP CONSTRAINT IF EXISTS {name}, "
        f"ADD CONSTRAINT {name} CHECK ({quote_identifier(column, 'column')} IS NOT NULL) NOT VALID"
    )


def validate_constraint(schema: str, table: str, name: str) -> str:
    """Step 4: check the existing rows under SHARE UPDATE EXCLUSIVE (reads and writes go on)."""
    return (
        f"ALTER TABLE {table_ref(schema, table)} "
        f"VALIDATE CONSTRAINT {quote_identifier(name, 'constraint')}"
    )


def set_not_null(schema: str, table: str, column: str) -> str:
    """Step 5: SET NOT NULL, without a table scan thanks to the validated CHECK (PG 12+)."""
    return (
        f"ALTER TABLE {table_ref(schema, table)} "
        f"ALTER COLUMN {quote_identifier(column, 'column')} SET NOT NULL"
    )


def drop_constraint_if_exists(name: str, schema: str, table: str) -> str:
    return (
        f"ALTER TABLE {table_ref(schema, table)} "
        f"DROP CONSTRAINT IF EXISTS {quote_identifier(name, 'constraint')}"
    )


def drop_column(schema: str, table: str, column: str) -> str:
    return (
        f"ALTER TABLE {table_ref(schema, table)} DROP COLUMN {quote_identifier(column, 'column')}"
    )


# --- Microservice roles ---------------------------------------------------------------
# A microservice (comms, billing) runs as a role of its own with exactly the runtime
# role's attributes, so ensure_runtime_role(), drop_role_if_unused() and
# grant_schema_usage() above serve it unchanged. What is new: the role's name, and
# grants limited to some columns of a table (a service reads core.users' email, never
# its password hash).

COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


def service_role_name(runtime_role: str, service: str) -> str:
    """The role of a microservice: <runtime role>_<service>, e.g. hzm_app_comms."""
    validate_name_part(service, "service")
    return validate_identifier(f"{runtime_role}_{service}", "service role")


def _column_privileges(privileges: tuple[str, ...], columns: tuple[str, ...]) -> str:
    if not privileges or any(p not in COLUMN_PRIVILEGES for p in privileges):
        raise ValueError(
            f"column privileges {privileges!r} must be some of {', '.join(COLUMN_PRIVILEGES)}"
        )
    if not columns:
        raise ValueError("a column grant needs at least one column")
    names = ", ".join(quote_identifier(column, "column") for column in columns)
    return ", ".join(f"{privilege} ({names})" for privilege in privileges)


def grant_column_privileges(
    schema: str, table: str, role: str, privileges: tuple[str, ...], columns: tuple[str, ...]
) -> str:
    return (
        f"GRANT {_column_privileges(privileges, columns)} ON {table_ref(schema, table)} "
        f"TO {quote_identifier(role, 'role')}"
    )


def revoke_column_privileges(
    schema: str, table: str, role: str, privileges: tuple[str, ...], columns: tuple[str, ...]
) -> str:
    return (
        f"REVOKE {_column_privileges(privileges, columns)} ON {table_ref(schema, table)} "
        f"FROM {quote_identifier(role, 'role')}"
    )


# Tenant foreign keys with an ON DELETE rule. A composite key (tenant_id, x_id) beside
# x_id's own key must follow that key's rule: the two are separate constraints whose
# triggers fire in no promised order, so a NO ACTION composite key can refuse the very
# delete the other one cascades (or sets to NULL). SET NULL names its columns
# (PostgreSQL 15+): tenant_id is NOT NULL and stays.

TENANT_KEY_ON_DELETE_RULES = ("CASCADE", "SET NULL")


def tenant_key_on_delete_clause(rule: str, columns: tuple[str, ...]) -> str:
    """' ON DELETE CASCADE', or ' ON DELETE SET NULL ("x_id")' for all columns but tenant_id."""
    if rule not in TENANT_KEY_ON_DELETE_RULES:
        raise ValueError(
            f"ON DELETE rule {rule!r} of a tenant foreign key is not one of "
            f"{', '.join(TENANT_KEY_ON_DELETE_RULES)}"
        )
    if rule == "CASCADE":
        return " ON DELETE CASCADE"
    nulled = [column for column in columns if column != "tenant_id"]
    if not nulled or len(nulled) == len(columns):
        raise ValueError(
            f"ON DELETE SET NULL of a tenant foreign key over {columns!r}: the key must "
            "include tenant_id and at least one other column"
        )
    return f" ON DELETE SET NULL ({', '.join(quote_identifier(c, 'column') for c in nulled)})"


# --- Function privileges, options and statement triggers ------------------------------


def grant_execute(function: str, arguments: str, role: str) -> list[str]:
    """Only `role` may call the function: PostgreSQL grants EXECUTE to PUBLIC by default."""
    signature = _function_ref(function, arguments)
    return [
        f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION {signature} TO {quote_identifier(role, 'role')}",
    ]


def revoke_execute(function: str, arguments: str, role: str) -> list[str]:
    """Undo grant_execute(): PostgreSQL's default (EXECUTE for PUBLIC) back."""
    signature = _function_ref(function, arguments)
    return [
        f"REVOKE EXECUTE ON FUNCTION {signature} FROM {quote_identifier(role, 'role')}",
        f"GRANT EXECUTE ON FUNCTION {signature} TO PUBLIC",
    ]


def grant_function_execute(function: str, arguments: str, role: str) -> str:
    """EXECUTE on a function for one more role (grant_execute() already took it from PUBLIC)."""
    return (
        f"GRANT EXECUTE ON FUNCTION {_function_ref(function, arguments)} "
        f"TO {quote_identifier(role, 'role')}"
    )


def revoke_function_execute(function: str, arguments: str, role: str) -> str:
    return (
        f"REVOKE EXECUTE ON FUNCTION {_function_ref(function, arguments)} "
        f"FROM {quote_identifier(role, 'role')}"
    )


_SETTING_VALUE = re.compile(r"[a-z0-9_.]+\Z")


def _setting_value(value: str) -> str:
    """A function setting's value, a plain word: on, off, 0, a name."""
    if not isinstance(value, str) or not _SETTING_VALUE.match(value):
        raise ValueError(f"setting value {value!r} must be a plain word (letters, digits, _ .)")
    return value


def set_function_option(function: str, arguments: str, setting: str, value: str) -> str:
    """ALTER FUNCTION ... SET setting = value (a plain word: on, off, 0, a name)."""
    return (
        f"ALTER FUNCTION {_function_ref(function, arguments)} "
        f"SET {quote_identifier(setting, 'setting')} = {_setting_value(value)}"
    )


def reset_function_option(function: str, arguments: str, setting: str) -> str:
    return (
        f"ALTER FUNCTION {_function_ref(function, arguments)} "
        f"RESET {quote_identifier(setting, 'setting')}"
    )


def _function_ref(function: str, arguments: str) -> str:
    """A function with its argument types, as GRANT and ALTER FUNCTION name it."""
    return f"{qualified_name(function, 'function')}({function_signature(arguments)})"


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
        referencing.append(f"OLD TABLE AS {quote_identifier(old_table, 'transition table')}")
    if new_table is not None:
        referencing.append(f"NEW TABLE AS {quote_identifier(new_table, 'transition table')}")
    clause = f" REFERENCING {' '.join(referencing)}" if referencing else ""
    return (
        f"CREATE TRIGGER {quote_identifier(name, 'trigger')} AFTER {event} "
        f"ON {table_ref(schema, table)}{clause} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {qualified_name(function, 'function')}()"
    )


# --- Hardening: what the runtime and service roles may not do (issue 11) -----------------


def tenant_predicate_once(column: str = "tenant_id", *, shared_rows: bool = False) -> str:
    """tenant_predicate() with the tenant read once per statement, not once per row.

    `(SELECT app.current_tenant())` is an InitPlan: PostgreSQL evaluates it once and
    compares every row with the result, where a bare call in a policy runs for each row
    the plan does not filter by an index first.
    """
    predicate = f"{quote_identifier(column, 'column')} = (SELECT app.current_tenant())"
    if shared_rows:
        predicate = f"{quote_identifier(column, 'column')} IS NULL OR {predicate}"
    return predicate


def alter_policy(
    name: str,
    schema: str,
    table: str,
    *,
    using: str | None = None,
    with_check: str | None = None,
    to: str | None = None,
) -> str:
    """ALTER POLICY: new roles (`to`: a role name, PUBLIC or CURRENT_USER) and conditions."""
    if using is None and with_check is None and to is None:
        raise ValueError(f"policy {name!r}: nothing to alter")
    sql = f"ALTER POLICY {quote_identifier(name, 'policy')} ON {table_ref(schema, table)}"
    if to is not None:
        role = to if to in ("PUBLIC", "CURRENT_USER") else quote_identifier(to, "role")
        sql += f" TO {role}"
    if using is not None:
        sql += f" USING ({using})"
    if with_check is not None:
        sql += f" WITH CHECK ({with_check})"
    return sql


def revoke_public_execute(function: str, arguments: str) -> str:
    """PostgreSQL grants EXECUTE to PUBLIC by default; a definer function must not keep it."""
    return f"REVOKE EXECUTE ON FUNCTION {_function_ref(function, arguments)} FROM PUBLIC"


def grant_public_execute(function: str, arguments: str) -> str:
    return f"GRANT EXECUTE ON FUNCTION {_function_ref(function, arguments)} TO PUBLIC"


# The current database, for statements that must name it (GRANT ... ON DATABASE).
_ON_CURRENT_DATABASE = "DO $$\nBEGIN\n  EXECUTE format('{statement}', current_database());\nEND\n$$"


def revoke_database_temporary() -> str:
    """No temporary objects for PUBLIC: a TEMP table would outlive the transaction on a
    pooled connection and shadow an unqualified table (pg_temp comes first)."""
    return _ON_CURRENT_DATABASE.format(statement="REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC")


def grant_database_temporary() -> str:
    return _ON_CURRENT_DATABASE.format(statement="GRANT TEMPORARY ON DATABASE %I TO PUBLIC")


# Catalog functions PUBLIC may call that a tenant-facing role must not: large objects
# live outside every table and its row level security (a tenant could store one that
# another tenant's context reads back), and every web process's session is the same login,
# which after RESET ROLE may cancel or terminate the others' backends. They belong to the
# bootstrap superuser, so only a superuser can take them from PUBLIC; a migration run by any
# other owner leaves a notice, and the README's superuser set-up does it.
SUPERUSER_REVOKED_FUNCTIONS = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_import(text)",
    "lo_import(text, oid)",
    "lo_from_bytea(oid, bytea)",
    "pg_cancel_backend(integer)",
    "pg_terminate_backend(integer, bigint)",
)


def _if_superuser(statements: list[str], otherwise: str) -> str:
    body = "".join(f"    {statement};\n" for statement in statements)
    return (
        "DO $$\n"
        "BEGIN\n"
        "  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN\n"
        f"{body}"
        "  ELSE\n"
        f"    RAISE NOTICE '{otherwise}';\n"
        "  END IF;\n"
        "END\n"
        "$$"
    )


def revoke_catalog_functions() -> str:
    return _if_superuser(
        [
            f"REVOKE EXECUTE ON FUNCTION pg_catalog.{f} FROM PUBLIC"
            for f in SUPERUSER_REVOKED_FUNCTIONS
        ],
        "not a superuser: run the README''s superuser set-up to take large objects and "
        "backend signals from PUBLIC",
    )


def grant_catalog_functions() -> str:
    return _if_superuser(
        [
            f"GRANT EXECUTE ON FUNCTION pg_catalog.{f} TO PUBLIC"
            for f in SUPERUSER_REVOKED_FUNCTIONS
        ],
        "not a superuser: the catalog functions are left as they are",
    )


# --- The verified tenant context (hzm/db/context_tokens.py) ---------------------------------

CONTEXT_KEY_SCHEMA = "hzm_private"
CONTEXT_KEY_TABLE = f"{CONTEXT_KEY_SCHEMA}.context_keys"


def create_context_key_store(schema: str = CONTEXT_KEY_SCHEMA) -> list[str]:
    """An owner-only schema and table for the context keys: no grant to anyone, ever."""
    name = quote_identifier(schema, "schema")
    return [
        create_schema(schema),
        f"REVOKE ALL ON SCHEMA {name} FROM PUBLIC",
        f"CREATE TABLE {name}.context_keys (\n"
        "  position smallint PRIMARY KEY CHECK (position >= 1),\n"
        "  key bytea NOT NULL UNIQUE CHECK (octet_length(key) = 32)\n"
        ")",
        f"REVOKE ALL ON TABLE {name}.context_keys FROM PUBLIC",
    ]


VERIFYING_KEYS_FUNCTION = f"{CONTEXT_KEY_SCHEMA}.verifying_keys"


def invalidate_verifying_keys() -> str:
    """Make every session re-plan what folded hzm_private.verifying_keys() in: any ALTER
    FUNCTION updates its catalog row, which invalidates the plans that depend on it (COST
    100 is a SQL function's default, what the migration created: nothing else changes)."""
    return f"ALTER FUNCTION {qualified_name(VERIFYING_KEYS_FUNCTION)}() COST 100"


def drop_context_key_store(schema: str = CONTEXT_KEY_SCHEMA) -> list[str]:
    name = quote_identifier(schema, "schema")
    return [f"DROP TABLE {name}.context_keys", drop_schema(schema)]
