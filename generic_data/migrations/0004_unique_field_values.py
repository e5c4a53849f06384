"""Unique fields of user tables, enforced by the database under concurrent writers.

app.generic_data_unique holds one row per (table, field, value) of every live row
whose table declares the field `"unique": true`; its primary key is the constraint.
Two statement-level triggers keep it in step with app.generic_data, seeing each
statement's rows at once through transition tables (a bulk insert costs one call):
- after INSERT: add the new live rows' values;
- after UPDATE: drop the changed rows' values and add them again, so a changed value,
  a renamed field, a soft delete (is_deleted) and a restore all follow.
A purge (hard delete) removes them through the foreign key's ON DELETE CASCADE.

Why a side table, not a partial unique index per field (CREATE UNIQUE INDEX ... ON
app.generic_data ((data->>'f')) WHERE table_id = N): one index serves every table
and tenant, so defining a table runs no DDL (an index build on the shared table would
block every tenant's writes, and CONCURRENTLY cannot run in a request's transaction),
the runtime role needs no power to create anything, and the planner and every insert
do not pay for thousands of partial indexes.

The function is SECURITY DEFINER (the runtime role has no privilege on the side
table, so it can neither read other tenants' values nor remove its own) with a pinned
search_path; it reads the unique fields from core.table_metadata.
"""

import hzm.db.fields
from django.db import migrations, models

from hzm.db.operations import AttachStatementTrigger
from hzm.db.operations import InstallFunction

SYNC_UNIQUE_VALUES = """
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM app.generic_data_unique AS u USING old_rows AS o WHERE u.row_id = o.id;
  END IF;
  INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
  SELECT n.table_id, f.name, n.data ->> f.name, n.id
  FROM new_rows AS n
  JOIN (
    SELECT t.id AS table_id, e.value ->> 'name' AS name
    FROM core.table_metadata AS t
    CROSS JOIN LATERAL jsonb_array_elements(
      CASE WHEN jsonb_typeof(t.fields) = 'array' THEN t.fields ELSE '[]'::jsonb END
    ) AS e(value)
    WHERE t.id IN (SELECT DISTINCT r.table_id FROM new_rows AS r)
      AND e.value -> 'unique' = 'true'::jsonb
  ) AS f ON f.table_id = n.table_id
  WHERE n.is_deleted IS NOT TRUE AND n.data ->> f.name IS NOT NULL;
  RETURN NULL;
END"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0003_search_and_api_key_functions")]

    operations = [
        migrations.CreateModel(
            name="GenericDataUnique",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "table_id",
                        "field",
                        "value",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("table_id", models.IntegerField()),
                ("field", models.CharField(max_length=63)),
                ("value", models.TextField()),
                (
                    "row",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="+", to="generic_data.genericdata"
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "generic data unique values",
                "db_table": 'app"."generic_data_unique',
                "indexes": [models.Index(fields=["row"], name="idx_generic_data_unique_row")],
            },
        ),
        InstallFunction(
            name="app.sync_unique_values",
            arguments="",
            returns="trigger",
            body=SYNC_UNIQUE_VALUES,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        AttachStatementTrigger(
            "genericdata",
            kind="unique_insert",
            event="INSERT",
            function="app.sync_unique_values",
            new_table="new_rows",
        ),
        AttachStatementTrigger(
            "genericdata",
            kind="unique_update",
            event="UPDATE",
            function="app.sync_unique_values",
            old_table="old_rows",
            new_table="new_rows",
        ),
    ]
