"""The doctor: the live database against what the code declares.

What is declared comes from two places, so neither can drift unseen:
- the applied migrations' own toolkit operations (EnableTenantRLS, CreatePolicy,
  Attach*Trigger, GrantTablePrivileges, AddTenantForeignKey, InstallFunction), read
  from the migration graph exactly as they will run;
- the models: every table with a tenant_id column must have row level security
  enabled and forced, whatever its migrations say.
Each finding names the object and what is wrong with it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader

from hzm.db import operations as ops
from hzm.db import sql
from hzm.db.context_keys import installed_fingerprints, key_fingerprints, key_store_exists
from hzm.secrets import context_keys

PLATFORM_SCHEMAS = ("app", "core", "cfg", "ops", "comms", "billing")
ALL_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.where}: {self.problem}"


@dataclass
class Declared:
    """What the applied migrations declare, by qualified table name."""

    policies: dict[str, set[str]] = field(default_factory=dict)
    triggers: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> name -> function
    grants: dict[str, set[str]] = field(default_factory=dict)
    foreign_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> ON DELETE
    service_roles: set[str] = field(default_factory=set)
    # role -> table -> privileges granted on the whole table (GrantServiceTablePrivileges,
    # GrantNamedTablePrivileges); column grants are listed apart, as (privilege, column).
    service_grants: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    service_column_grants: dict[str, dict[str, set[tuple[str, str]]]] = field(default_factory=dict)
    functions: dict[str, bool] = field(default_factory=dict)  # name -> security definer
    # The runtime role's column grants (RestrictColumnPrivileges), as (privilege, column).
    column_grants: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # Function signature ('app.f(integer)') -> the roles granted EXECUTE on it.
    executes: dict[str, set[str]] = field(default_factory=dict)
    # Definer functions every role may execute, as a migration declares (GrantPublicExecute).
    public_executes: set[str] = field(default_factory=set)


def declared_objects(using: str = DEFAULT_DB_ALIAS) -> Declared:
    """Collect the toolkit operations of every applied migration, in graph order."""
    loader = MigrationLoader(connections[using])
    state = loader.project_state()
    declared = Declared()

    def model_of(app_label: str, model_name: str) -> Any:
        app_label, _, name = (
            model_name.rpartition(".") if "." in model_name else (app_label, "", model_name)
        )
        return state.apps.get_model(app_label, name)

    def table_of(app_label: str, model_name: str) -> str:
        schema, table = sql.split_db_table(model_of(app_label, model_name)._meta.db_table)
        return f"{schema}.{table}" if schema else table

    table_of.model_of = model_of  # type: ignore[attr-defined]

    # Each migration once, in an order that respects every dependency: a later operation
    # (RestrictColumnPrivileges) may narrow what an earlier one declared.
    plan: dict[tuple[str, str], None] = {}
    for key in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(key):
            plan.setdefault(node, None)
    for app_label, name in plan:
        if (app_label, name) not in loader.applied_migrations:
            continue
        for operation in loader.graph.nodes[app_label, name].operations:
            _declare(declared, app_label, operation, table_of)
    return declared


def _declare(declared: Declared, app_label: str, operation: Any, table_of: Any) -> None:
    if isinstance(operation, ops.InstallFunction):
        declared.functions[operation.name] = operation.security_definer
        return
    if isinstance(operation, ops.GrantExecute | ops.GrantServiceExecute):
        role = (
            ops.service_role(operation.service)
            if isinstance(operation, ops.GrantServiceExecute)
            else ops.runtime_role()
        )
        declared.executes.setdefault(operation.name, set()).add(role)
        return
    if isinstance(operation, ops.GrantPublicExecute):
        declared.public_executes.add(operation.name)
        return
    if isinstance(operation, ops.RevokeExecute):
        declared.executes.get(operation.name, set()).discard(ops.runtime_role())
        return
    if isinstance(operation, ops.RestrictColumnPrivileges):
        model = table_of.model_of(app_label, operation.model_name)
        table = table_of(app_label, operation.model_name)
        columns = {
            f.column for f in model._meta.concrete_fields if f.column not in operation.exclude
        }
        if operation.service is None:
            grants, column_grants = declared.grants, declared.column_grants
        else:
            role = ops.service_role(operation.service)
            grants = declared.service_grants.setdefault(role, {})
            column_grants = declared.service_column_grants.setdefault(role, {})
        grants.setdefault(table, set()).difference_update(operation.privileges)
        column_grants.setdefault(table, set()).update(
            (privilege, column) for privilege in operation.privileges for column in columns
        )
        return
    if isinstance(operation, ops.EnsureServiceRole):
        declared.service_roles.add(ops.service_role(operation.service))
        return
    if isinstance(operation, ops.GrantNamedTablePrivileges):
        table = f"{operation.schema or 'public'}.{operation.table}"
        if operation.service is None:
            declared.grants.setdefault(table, set()).update(operation.privileges)
        else:
            role = ops.service_role(operation.service)
            declared.service_grants.setdefault(role, {}).setdefault(table, set()).update(
                operation.privileges
            )
        return
    if not isinstance(operation, ops.TableOperation):
        return
    table = table_of(app_label, operation.model_name)
    if "." not in table:
        table = f"public.{table}"  # Django's own tables (django_admin_log, ...)
    bare = table.rpartition(".")[2]
    stem = operation.stem or bare
    if isinstance(operation, ops.EnableTenantRLS):
        declared.policies.setdefault(table, set()).add(sql.policy_name(stem))
    elif isinstance(operation, ops.CreatePolicy):
        declared.policies.setdefault(table, set()).add(operation.name)
    elif isinstance(operation, ops.AttachTrigger):
        name = sql.trigger_name(stem, operation.kind)
        declared.triggers.setdefault(table, {})[name] = operation.function
    elif isinstance(operation, ops.GrantTablePrivileges):
        declared.grants.setdefault(table, set()).update(operation.privileges)
    elif isinstance(operation, ops.GrantServiceTablePrivileges):
        role = ops.service_role(operation.service)
        if operation.columns is None:
            declared.service_grants.setdefault(role, {}).setdefault(table, set()).update(
                operation.privileges
            )
        else:
            declared.service_column_grants.setdefault(role, {}).setdefault(table, set()).update(
                (privilege, column)
                for privilege in operation.privileges
                for column in operation.columns
            )
    elif isinstance(operation, ops.AddTenantForeignKey):
        declared.foreign_keys.setdefault(table, {})[operation.name] = operation.on_delete


def tenant_tables() -> list[str]:
    """Qualified names of the platform tables that have a tenant_id column."""
    tables = []
    for model in apps.get_models():
        schema, table = sql.split_db_table(model._meta.db_table)
        # Platform tables are the schema-qualified ones; Django's own live in public.
        if schema in PLATFORM_SCHEMAS and any(
            f.column == "tenant_id" for f in model._meta.concrete_fields
        ):
            tables.append(f"{schema}.{table}")
    return sorted(tables)


def _rows(cursor: Any, query: str, params: Iterable[Any] = ()) -> list[tuple]:
    cursor.execute(query, list(params))
    return cursor.fetchall()


def diagnose(using: str = DEFAULT_DB_ALIAS) -> list[Finding]:
    """Every gap between the live database and the declarations, errors then warnings."""
    declared = declared_objects(using)
    role = ops.runtime_role()
    findings: list[Finding] = []
    with connections[using].cursor() as cursor:
        findings += _check_rls(cursor, declared)
        findings += _check_triggers(cursor, declared)
        findings += _check_foreign_keys(cursor, declared)
        findings += _check_functions(cursor, declared)
        findings += _check_runtime_role(cursor, declared, role)
        for service_role in sorted(declared.service_roles):
            findings += _check_role_attributes(cursor, service_role)
            findings += _check_exact_grants(
                cursor,
                service_role,
                declared.service_grants.get(service_role, {}),
                declared.service_column_grants.get(service_role, {}),
            )
        # The role DATABASE_URL logs in as: dbdoctor itself may run as the owner, through
        # MIGRATION_DATABASE_URL (hzm.deploy.connection).
        findings += _check_login_role(cursor, settings.DATABASES[using].get("USER") or "")
        findings += _check_hardening(cursor, declared, [role, *sorted(declared.service_roles)])
        login = settings.DATABASES[using].get("USER") or ""
        findings += _check_context_keys(cursor, [role, *sorted(declared.service_roles), login])
    return sorted(findings, key=lambda f: (f.severity != "error", f.where, f.problem))


def _check_rls(cursor: Any, declared: Declared) -> list[Finding]:
    findings = []
    live = {
        f"{schema}.{table}": (enabled, forced)
        for schema, table, enabled, forced in _rows(
            cursor,
            "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
            [list(PLATFORM_SCHEMAS)],
        )
    }
    policies: dict[str, dict[str, str]] = {}
    for schema, table, name, qual in _rows(
        cursor,
        "SELECT schemaname, tablename, policyname, coalesce(qual, with_check) FROM pg_policies "
        "WHERE schemaname = ANY(%s)",
        [list(PLATFORM_SCHEMAS)],
    ):
        policies.setdefault(f"{schema}.{table}", {})[name] = qual or ""
    for table in sorted(set(tenant_tables()) | set(declared.policies)):
        if table not in live:
            findings.append(Finding("error", table, "table is missing"))
            continue
        enabled, forced = live[table]
        if not enabled:
            findings.append(Finding("error", table, "row level security is not enabled"))
        if not forced:
            findings.append(
                Finding("error", table, "row level security is not forced (the owner bypasses it)")
            )
        for name in sorted(declared.policies.get(table, set())):
            if name not in policies.get(table, {}):
                findings.append(Finding("error", table, f"policy {name} is missing"))
        if not any("current_tenant()" in qual for qual in policies.get(table, {}).values()):
            findings.append(Finding("error", table, "no policy filters on app.current_tenant()"))
    return findings


def _check_triggers(cursor: Any, declared: Declared) -> list[Finding]:
    live = {
        (f"{schema}.{table}", name): (enabled, function)
        for schema, table, name, enabled, function in _rows(
            cursor,
            "SELECT n.nspname, c.relname, t.tgname, t.tgenabled, pn.nspname || '.' || p.proname "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = ANY(%s)",
            [list(PLATFORM_SCHEMAS)],
        )
    }
    findings = []
    for table, triggers in sorted(declared.triggers.items()):
        for name, function in sorted(triggers.items()):
            if (table, name) not in live:
                findings.append(Finding("error", table, f"trigger {name} is missing"))
                continue
            enabled, live_function = live[table, name]
            if enabled == "D":
                findings.append(Finding("error", table, f"trigger {name} is disabled"))
            if live_function != function:
                findings.append(
                    Finding(
                        "error",
                        table,
                        f"trigger {name} runs {live_function}, declared {function}",
                    )
                )
    return findings


# pg_constraint.confdeltype: the ON DELETE rule of a foreign key.
ON_DELETE_CODES = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL"}


def _check_foreign_keys(cursor: Any, declared: Declared) -> list[Finding]:
    live = {
        (f"{schema}.{table}", name): ON_DELETE_CODES.get(rule, rule)
        for schema, table, name, rule in _rows(
            cursor,
            "SELECT n.nspname, c.relname, k.conname, k.confdeltype FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE k.contype = 'f' AND n.nspname = ANY(%s)",
            [list(PLATFORM_SCHEMAS)],
        )
    }
    findings = []
    for table, keys in sorted(declared.foreign_keys.items()):
        for name, rule in sorted(keys.items()):
            if (table, name) not in live:
                findings.append(Finding("error", table, f"tenant foreign key {name} is missing"))
            elif live[table, name] != rule:
                findings.append(
                    Finding(
                        "error",
                        table,
                        f"tenant foreign key {name} is ON DELETE {live[table, name]}, "
                        f"declared {rule}",
                    )
                )
    return findings


def _check_functions(cursor: Any, declared: Declared) -> list[Finding]:
    live = {
        f"{schema}.{name}": definer
        for schema, name, definer in _rows(
            cursor,
            "SELECT n.nspname, p.proname, p.prosecdef FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)",
            [[*PLATFORM_SCHEMAS, sql.CONTEXT_KEY_SCHEMA]],
        )
    }
    findings = []
    for name, definer in sorted(declared.functions.items()):
        if name not in live:
            findings.append(Finding("error", name, "function is missing"))
        elif live[name] != definer:
            expected = "SECURITY DEFINER" if definer else "SECURITY INVOKER"
            findings.append(Finding("error", name, f"function should be {expected}"))
    return findings


def _check_role_attributes(cursor: Any, role: str) -> list[Finding]:
    """A NOLOGIN role with no way around row level security, owning nothing."""
    attributes = _rows(
        cursor,
        "SELECT oid, rolsuper, rolbypassrls, rolcanlogin, rolcreatedb, rolcreaterole "
        "FROM pg_roles WHERE rolname = %s",
        [role],
    )
    where = f"role {role}"
    if not attributes:
        return [Finding("error", where, "the role does not exist")]
    oid, superuser, bypass, login, createdb, createrole = attributes[0]
    findings = [
        Finding("error", where, f"must not have {attribute}")
        for attribute, has in (
            ("SUPERUSER", superuser),
            ("BYPASSRLS", bypass),
            ("LOGIN", login),
            ("CREATEDB", createdb),
            ("CREATEROLE", createrole),
        )
        if has
    ]
    owned = _rows(
        cursor,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relowner = %s "
        "UNION ALL SELECT nspname FROM pg_namespace WHERE nspowner = %s",
        [oid, oid],
    )
    findings += [Finding("error", where, f"owns {name} (it must own nothing)") for (name,) in owned]
    return findings


def _check_runtime_role(cursor: Any, declared: Declared, role: str) -> list[Finding]:
    """The runtime role's attributes, and exactly the table privileges the migrations grant."""
    findings = _check_role_attributes(cursor, role)
    if any(f.problem == "the role does not exist" for f in findings):
        return findings
    return findings + _check_exact_grants(cursor, role, declared.grants, declared.column_grants)


def _check_exact_grants(
    cursor: Any,
    role: str,
    grants: dict[str, set[str]],
    column_grants: dict[str, set[tuple[str, str]]],
) -> list[Finding]:
    """`role` holds exactly the declared privileges on the platform's and Django's tables.

    Table privileges must match one for one; a declared column grant must be there (the
    role then has no privilege on the whole table unless declared too).
    """
    exists = _rows(cursor, "SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    if not exists:
        return []  # _check_role_attributes reports it
    tables = _rows(
        cursor,
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition "
        "AND (n.nspname = ANY(%s) OR n.nspname = 'public')",
        [list(PLATFORM_SCHEMAS)],
    )
    findings = []
    for (table,) in sorted(tables):
        wanted = grants.get(table, set())
        reference = ".".join(f'"{part}"' for part in table.split("."))
        held = _rows(
            cursor,
            "SELECT p FROM unnest(%s::text[]) AS p WHERE has_table_privilege(%s, %s::regclass, p)",
            [list(ALL_TABLE_PRIVILEGES), role, reference],
        )
        has = {privilege for (privilege,) in held}
        for privilege in ALL_TABLE_PRIVILEGES:
            if privilege in has and privilege not in wanted:
                findings.append(Finding("error", table, f"{role} has {privilege}, not declared"))
            elif privilege in wanted and privilege not in has:
                findings.append(Finding("error", table, f"{role} lacks declared {privilege}"))
        held_columns = {
            (privilege, column)
            for column, privilege in _rows(
                cursor,
                "SELECT a.attname, x.privilege_type FROM pg_attribute a "
                "CROSS JOIN LATERAL aclexplode(a.attacl) AS x "
                "WHERE a.attrelid = %s::regclass AND a.attacl IS NOT NULL "
                "AND x.grantee = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                [reference, role],
            )
        }
        for privilege, column in sorted(held_columns - column_grants.get(table, set())):
            if privilege not in wanted:
                findings.append(
                    Finding("error", table, f"{role} has {privilege} ({column}), not declared")
                )
        for privilege, column in sorted(column_grants.get(table, set())):
            (granted,) = _rows(
                cursor,
                "SELECT has_column_privilege(%s, %s::regclass, %s, %s)",
                [role, reference, column, privilege],
            )[0]
            if not granted:
                findings.append(
                    Finding("error", table, f"{role} lacks declared {privilege} ({column})")
                )
    return findings


def _check_login_role(cursor: Any, login: str) -> list[Finding]:
    """Warn when a production configuration logs in as a superuser or as the tables' owner.

    `login` is the role the application logs in as; '' (libpq's default user): this
    connection's.
    """
    if settings.DEBUG:
        return []
    found = _rows(
        cursor,
        "SELECT rolsuper, EXISTS (SELECT FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relowner = r.oid AND n.nspname = ANY(%s)) "
        "FROM pg_roles r WHERE rolname = coalesce(nullif(%s, ''), session_user)",
        [list(PLATFORM_SCHEMAS), login],
    )
    if not found:
        return [Finding("warning", "DATABASE_URL", f"the role {login} does not exist")]
    [(superuser, owns)] = found
    findings = []
    if superuser:
        findings.append(
            Finding(
                "warning",
                "DATABASE_URL",
                "the application logs in as a superuser, which bypasses row level security: "
                "log in as an authenticator role (see README, Security model)",
            )
        )
    elif owns:
        findings.append(
            Finding(
                "warning",
                "DATABASE_URL",
                "the application logs in as the tables' owner: log in as an authenticator "
                "role that owns nothing (see README, Security model)",
            )
        )
    return findings


# --- The rules an outside audit taught us (issue 11) ------------------------------------

# What only the README's superuser set-up can do when migrate runs as a plain owner.
CATALOG_FUNCTIONS_FIX = (
    "as a superuser, in this database: REVOKE EXECUTE ON FUNCTION "
    + ", ".join(sql.SUPERUSER_REVOKED_FUNCTIONS)
    + " FROM PUBLIC (README, production set-up)"
)


def _check_hardening(cursor: Any, declared: Declared, roles: list[str]) -> list[Finding]:
    """The rules a regression would break; each finding says what to fix."""
    live = [
        role
        for (role,) in _rows(
            cursor, "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [roles]
        )
    ]
    tenant_facing = [role for role in live if not role.endswith("_admin")]
    return [
        *_check_definer_functions(cursor, declared, live),
        *_check_temporary(cursor, live),
        *_check_writable_columns(cursor, tenant_facing),
        *_check_policies_once_per_statement(cursor),
        *_check_role_settings(cursor, live),
        *_check_catalog_functions(cursor, ops.runtime_role()),
        *_check_owner_policies(cursor),
    ]


def _check_definer_functions(cursor: Any, declared: Declared, roles: list[str]) -> list[Finding]:
    """No SECURITY DEFINER function executable by PUBLIC, or by a role not granted it.

    The grants are declared by a function's name (GrantExecute), so a SECURITY DEFINER
    function may not share its name with another function: an overload's grants could
    not be told apart, and one would pass for the other.
    """
    findings = []
    for name, signatures in _rows(
        cursor,
        "SELECT n.nspname || '.' || p.proname, "
        "array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY(%s) GROUP BY 1 "
        "HAVING count(*) > 1 AND bool_or(p.prosecdef)",
        [list(PLATFORM_SCHEMAS)],
    ):
        findings.append(
            Finding(
                "error",
                name,
                f"a SECURITY DEFINER function shares its name ({', '.join(signatures)}): "
                "dbdoctor tells grants apart by name; give each function a name of its own",
            )
        )
    for name, signature, public, holders in _rows(
        cursor,
        "SELECT n.nspname || '.' || p.proname, p.oid::regprocedure::text, "
        "p.proacl IS NULL OR EXISTS (SELECT FROM aclexplode(p.proacl) AS a "
        "  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), "
        "ARRAY(SELECT r FROM unnest(%s::text[]) AS r "
        "      WHERE has_function_privilege(r, p.oid, 'EXECUTE')) "
        "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname = ANY(%s)",
        [roles, list(PLATFORM_SCHEMAS)],
    ):
        if name in declared.public_executes:
            continue  # reviewed: it gives any caller only what its own transaction holds
        if public:
            findings.append(
                Finding("error", signature, "SECURITY DEFINER function executable by PUBLIC")
            )
        for role in sorted(set(holders) - declared.executes.get(name, set())):
            findings.append(Finding("error", signature, f"{role} may execute it, not declared"))
    return findings


def _check_temporary(cursor: Any, roles: list[str]) -> list[Finding]:
    return [
        Finding("error", f"role {role}", "may create temporary tables (TEMPORARY on the database)")
        for (role,) in _rows(
            cursor,
            "SELECT r FROM unnest(%s::text[]) AS r "
            "WHERE has_database_privilege(r, current_database(), 'TEMPORARY')",
            [roles],
        )
    ]


def _check_writable_columns(cursor: Any, roles: list[str]) -> list[Finding]:
    """No identity column, nor core.users.role, that a tenant-facing role may write."""
    return [
        Finding("error", f"{schema}.{table}", f"{role} may {privilege} column {column}")
        for schema, table, column, role, privilege in _rows(
            cursor,
            "SELECT n.nspname, c.relname, a.attname, r, p "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "CROSS JOIN unnest(%s::text[]) AS r CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE']) AS p "
            "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND a.attnum > 0 AND NOT a.attisdropped "
            "AND (a.attidentity <> '' OR (n.nspname = 'core' AND c.relname = 'users' "
            "     AND a.attname = 'role')) "
            "AND has_column_privilege(r, c.oid, a.attnum, p) ORDER BY 1, 2, 3, 4, 5",
            [roles, list(PLATFORM_SCHEMAS)],
        )
    ]


def _check_policies_once_per_statement(cursor: Any) -> list[Finding]:
    """Every policy reads the tenant through an InitPlan: (SELECT app.current_tenant())."""
    findings = []
    for schema, table, name, qual, check in _rows(
        cursor,
        "SELECT schemaname, tablename, policyname, coalesce(qual, ''), coalesce(with_check, '') "
        "FROM pg_policies WHERE schemaname = ANY(%s) ORDER BY 1, 2, 3",
        [list(PLATFORM_SCHEMAS)],
    ):
        if any(
            expression.count("app.current_tenant()")
            > expression.count("SELECT app.current_tenant()")
            for expression in (qual, check)
        ):
            findings.append(
                Finding(
                    "error",
                    f"{schema}.{table}",
                    f"policy {name} calls app.current_tenant() for every row: write "
                    "(SELECT app.current_tenant())",
                )
            )
    return findings


def _check_role_settings(cursor: Any, roles: list[str]) -> list[Finding]:
    """A role may ALTER ROLE itself SET ...: the tenant-facing ones must have no settings."""
    return [
        Finding(
            "error",
            f"role {role}",
            f"has settings of its own ({', '.join(config)}): ALTER ROLE {role} RESET ALL",
        )
        for role, config in _rows(
            cursor,
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = ANY(%s) ORDER BY 1",
            [roles],
        )
    ]


def _check_catalog_functions(cursor: Any, role: str) -> list[Finding]:
    """Large objects and backend signals are not the runtime role's (through PUBLIC)."""
    held = [
        function
        for (function,) in _rows(
            cursor,
            "SELECT f FROM unnest(%s::text[]) AS f "
            "WHERE has_function_privilege(%s, 'pg_catalog.' || f, 'EXECUTE')",
            [list(sql.SUPERUSER_REVOKED_FUNCTIONS), role],
        )
    ]
    if not held:
        return []
    return [
        Finding(
            "error",
            f"role {role}",
            f"may execute {', '.join(held)} (large objects escape row level security; a web "
            f"session could end the others'): {CATALOG_FUNCTIONS_FIX}",
        )
    ]


def _check_owner_policies(cursor: Any) -> list[Finding]:
    """The audit trail's owner-only policies apply to its owner only (TO the owner role).

    TO PUBLIC they would be OR-ed into every role's reads; TO a former owner they leave the
    owner unable to prune. ALTER TABLE ... OWNER TO must be followed by ALTER POLICY.
    """
    return [
        Finding(
            "error",
            "ops.audit_logs",
            f"policy {name} applies to {', '.join(roles)}, not the table's owner {owner}: "
            f"ALTER POLICY {name} ON ops.audit_logs TO {owner}",
        )
        for name, roles, owner in _rows(
            cursor,
            "SELECT p.policyname, p.roles::text[], pg_get_userbyid(c.relowner) "
            "FROM pg_policies p JOIN pg_class c ON c.oid = 'ops.audit_logs'::regclass "
            "WHERE p.schemaname = 'ops' AND p.tablename = 'audit_logs' "
            "AND p.policyname LIKE 'rls\\_audit\\_logs\\_owner\\_%%' "
            "AND NOT pg_get_userbyid(c.relowner) = ANY (p.roles::text[]) ORDER BY 1",
        )
    ]


def _check_context_keys(cursor: Any, roles: list[str]) -> list[Finding]:
    """The context keys are HZM_CONTEXT_KEY's, and nobody but their owner can read them."""
    where = sql.CONTEXT_KEY_TABLE
    if not key_store_exists(cursor):
        return [Finding("error", where, "missing: run migrate (hzm 0006 creates it)")]
    findings = [
        Finding("error", where, f"{role} may read or change the context keys")
        for (role,) in _rows(
            cursor,
            # A superuser or owner login is _check_login_role's finding already.
            "SELECT r FROM unnest(%s::text[]) AS r JOIN pg_roles g ON g.rolname = r "
            "WHERE NOT g.rolsuper "
            "AND g.oid <> (SELECT relowner FROM pg_class WHERE oid = %s::regclass) "
            "AND (has_schema_privilege(r, %s, 'USAGE') "
            "     OR has_table_privilege(r, %s, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') "
            "     OR has_function_privilege(r, %s, 'EXECUTE'))",
            [roles, where, sql.CONTEXT_KEY_SCHEMA, where, f"{sql.VERIFYING_KEYS_FUNCTION}()"],
        )
    ]
    findings += [
        Finding("error", f"{kind} {name}", f"grants {privilege} to {grantee}: the owner's alone")
        for kind, name, grantee, privilege in _rows(
            cursor,
            "SELECT 'schema', n.nspname, coalesce(g.rolname, 'PUBLIC'), a.privilege_type "
            "FROM pg_namespace n, aclexplode(n.nspacl) a "
            "LEFT JOIN pg_roles g ON g.oid = a.grantee "
            "WHERE n.nspname = %s AND a.grantee <> n.nspowner "
            "UNION ALL "
            "SELECT 'table', c.oid::regclass::text, coalesce(g.rolname, 'PUBLIC'), "
            "a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
            "LEFT JOIN pg_roles g ON g.oid = a.grantee "
            "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner ORDER BY 1, 2, 3, 4",
            [sql.CONTEXT_KEY_SCHEMA, where],
        )
    ]
    readable = _rows(
        cursor,
        "SELECT has_schema_privilege(%s, 'USAGE') AND has_table_privilege(%s, 'SELECT')",
        [sql.CONTEXT_KEY_SCHEMA, where],
    )[0][0]
    if not readable:
        findings.append(
            Finding(
                "warning",
                where,
                "not readable by this login, so not compared with HZM_CONTEXT_KEY: run "
                "dbdoctor as the owner (MIGRATION_DATABASE_URL)",
            )
        )
    elif installed_fingerprints(cursor) != key_fingerprints(context_keys()):
        findings.append(
            Finding(
                "error",
                where,
                "the keys are not HZM_CONTEXT_KEY's: no tenant context is accepted until "
                "migrate runs with this environment (it installs them)",
            )
        )
    return findings
