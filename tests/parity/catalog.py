"""A comparable snapshot of a database's catalog, read from pg_catalog, and a readable diff.

`snapshot()` needs only a DB-API cursor (psycopg or Django's wrapper), so the same
code reads the scratch database built from the seed SQL and the migrated test
database. Every section is a dict keyed by stable, qualified names, so `diff()`
can walk two snapshots and name each difference:

    columns core.users.email: type citext vs character varying(255)

Names PostgreSQL invents (`users_pkey`, `users_email_key`) differ between Django
and hand-written SQL, so primary keys and unique constraints are keyed by their
table and sorted columns ("keys"); every constraint is also listed by name
("named constraints") for the names a schema chose on purpose.
"""

from collections.abc import Sequence
from typing import Any

DEFAULT_SCHEMAS = ("app", "core", "cfg", "ops")

# Expressions and types are deparsed relative to the search_path, so it is pinned
# while reading: objects outside pg_catalog and public come out schema-qualified
# the same way on every server, whatever path the connection was opened with.
SNAPSHOT_SEARCH_PATH = "pg_catalog, public"

ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
IDENTITY = {"": None, "a": "always", "d": "by default"}
GENERATED = {"": None, "s": "stored", "v": "virtual"}
VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
PARALLEL = {"s": "safe", "r": "restricted", "u": "unsafe"}
FUNCTION_KIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
TRIGGER_ENABLED = {"O": "origin", "D": "disabled", "R": "replica", "A": "always"}
RELKIND = {"r": "table", "p": "partitioned table"}

TABLES_SQL = """
SELECT n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
"""

COLUMNS_SQL = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""

# Indexes that back a constraint are compared as constraints (their names are
# PostgreSQL's or Django's invention); the rest are compared by their own name.
INDEXES_SQL = """
SELECT n.nspname, i.relname, t.relname, pg_get_indexdef(x.indexrelid), x.indisunique, x.indisprimary
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
"""

CONSTRAINTS_SQL = """
SELECT n.nspname, t.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
             ORDER BY u.pos)::text[],
       rn.nspname, rt.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, pos)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
             ORDER BY u.pos)::text[],
       k.confdeltype, k.confupdtype, k.condeferrable, k.condeferred
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_class rt ON rt.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rt.relnamespace
WHERE n.nspname = ANY(%s)
"""

TRIGGERS_SQL = """
SELECT n.nspname, c.relname, g.tgname, pg_get_triggerdef(g.oid), g.tgenabled
FROM pg_trigger g
JOIN pg_class c ON c.oid = g.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT g.tgisinternal AND n.nspname = ANY(%s)
"""

POLICIES_SQL = """
SELECT schemaname, tablename, policyname, cmd, permissive, roles::text[], qual, with_check
FROM pg_policies
WHERE schemaname = ANY(%s)
"""

# Functions an extension installed into one of the schemas are the extension's, not ours.
FUNCTIONS_SQL = """
SELECT n.nspname, p.proname, oidvectortypes(p.proargtypes),
       pg_get_function_identity_arguments(p.oid), pg_get_function_result(p.oid), l.lanname,
       p.prokind, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef,
       p.proconfig, p.prosrc
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
"""

EXTENSIONS_SQL = "SELECT extname FROM pg_extension"


def snapshot(cursor: Any, schemas: Sequence[str] = DEFAULT_SCHEMAS) -> dict[str, Any]:
    """Read tables, columns, keys, indexes, triggers, policies, functions, extensions."""
    cursor.execute("SELECT current_setting('search_path')")
    (original_search_path,) = cursor.fetchone()
    cursor.execute("SELECT set_config('search_path', %s, false)", [SNAPSHOT_SEARCH_PATH])
    try:
        return _read(cursor, list(schemas))
    finally:
        cursor.execute("SELECT set_config('search_path', %s, false)", [original_search_path])


def _rows(cursor: Any, sql: str, schemas: list[str]) -> list[tuple[Any, ...]]:
    cursor.execute(sql, [schemas])
    return cursor.fetchall()


def _read(cursor: Any, schemas: list[str]) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "tables": {},
        "columns": {},
        "keys": {},
        "named constraints": {},
        "checks": {},
        "foreign keys": {},
        "indexes": {},
        "triggers": {},
        "policies": {},
        "functions": {},
        "extensions": [],
    }
    for schema, table, kind, rls, force_rls in _rows(cursor, TABLES_SQL, schemas):
        snap["tables"][f"{schema}.{table}"] = {
            "kind": RELKIND[kind],
            "row security": rls,
            "force row security": force_rls,
        }

    for schema, table, column, type_, notnull, expr, identity, generated in _rows(
        cursor, COLUMNS_SQL, schemas
    ):
        # pg_attrdef holds the generation expression of a generated column, not a default.
        snap["columns"][f"{schema}.{table}.{column}"] = {
            "type": type_,
            "not null": notnull,
            "default": None if generated else expr,
            "identity": IDENTITY[identity],
            "generated": GENERATED[generated],
            "generation": expr if generated else None,
        }

    for (
        schema,
        table,
        name,
        contype,
        definition,
        columns,
        ref_schema,
        ref_table,
        ref_columns,
        on_delete,
        on_update,
        deferrable,
        deferred,
    ) in _rows(cursor, CONSTRAINTS_SQL, schemas):
        qualified = f"{schema}.{table}"
        snap["named constraints"][f"{qualified}.{name}"] = definition
        if contype in ("p", "u"):
            kind = "primary key" if contype == "p" else "unique"
            key = f"{qualified} {kind} ({', '.join(sorted(columns))})"
            _add_unique(snap["keys"], key, definition)
        elif contype == "f":
            referenced = f"{ref_schema}.{ref_table} ({', '.join(ref_columns)})"
            key = f"{qualified} ({', '.join(columns)}) -> {referenced}"
            _add_unique(
                snap["foreign keys"],
                key,
                {
                    "on delete": ACTIONS[on_delete],
                    "on update": ACTIONS[on_update],
                    "deferrable": deferrable,
                    "initially deferred": deferred,
                },
            )
        else:
            # Checks (and exclusion constraints) are compared by definition: names differ.
            snap["checks"].setdefault(qualified, []).append(definition)
    for definitions in snap["checks"].values():
        definitions.sort()

    for schema, name, table, definition, unique, primary in _rows(cursor, INDEXES_SQL, schemas):
        snap["indexes"][f"{schema}.{name}"] = {
            "table": f"{schema}.{table}",
            "definition": definition,
            "unique": unique,
            "primary": primary,
        }

    for schema, table, name, definition, enabled in _rows(cursor, TRIGGERS_SQL, schemas):
        snap["triggers"][f"{schema}.{table}.{name}"] = {
            "table": f"{schema}.{table}",
            "definition": definition,
            "enabled": TRIGGER_ENABLED[enabled],
        }

    for schema, table, name, cmd, permissive, roles, qual, with_check in _rows(
        cursor, POLICIES_SQL, schemas
    ):
        snap["policies"][f"{schema}.{table}.{name}"] = {
            "table": f"{schema}.{table}",
            "command": cmd,
            "permissive": permissive,
            "roles": sorted(roles),
            "using": qual,
            "with check": with_check,
        }

    for (
        schema,
        name,
        arg_types,
        arguments,
        result,
        language,
        kind,
        volatility,
        strict,
        parallel,
        security_definer,
        config,
        body,
    ) in _rows(cursor, FUNCTIONS_SQL, schemas):
        # Keyed by argument types: renaming a parameter is a difference, not a new function.
        snap["functions"][f"{schema}.{name}({arg_types})"] = {
            "kind": FUNCTION_KIND[kind],
            "arguments": arguments,
            "result": result,
            "language": language,
            "volatility": VOLATILITY[volatility],
            "strict": strict,
            "parallel": PARALLEL[parallel],
            "security definer": security_definer,
            "config": sorted(config) if config else None,
            "body": normalize_whitespace(body),
        }

    cursor.execute(EXTENSIONS_SQL)
    snap["extensions"] = sorted(name for (name,) in cursor.fetchall())
    return snap


def _add_unique(section: dict[str, Any], key: str, value: Any) -> None:
    # Two constraints on the same columns are a real difference (a duplicate), so the
    # second one gets its own entry instead of overwriting the first.
    suffix, n = "", 1
    while key + suffix in section:
        n += 1
        suffix = f" #{n}"
    section[key + suffix] = value


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace to one space, so layout changes compare equal."""
    return " ".join(text.split())


def diff(expected: Any, actual: Any) -> list[str]:
    """Readable lines naming each difference between two snapshots (expected vs actual)."""
    return _diff(expected, actual, ())


def _diff(expected: Any, actual: Any, path: tuple[str, ...]) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for key in sorted(expected.keys() | actual.keys()):
            where = _where((*path, key))
            if key not in actual:
                lines.append(f"{where}: missing (expected {_show(expected[key])})")
            elif key not in expected:
                lines.append(f"{where}: unexpected {_show(actual[key])}")
            else:
                lines += _diff(expected[key], actual[key], (*path, key))
        return lines
    if expected == actual:
        return []
    # Below a section's objects (depth 2) the last key is a field of the object:
    # "<section> <object>: <field> <expected> vs <actual>".
    where, label = (_where(path[:-1]), f"{path[-1]} ") if len(path) > 2 else (_where(path), "")
    if isinstance(expected, list) and isinstance(actual, list):
        missing = [item for item in expected if item not in actual]
        unexpected = [item for item in actual if item not in expected]
        if missing or unexpected:
            return [f"{where}: {label}missing {_show(item)}" for item in missing] + [
                f"{where}: {label}unexpected {_show(item)}" for item in unexpected
            ]
    return [f"{where}: {label}{_show(expected)} vs {_show(actual)}"]


def _where(path: tuple[str, ...]) -> str:
    # The first key is the section ("columns"); the rest name the object in it.
    if not path:
        return "snapshot"
    return f"{path[0]} {'.'.join(path[1:])}" if len(path) > 1 else path[0]


def _show(value: Any) -> str:
    # Plain strings read best unquoted; quote them only when quotes carry information.
    if isinstance(value, str) and value and value == value.strip():
        return value
    return repr(value)
