"""A unique field's value finds its row through app.generic_data_unique (issue 15,
deliverable 2).

A containment naming a unique field (generic_data 0004) has at most one row, and the side
table's primary key (table_id, field, value) knows which. app.rows_containing() did not
use it: it paid its window, the GIN statement and its planning to find that row (about
0.3 ms of fixed work at 1M rows, bench/RESULTS.md, search). Now the service, which knows
from the table's definition which fields are unique, asks app.unique_value_row() for the
row's id and reads that one row by generic_data_pkey as the runtime role, every condition
of the filter applied again under the tenant policy (generic_data/query.py).

app.unique_value_row(table, field, value): the id of the live row of the context's
tenant's table `table` whose field `field` has, as `data ->> field`, the text `value`
(how app.sync_unique_values() stores it), or NULL. The runtime role has no privilege on
the side table (0004: it may neither read other tenants' values nor remove its own), so
the function is SECURITY DEFINER with search_path pinned; the tenant comes only from
app.current_tenant(), and a table of another tenant, or no context, gives NULL, so the
function tells nobody whether a value is used in a table not theirs. STABLE (it only
reads); the service calls it in a scalar subquery, `g.id = (SELECT app.unique_value_row(
...))`, run once per statement, its result the index condition of generic_data_pkey (as
a bare expression, the planner would also call it while planning, for an estimate).
PL/pgSQL, so that its one static statement is planned once per session and cached (in
PostgreSQL 15 a SQL function that cannot be inlined, as a SECURITY DEFINER one cannot,
is parsed and planned again in every statement that calls it). EXECUTE for the runtime
role only. Reversing drops it.
"""

from django.db import migrations

from hzm.db.operations import GrantExecute, InstallFunction

ARGUMENTS = "p_table_id int, p_field text, p_value text"
# The table must be the context's tenant's: the side table has no tenant_id (table ids
# are global), core.table_metadata does.
BODY = """
DECLARE
  v_tenant int := app.current_tenant();
  v_row bigint;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN NULL;  -- no tenant context: nothing, never everything
  END IF;
  SELECT u.row_id INTO v_row
  FROM app.generic_data_unique AS u
  JOIN core.table_metadata AS t ON t.id = u.table_id
  WHERE u.table_id = p_table_id AND u.field = p_field AND u.value = p_value
    AND t.tenant_id = v_tenant;
  RETURN v_row;
END"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0010_cheaper_updates")]

    operations = [
        InstallFunction(
            name="app.unique_value_row",
            arguments=ARGUMENTS,
            returns="bigint",
            body=BODY,
            volatility="STABLE",
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        GrantExecute("app.unique_value_row", ARGUMENTS),
    ]
