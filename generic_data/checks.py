"""A system check (tag: database) that the SECURITY DEFINER functions can do their job.

app.api_key_tenant() and app.search_rows()/app.rows_containing() read tables whose row
level security is FORCEd, so their owner must be a role it does not apply to (a
superuser, or a role with BYPASSRLS): otherwise the policy filters their reads too,
API keys are never found (there is no tenant yet) and searches lose their indexes.
Runs with `manage.py check --database default` (and before `migrate`).
"""

from typing import Any

from django.core.checks import Error, Tags, register
from django.db import DatabaseError, connections

DEFINER_FUNCTIONS = ("api_key_tenant", "search_rows", "rows_containing", "sync_unique_values")


@register(Tags.database)
def check_definer_functions(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    errors = []
    for alias in databases or []:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(
                    "SELECT p.proname, r.rolname FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "JOIN pg_roles r ON r.oid = p.proowner "
                    "WHERE n.nspname = 'app' AND p.proname = ANY(%s) "
                    "AND NOT (r.rolsuper OR r.rolbypassrls) ORDER BY p.proname",
                    [list(DEFINER_FUNCTIONS)],
                )
                found = cursor.fetchall()
        except DatabaseError:
            continue  # not migrated yet, or not PostgreSQL: nothing to check
        for function, owner in found:
            errors.append(
                Error(
                    f"app.{function}() is owned by {owner}, to which row level security "
                    "applies: as a SECURITY DEFINER function it cannot read past the "
                    "tenant policies it exists to work around",
                    hint=f"ALTER FUNCTION app.{function} OWNER TO a role with BYPASSRLS "
                    "(or run migrate as one)",
                    obj=f"database {alias!r}",
                    id="generic_data.E001",
                )
            )
    return errors
