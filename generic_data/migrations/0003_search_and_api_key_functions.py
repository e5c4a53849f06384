"""Index-served search for the runtime role, and API-key lookup before any tenant context.

Under row level security PostgreSQL 15 will not use a GIN index for `@@` or `@>`:
they are not leakproof, so the planner must apply the tenant policy first and can
only filter the tenant's rows one by one (full-text search over 1M rows: 58-86 ms
under RLS, 4.7 ms without). The two search functions below are SECURITY DEFINER,
so their own query is planned without the policy and can use idx_generic_data_search
and idx_generic_data_jsonb. They stay inside one tenant because:
- the tenant comes only from the transaction's context (app.current_tenant()), never
  from an argument; no context, no rows;
- they return row ids only, which the caller reads back from app.generic_data as the
  runtime role, so the policy filters the rows a second time;
- search_path is pinned (pg_catalog, then pg_temp), so no object of the caller's can
  stand in for one of theirs; and only the runtime role may call them.
Their query runs through EXECUTE with its values bound, so each call is planned for its
own values (the GIN index for a rare value, the (tenant, project, table, id) index for a
common one) instead of once for all.

app.api_key_tenant(prefix) finds the key an API request presents before the request
knows its tenant: the runtime role sees no core.api_keys row without a context, and
the production login role owns and may read nothing. It returns only what verifying
the key needs; the hash is compared in Python (hzm.secrets.api_key_matches).

These functions need an owner that row level security does not apply to (a superuser,
as migrate runs here, or a BYPASSRLS role): under FORCE ROW LEVEL SECURITY the policy
would filter their reads too, so API keys would never be found and searches would
lose their indexes. The database check generic_data.E001 reports such an owner.
"""

from django.db import migrations

from hzm.db.operations import ConfigureFunction, GrantExecute
from hzm.db.operations import InstallFunction

SEARCH_ROWS_ARGUMENTS = "p_table_id int, p_query text"
SEARCH_ROWS = """
DECLARE
  v_tenant int := app.current_tenant();
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  -- The table is matched as table_id + 0, so that no index combines it with tenant_id:
  -- the planner cannot see that a table id implies its tenant, estimates the pair at a
  -- hundredth of its rows, and would run every row of a large table through
  -- to_tsvector() instead of intersecting the tenant's rows with the full-text index.
  RETURN QUERY EXECUTE
    'SELECT g.id FROM app.generic_data AS g
      WHERE g.tenant_id = $1 AND g.table_id + 0 = $2 AND g.is_deleted = false
        AND to_tsvector(''english''::regconfig, g.search_text)
            @@ websearch_to_tsquery(''english''::regconfig, $3)'
    USING v_tenant, p_table_id, p_query;
END"""

ROWS_CONTAINING_ARGUMENTS = (
    "p_project_id int, p_table_id int, p_doc jsonb, "
    "p_after bigint DEFAULT NULL, p_limit int DEFAULT NULL, p_descending boolean DEFAULT false"
)
# With p_limit: the first p_limit ids after p_after in id order (a page of a filter made
# only of equalities); without: every matching id, unordered (candidates for a query).
ROWS_CONTAINING = """
DECLARE
  v_tenant int := app.current_tenant();
  v_query text := 'SELECT g.id FROM app.generic_data AS g
      WHERE g.tenant_id = $1 AND g.project_id = $2 AND g.table_id = $3
        AND g.is_deleted = false AND g.data @> $4';
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF p_limit IS NOT NULL THEN
    IF p_descending THEN
      IF p_after IS NOT NULL THEN
        v_query := v_query || ' AND g.id < $5';
      END IF;
      v_query := v_query || ' ORDER BY g.id DESC LIMIT $6';
    ELSE
      IF p_after IS NOT NULL THEN
        v_query := v_query || ' AND g.id > $5';
      END IF;
      v_query := v_query || ' ORDER BY g.id LIMIT $6';
    END IF;
  END IF;
  RETURN QUERY EXECUTE v_query USING v_tenant, p_project_id, p_table_id, p_doc, p_after, p_limit;
END"""

API_KEY_TENANT_ARGUMENTS = "p_prefix text"
API_KEY_TENANT_RETURNS = (
    "TABLE(key_id int, tenant_id int, project_id int, user_id int, key_hash text, usable boolean)"
)
# Usable: the key is active, unrevoked and unexpired (as ApiKey.is_usable), and its
# tenant, user and project (if any) are live and active.
API_KEY_TENANT = """
  SELECT k.id, k.tenant_id, k.project_id, k.user_id, k.key_hash::text,
         k.is_active IS TRUE AND k.revoked_at IS NULL
         AND (k.expires_at IS NULL OR k.expires_at > now())
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE
         AND u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND (k.project_id IS NULL OR (p.is_active IS TRUE AND p.is_deleted IS NOT TRUE))
  FROM core.api_keys AS k
  JOIN core.tenants AS t ON t.id = k.tenant_id
  JOIN core.users AS u ON u.id = k.user_id
  LEFT JOIN core.projects AS p ON p.id = k.project_id
  WHERE k.key_prefix = p_prefix
"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0002_tenant_isolation")]

    operations = [
        InstallFunction(
            name="app.search_rows",
            arguments=SEARCH_ROWS_ARGUMENTS,
            returns="SETOF bigint",
            body=SEARCH_ROWS,
            volatility="STABLE",
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        GrantExecute("app.search_rows", SEARCH_ROWS_ARGUMENTS),
        # Bitmap scans only: the full-text index alone for a rare word, AND-ed with the
        # tenant's rows for a common one. A plain index scan filtering the tenant's rows
        # through to_tsvector() is what the cost model prefers for a common word, and
        # is several times slower (see bench/RESULTS.md).
        ConfigureFunction("app.search_rows", SEARCH_ROWS_ARGUMENTS, "enable_indexscan", "off"),
        InstallFunction(
            name="app.rows_containing",
            arguments=ROWS_CONTAINING_ARGUMENTS,
            returns="SETOF bigint",
            body=ROWS_CONTAINING,
            volatility="STABLE",
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        GrantExecute("app.rows_containing", ROWS_CONTAINING_ARGUMENTS),
        InstallFunction(
            name="app.api_key_tenant",
            arguments=API_KEY_TENANT_ARGUMENTS,
            returns=API_KEY_TENANT_RETURNS,
            body=API_KEY_TENANT,
            language="sql",
            volatility="STABLE",
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        GrantExecute("app.api_key_tenant", API_KEY_TENANT_ARGUMENTS),
    ]
