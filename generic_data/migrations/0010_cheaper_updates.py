"""Cheaper unique values and record counts of a one-row write (issue 15).

- app.sync_unique_values() joins the new rows to their table's unique fields, read with
  one jsonpath query (UNIQUE_FIELD_NAMES: the names of the fields whose "unique" is
  true), where 0004 expanded every field (jsonb_array_elements), filtered them, and found
  the tables through a semi-join of the new rows: the same values, ~15-20 µs less a
  one-row INSERT or UPDATE (bench/RESULTS.md, writes). The fields are read as 0004 read
  them: an array of objects, "unique" the JSON true (not "true", not [true]), the name as
  text; anything else (no name, not an object, `fields` not an array) is no unique field.
- app.count_records() builds the locked tenants' ids and limits with plain array_agg():
  the subquery locks them in id order (what keeps two writers of one tenant from
  deadlocking), and both arrays are built in the same pass, so each id stays with its
  limit; 0008 sorted each array again. Everything else as 0008.

Both stay SECURITY DEFINER with a pinned search_path. Reversing restores the bodies of
0004 and 0008 exactly.
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import InstallFunction

# 0004 and 0008 froze the bodies this migration replaces; reversing puts them back.
unique_values = import_module("generic_data.migrations.0004_unique_field_values")
cheaper_writes = import_module("generic_data.migrations.0008_cheaper_writes")

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

# The names of a table's unique fields, from core.table_metadata.fields (an array).
# Strict: an element that is not an object, or has no "unique" or "name", is skipped.
UNIQUE_FIELD_NAMES = "strict $[*] ? (@.unique == true && exists (@.name)).name"

SYNC_UNIQUE_VALUES = f"""
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM app.generic_data_unique AS u USING old_rows AS o WHERE u.row_id = o.id;
  END IF;
  INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
  SELECT n.table_id, f.name, n.data ->> f.name, n.id
  FROM new_rows AS n
  JOIN core.table_metadata AS t ON t.id = n.table_id
  CROSS JOIN LATERAL jsonb_path_query(
    CASE WHEN jsonb_typeof(t.fields) = 'array' THEN t.fields ELSE '[]'::jsonb END,
    '{UNIQUE_FIELD_NAMES}'
  ) AS u(name)
  CROSS JOIN LATERAL (SELECT u.name #>> '{{}}' AS name) AS f
  WHERE n.is_deleted IS NOT TRUE AND n.data ->> f.name IS NOT NULL;
  RETURN NULL;
END"""

# 0008's, with the arrays of the tenants it locks built without sorting them again.
SORTED_AGAIN = "SELECT array_agg(l.id ORDER BY l.id), array_agg(l.max_records ORDER BY l.id)"
COUNT_RECORDS = cheaper_writes.COUNT_RECORDS.replace(
    SORTED_AGAIN, "SELECT array_agg(l.id), array_agg(l.max_records)"
)
assert cheaper_writes.COUNT_RECORDS.count(SORTED_AGAIN) == 2, "0008's statements changed"


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0009_search_plans")]

    operations = [
        InstallFunction(
            name="app.sync_unique_values",
            arguments="",
            returns="trigger",
            body=SYNC_UNIQUE_VALUES,
            **DEFINER,
            replaces={"returns": "trigger", "body": unique_values.SYNC_UNIQUE_VALUES, **DEFINER},
        ),
        InstallFunction(
            name="app.count_records",
            arguments="",
            returns="trigger",
            body=COUNT_RECORDS,
            **DEFINER,
            replaces={"returns": "trigger", "body": cheaper_writes.COUNT_RECORDS, **DEFINER},
        ),
    ]
