"""Containment searches decided by the window alone, and a bitmap AND where the ordered
scan would read the whole table (issue 15, deliverable 2).

app.rows_containing() (0007) looked at the table's first rows in the order asked (the
window), then, for a document the window had not seen, asked the planner's statistics
(EXPLAIN) whether each pair was rare, and took the GIN index only if one was; otherwise
the ordered scan. Measured at 1M rows (bench/RESULTS.md, search) that cost a rare
value's page about 0.5 ms of fixed work (the estimate, three statements built and planned
on every call) over the GIN bypass's 0.5 ms, and two values rare together (each common, status
and qty) the whole table in id order (29 ms against 4.6 ms for the GIN index AND-ed with
the tenant's rows): the statistics call neither value rare.

Now:
1. The window, as before (WINDOW rows). A document it sees is common: the ordered scan
   of 4. goes on after it.
2. A document it has not seen, none of whose pairs it has seen either (a unique sku):
   the GIN index alone, at most `reach` rows of any table (as 0007), without the estimate:
   a value the window missed is rare in the table, or the table is a small one.
3. Otherwise (a pair of it is common here, or the GIN index found `reach` rows of other
   tables or of this one), for a table of more than ORDERED_MAX live rows: the GIN index
   AND-ed with the tenant's rows of idx_generic_data_composite (bitmap scans only, the
   project and table compared outside the index so that the planner, which takes the
   scope's columns for independent, cannot call the table one row and scan it instead),
   sorted in the aggregate. It reads the posting lists of the document's rarest entries
   and the tenant's rows, never the table in id order: at most a few milliseconds where
   the ordered scan of a value the window missed reads the whole table (one heap page per
   row when tenants write concurrently). A smaller table takes the ordered scan.
4. The ordered scan of 0007, on from the window's last row, also for every matching id
   (no p_limit: the service's count). Through unique_generic_data_per_table in id order:
   a bitmap scan of the same rows in physical order was 2-3 times slower at 1M rows
   (10,000 heap pages, all in shared buffers: 11 ms against 4.8 ms).

Statements built per call (the GIN index's, the bitmap AND, in either direction) run
through EXECUTE; the window and the ordered scan are static PL/pgSQL statements (no
query text to build and parse per call), planned for each call's values all the same
(plan_cache_mode = force_custom_plan): a generic plan cannot see the tenant's share of
the rows, and with a few tenants took generic_data_pkey for the window, in id order
through every tenant's rows (seen in tests/generic_data/test_containment_plans.py).

Bitmap scans only in 3., by set_config('enable_indexscan', 'off', true) around it: the function runs with enable_indexscan = on (SETTINGS), so that
the change ends with the call (a function's SET clause saves the setting, and only a
setting it saves is restored at its exit), and is put back before the next statement.

The modes, results and orders are 0007's (tests/generic_data/test_containment_plans.py);
still SECURITY DEFINER with search_path pinned, the tenant only from app.current_tenant(),
only ids of the context's tenant's table returned. Reversing restores 0007's body and its
settings in one CREATE OR REPLACE (which replaces every SET clause of a function).
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import InstallFunction

previous = import_module("generic_data.migrations.0007_containment_gin_first")

ARGUMENTS = previous.ARGUMENTS

WINDOW = 32  # rows, as 0007
ORDERED_MAX = 2000  # live rows: up to this, the ordered scan of the whole table costs
# about what the posting list of a common value does (1-3 ms)

# Frozen here, EXPLAINed as frozen by tests/generic_data/test_plans.py. format() fills in
# %1$s, the comparison with the cursor ('>' ascending, '<' descending), and %2$s the
# direction (ASC, DESC); $1 tenant, $2 project, $3 table, $4 document, $5 the id to start
# after, $6 how many ids at most (NULL: all).
GIN_SQL = previous.GIN_SQL
AND_SQL = """SELECT (array_agg(g.id ORDER BY g.id %2$s))[1:coalesce($6, 2147483647)]
FROM app.generic_data AS g
WHERE g.tenant_id = $1 AND g.project_id + 0 = $2 AND g.table_id + 0 = $3
  AND g.is_deleted = false AND g.id %1$s $5 AND g.data @> $4"""

# The window and the ordered scan, static: %s the comparison, the direction and, for the
# window, max or min (the window's last row, where the ordered scan goes on from).
SCOPE = """g.tenant_id = v_tenant AND g.project_id = p_project_id AND g.table_id = p_table_id
          AND g.is_deleted = false"""
WINDOW_STATEMENT = f"""SELECT count(*)::int, {{last}}(w.id),
             array_agg(w.id ORDER BY w.id {{order}}) FILTER (WHERE w.data @> p_doc),
             array_agg(w.data) FILTER (WHERE v_keys > 1)
        INTO v_seen, v_last, v_found, v_rows
      FROM (SELECT g.id, g.data FROM app.generic_data AS g
            WHERE {SCOPE} AND g.id {{op}} v_after
            ORDER BY g.id {{order}} LIMIT {WINDOW}) AS w;"""
SCAN_STATEMENT = f"""SELECT array_agg(s.id) INTO v_more
      FROM (SELECT g.id FROM app.generic_data AS g
            WHERE {SCOPE} AND g.id {{op}} v_last AND g.data @> p_doc
            ORDER BY g.id {{order}} LIMIT v_want) AS s;"""


def _directions(statement: str) -> str:
    descending = statement.format(op="<", order="DESC", last="min")
    ascending = statement.format(op=">", order="ASC", last="max")
    return f"""IF v_desc THEN
      {descending}
    ELSE
      {ascending}
    END IF;"""


# enable_sort and enable_incremental_sort as 0007 (the table's rows in id order come from
# unique_generic_data_per_table); enable_indexscan saved, so that 3. may turn it off; the
# static statements planned for each call's values.
SETTINGS = {
    "enable_sort": "off",
    "enable_incremental_sort": "off",
    "enable_indexscan": "on",
    "plan_cache_mode": "force_custom_plan",
}

for _statement in (GIN_SQL, AND_SQL):
    assert "'" not in _statement and "$q$" not in _statement  # quoted below as $q$...$q$

BODY = f"""
DECLARE
  v_tenant int := app.current_tenant();
  v_page boolean := p_limit IS NOT NULL AND p_descending IS NOT NULL;  -- first p_limit, in order
  v_cap boolean := p_limit IS NOT NULL AND p_descending IS NULL;  -- all, or NULL past p_limit
  v_desc boolean := p_descending IS TRUE;
  v_op text := CASE WHEN p_descending THEN '<' ELSE '>' END;
  v_order text := CASE WHEN p_descending THEN 'DESC' ELSE 'ASC' END;
  v_after bigint := coalesce(p_after, CASE WHEN p_descending THEN 9223372036854775807 ELSE 0 END);
  v_want int := CASE WHEN v_cap THEN p_limit + 1 ELSE p_limit END;  -- ids at most (NULL: all)
  v_keys int := 0;  -- the document's top-level pairs
  v_seen int;
  v_last bigint;  -- the window's last row
  v_found bigint[];
  v_rows jsonb[];  -- the window's documents, for a document of several pairs
  v_more bigint[];
  v_too_many boolean := false;
  v_live bigint;
  v_reach int;
  v_reached int;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF jsonb_typeof(p_doc) = 'object' THEN
    SELECT count(*)::int INTO v_keys FROM jsonb_object_keys(p_doc);
  END IF;
  <<search>>
  BEGIN
    -- 1. The window.
    {_directions(WINDOW_STATEMENT)}
    IF v_seen < {WINDOW} OR (v_page AND cardinality(v_found) >= p_limit)
       OR (v_cap AND cardinality(v_found) > p_limit) THEN
      EXIT search;  -- the table ends in the window, the page is full, or too many already
    END IF;
    SELECT coalesce(max(c.live_records), 0) INTO v_live
    FROM app.record_counts AS c WHERE c.table_id = p_table_id;
    IF v_cap AND cardinality(v_found)::real * v_live > p_limit::real * v_seen THEN
      v_too_many := true;  -- as frequent in the rest of the table, it holds more than p_limit
      EXIT search;
    END IF;
    IF v_found IS NULL AND v_keys > 0 THEN
      -- 2. The GIN index alone, for a document none of whose pairs the window has seen.
      IF v_keys = 1 OR NOT EXISTS (
           SELECT FROM jsonb_each(p_doc) AS p CROSS JOIN unnest(v_rows) AS r
           WHERE r @> jsonb_build_object(p.key, p.value)) THEN
        v_reach := greatest(16, least(1000, v_live / 40));
        EXECUTE format($q${GIN_SQL}$q$, v_op, v_order)
          INTO v_reached, v_found
          USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_reach;
        IF v_reached < v_reach THEN
          EXIT search;  -- every row containing the document was seen
        END IF;
      END IF;
      -- 3. The GIN index AND-ed with the tenant's rows, for a large table.
      IF v_live > {ORDERED_MAX} THEN
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE format($q${AND_SQL}$q$, v_op, v_order)
          INTO v_found
          USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_want;
        PERFORM set_config('enable_indexscan', 'on', true);
        EXIT search;
      END IF;
      v_found := NULL;  -- the window's matches (none), for the ordered scan
    END IF;
    -- 4. The ordered scan, on from the window's last row, for what the page still needs.
    v_want := v_want - coalesce(cardinality(v_found), 0);
    {_directions(SCAN_STATEMENT)}
    v_found := coalesce(v_found, '{{}}') || v_more;
  END search;
  IF v_too_many OR (v_cap AND cardinality(v_found) > p_limit) THEN
    RETURN NEXT NULL;
  ELSE
    RETURN QUERY SELECT unnest(CASE WHEN v_page THEN v_found[1:p_limit] ELSE v_found END);
  END IF;
END"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0008_cheaper_writes")]

    operations = [
        InstallFunction(
            name="app.rows_containing",
            arguments=ARGUMENTS,
            returns="SETOF bigint",
            body=BODY,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
            settings=SETTINGS,
            replaces={
                "returns": "SETOF bigint",
                "body": previous.BODY,
                "security_definer": True,
                "search_path": "pg_catalog, pg_temp",
                "settings": previous.SETTINGS,
            },
        ),
    ]
