"""Containment searches served by idx_generic_data_jsonb where that is the cheaper plan (issue 15).

app.rows_containing() (0003) ran one query, `tenant_id = $1 AND project_id = $2 AND
table_id = $3 AND data @> $4`, and the planner read all of a large table's rows through
unique_generic_data_per_table, filtering each by `@>`, even for a unique value (10,000
rows: 2-6 ms, against 0.1 ms through the GIN index): it takes the three columns for
independent, estimates the table at one row, and so never prices the scan it chooses.
Extended statistics do not help: PostgreSQL 15 uses them for row counts, not for the
cost of an index scan (bench/RESULTS.md, generic_data).

Which plan is cheaper depends on numbers the planner does not have, so the function
finds them out, cheaply, before it commits to one:

1. The window: the table's first WINDOW rows in the order asked (after p_after), through
   unique_generic_data_per_table. If the table ends inside it, or a page is full, or the
   candidates are already too many, it is the answer. A value it sees is common: the
   ordered scan of 3. goes on after it, as 0003 would have read the table.
2. The GIN path, for a document with a top-level pair that neither the window nor the
   column's statistics have seen (the planner's estimate of `data @> pair`, read with
   EXPLAIN, the PostgreSQL wiki's count estimate, is at its floor): the rows containing
   it anywhere, through idx_generic_data_jsonb alone (the scope columns are compared
   outside the index, so no other index can compete), at most `reach` of them, kept when
   they are the table's. Reading another tenant's match costs a heap fetch, so the reach
   is bounded by what the ordered scan would cost (1/40 of the table's live rows, from
   app.record_counts, 16 to 1,000): a value rare here but common elsewhere gives up
   early. Fewer than `reach` matches means every match was seen: the answer.
3. Otherwise the ordered scan of 0003, in id order through unique_generic_data_per_table.

Why not the GIN index first for every value: jsonb_ops indexes each key and value on its
own, so a value in a fifth of 1M rows is a posting list of 200,000 entries, 20 ms to
read before the first row, where the window answers a page of it in 0.1 ms; and a value
in 1% of the rows (10,000 entries) makes GIN decode the key's whole posting list too (7 ms
at 1M rows, against 2 ms for the scan of a 10,000-row table). The window sees the first
kind, the column's statistics (a histogram of about 100 documents) most of the second.

A third mode serves the service's probe for candidate ids (generic_data/query.py):
p_limit with p_descending NULL asks for every matching id in no particular order if
there are at most p_limit, and returns one NULL otherwise ("read the table instead"),
also when the window shows that the table holds more than p_limit of them (hits in the
window times the table's live rows), so that a common value costs the probe a window,
not p_limit / frequency rows. A NULL is only ever a hint: the table path is always
correct.

Still SECURITY DEFINER with search_path pinned; the tenant only from app.current_tenant();
every statement runs through EXECUTE with its values bound, planned for them; only ids
of the context's tenant's table come back, whatever other tenants' rows the GIN index
returned on the way. Now VOLATILE (a STABLE function may not run EXPLAIN) and run without
plan sorts (SETTINGS, below). CREATE OR REPLACE keeps the EXECUTE grants of 0003 as they
are; reversing restores 0003's body, STABLE, and no settings.
"""

from django.db import migrations

from hzm.db.operations import ConfigureFunction, InstallFunction

ARGUMENTS = (
    "p_project_id int, p_table_id int, p_doc jsonb, "
    "p_after bigint DEFAULT NULL, p_limit int DEFAULT NULL, p_descending boolean DEFAULT false"
)

# 0003's body, restored on reverse.
PREVIOUS_BODY = """
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

WINDOW = 32  # rows: a value in a fifth of them is in it but one time in 1,000; the
# planner's statistics catch the rarer ones that would make the GIN index dear

# The statements the function runs, frozen here (and EXPLAINed as such by
# tests/generic_data/test_containment_plans.py). format() fills in %1$s, the comparison
# with the cursor ('>' ascending, '<' descending), and %2$s the direction (ASC, DESC);
# $1 tenant, $2 project, $3 table, $4 document, $5 the id to start after.
SCOPE = """g.tenant_id = $1 AND g.project_id = $2 AND g.table_id = $3
        AND g.is_deleted = false AND g.id %1$s $5"""
# $6: whether to return the window's documents too. %3$s: max ascending, min descending
# (the last row of the window, where the ordered scan goes on from).
WINDOW_SQL = f"""SELECT count(*)::int, %3$s(w.id),
       array_agg(w.id ORDER BY w.id %2$s) FILTER (WHERE w.data @> $4),
       array_agg(w.data) FILTER (WHERE $6)
FROM (SELECT g.id, g.data FROM app.generic_data AS g
      WHERE {SCOPE}
      ORDER BY g.id %2$s LIMIT {WINDOW}) AS w"""
# The planner's estimate of the rows of any table containing a pair $1: from the column's
# statistics (a histogram of about 100 documents), never below 0.0001 of the rows (its
# floor for an operator it cannot see into); a pair in none of those documents is
# estimated at that floor, one in a single one at about 1%.
ESTIMATE_SQL = "EXPLAIN (FORMAT JSON) SELECT FROM app.generic_data AS g WHERE g.data @> $1"
RARE = 0.001  # of the rows: between that floor and one document in the histogram
# $6: at most this many rows containing the document, of any table.
GIN_SQL = """SELECT count(*)::int,
       array_agg(c.id ORDER BY c.id %2$s) FILTER (
         WHERE c.tenant_id = $1 AND c.project_id = $2 AND c.table_id = $3
           AND c.is_deleted = false AND c.id %1$s $5)
FROM (SELECT g.id, g.tenant_id, g.project_id, g.table_id, g.is_deleted
      FROM app.generic_data AS g WHERE g.data @> $4 LIMIT $6) AS c"""
# $6: the page's size (NULL: every row); %3$s: the page's order, or none for every row.
SCAN_SQL = f"""SELECT array_agg(s.id) FROM (
  SELECT g.id FROM app.generic_data AS g
  WHERE {SCOPE} AND g.data @> $4
  %3$s LIMIT $6) AS s"""
# What the function runs with: no plan sorts (the aggregates' ORDER BY are not plan
# nodes). The table's rows in id order then come from unique_generic_data_per_table,
# whatever the planner thinks of them: it takes the scope's three columns for
# independent and estimates the table at one row, so sorting it looks free, and it
# would read the whole table through another index and sort it (seen at 100 tenants x
# 1,000 rows: 3.7 ms for a window of 64 rows, 0.3 ms in order).
SETTINGS = {"enable_sort": "off", "enable_incremental_sort": "off"}

for _statement in (WINDOW_SQL, ESTIMATE_SQL, GIN_SQL, SCAN_SQL):
    assert "'" not in _statement and "$q$" not in _statement  # quoted below as $q$...$q$

BODY = f"""
DECLARE
  v_tenant int := app.current_tenant();
  v_page boolean := p_limit IS NOT NULL AND p_descending IS NOT NULL;  -- first p_limit, in order
  v_cap boolean := p_limit IS NOT NULL AND p_descending IS NULL;  -- all, or NULL past p_limit
  v_op text := CASE WHEN p_descending THEN '<' ELSE '>' END;
  v_order text := CASE WHEN p_descending THEN 'DESC' ELSE 'ASC' END;
  v_after bigint := coalesce(p_after, CASE WHEN p_descending THEN 9223372036854775807 ELSE 0 END);
  v_pairs jsonb[];  -- the document's top-level pairs, one document each
  v_seen int;
  v_last bigint;  -- the window's last row
  v_found bigint[];
  v_rows jsonb[];
  v_window bigint[];  -- the window's matches (the GIN path may replace v_found)
  v_more bigint[];
  v_too_many boolean := false;
  v_live bigint;
  v_total real;
  v_pair jsonb;
  v_plan json;
  v_rare boolean := false;
  v_reach int;
  v_reached int;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF jsonb_typeof(p_doc) = 'object' AND p_doc <> '{{}}' THEN
    SELECT array_agg(jsonb_build_object(p.key, p.value)) INTO v_pairs FROM jsonb_each(p_doc) AS p;
  END IF;
  <<search>>
  BEGIN
    -- 1. The window (its rows' documents too when there are pairs to look for in them).
    EXECUTE format($q${WINDOW_SQL}$q$, v_op, v_order,
                   CASE WHEN p_descending THEN 'min' ELSE 'max' END)
      INTO v_seen, v_last, v_found, v_rows
      USING v_tenant, p_project_id, p_table_id, p_doc, v_after, cardinality(v_pairs) > 1;
    v_window := v_found;
    IF v_seen < {WINDOW} OR (v_page AND cardinality(v_found) >= p_limit)
       OR (v_cap AND cardinality(v_found) > p_limit) THEN
      EXIT search;  -- the table ends in the window, the page is full, or too many already
    END IF;
    IF v_cap OR v_found IS NULL THEN
      SELECT c.live_records INTO v_live FROM app.record_counts AS c WHERE c.table_id = p_table_id;
    END IF;
    IF v_cap AND cardinality(v_found)::real * coalesce(v_live, 0) > p_limit::real * v_seen THEN
      v_too_many := true;  -- as frequent in the rest of the table, it holds more than p_limit
      EXIT search;
    END IF;
    -- 2. The GIN index, for a document with a pair that neither the window nor the
    --    planner's statistics have seen.
    IF v_found IS NULL THEN
      SELECT c.reltuples INTO v_total FROM pg_class AS c WHERE c.oid = 'app.generic_data'::regclass;
      FOR v_pair IN SELECT p FROM unnest(v_pairs) AS p
                    WHERE NOT EXISTS (SELECT FROM unnest(v_rows) AS r WHERE r @> p) LOOP
        EXECUTE $q${ESTIMATE_SQL}$q$ INTO v_plan USING v_pair;
        v_rare := (v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::real <= {RARE} * v_total;
        EXIT WHEN v_rare;
      END LOOP;
    END IF;
    IF v_rare THEN
      v_reach := greatest(16, least(1000, coalesce(v_live, 0) / 40));
      EXECUTE format($q${GIN_SQL}$q$, v_op, v_order)
        INTO v_reached, v_found
        USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_reach;
      IF v_reached < v_reach THEN
        EXIT search;  -- every row containing the document was seen
      END IF;
    END IF;
    -- 3. The ordered scan, on from the window's last row, for what the page still needs.
    v_found := coalesce(v_window, '{{}}');
    EXECUTE format($q${SCAN_SQL}$q$, v_op, v_order,
                   CASE WHEN p_limit IS NOT NULL THEN 'ORDER BY g.id ' || v_order END)
      INTO v_more
      USING v_tenant, p_project_id, p_table_id, p_doc, v_last,
            CASE WHEN v_cap THEN p_limit + 1 ELSE p_limit END - cardinality(v_found);
    v_found := v_found || v_more;
  END search;
  IF v_too_many OR (v_cap AND cardinality(v_found) > p_limit) THEN
    RETURN NEXT NULL;
  ELSE
    RETURN QUERY SELECT unnest(CASE WHEN v_page THEN v_found[1:p_limit] ELSE v_found END);
  END IF;
END"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0006_api_key_lookup_by_whole_key")]

    operations = [
        InstallFunction(
            name="app.rows_containing",
            arguments=ARGUMENTS,
            returns="SETOF bigint",
            body=BODY,
            # VOLATILE: a STABLE function may not run EXPLAIN. Its statements then each
            # take a snapshot of their own; the ids are re-read under the caller's anyway.
            security_definer=True,
            search_path="pg_catalog, pg_temp",
            replaces={
                "returns": "SETOF bigint",
                "body": PREVIOUS_BODY,
                "volatility": "STABLE",
                "security_definer": True,
                "search_path": "pg_catalog, pg_temp",
            },
        ),
        *(
            ConfigureFunction("app.rows_containing", ARGUMENTS, setting, value)
            for setting, value in SETTINGS.items()
        ),
    ]
