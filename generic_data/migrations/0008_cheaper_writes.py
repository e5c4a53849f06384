"""Cheaper writes of app.generic_data (issue 15): its INSERTs audited once per statement,
the three foreign keys its composite one implies dropped, the record counts in fewer steps.

- trg_generic_data_audit_insert, AFTER INSERT FOR EACH STATEMENT with the new rows as a
  transition table, runs ops.log_audit_inserts() (ops 0006): one INSERT ... SELECT into
  ops.audit_logs per statement, the tenant, actor and request read once, an audit row per
  inserted row as before. trg_generic_data_audit, the row trigger, keeps UPDATE and
  DELETE (changed in place, CREATE OR REPLACE TRIGGER). A bulk insert through the service
  is one statement per 5,000 rows. PostgreSQL shares one captured transition table among
  the INSERT statement triggers of a table (those of 0004 and 0005 already ask for it).
- tenant_id -> core.tenants, project_id -> core.projects and table_id ->
  core.table_metadata go: fk_generic_data_tenant_project_table, (tenant_id, project_id,
  table_id) -> core.table_metadata (tenant_id, project_id, id) ON DELETE CASCADE (0002),
  already refuses every row they would, and table_metadata's own keys hold its tenant and
  project (ON DELETE CASCADE, so deleting either still reaches the rows, through their
  table). Each cost every insert three more key checks, each a row lock on the parent.
  The fields stay relations for the ORM (db_constraint=False); their indexes stay.
- app.count_records() (0005) locks the tenants a statement adds live rows to and reads
  their max_records in one statement (it read them again after the counts: the lock
  keeps them from changing meanwhile), and returns at once from an UPDATE that deletes,
  restores or moves no row (most: their counts cannot change). Still constant time
  per statement whatever the tenant's size, serialised per tenant by its core.tenants
  row (no advisory lock); the same counts, checks and error.

Reversing puts the three keys back (validated against the rows then present) and the row
trigger on INSERT too, drops the statement trigger and restores 0005's
app.count_records(), in that order, in one transaction.
"""

from importlib import import_module

import hzm.db.fields
from django.db import migrations

from hzm.db.operations import AttachStatementTrigger, ChangeAuditTriggerEvents, InstallFunction

# 0005 froze the body this migration replaces; reversing puts it back.
record_counts = import_module("generic_data.migrations.0005_record_counts")

COUNT_RECORDS = """
DECLARE
  v_tenants int[];
  v_limits int[];
  v_total bigint;
  v_added bigint;
BEGIN
  -- 1. The tenants this statement gives live rows (new rows, restored rows, rows moved to
  --    another table), locked first and in id order, with their limits.
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.max_records ORDER BY l.id)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE)
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Nothing for the counts unless a row was deleted, restored or moved.
    PERFORM 1 FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.is_deleted IS DISTINCT FROM o.is_deleted OR n.table_id <> o.table_id LIMIT 1;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.max_records ORDER BY l.id)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
                         WHERE n.is_deleted IS NOT TRUE
                           AND (o.is_deleted IS TRUE OR o.table_id <> n.table_id))
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  END IF;

  -- 2. The counts: +1 for each live row the statement made, -1 for each it ended.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT n.table_id, count(*) FROM new_rows AS n
    WHERE n.is_deleted IS NOT TRUE GROUP BY 1
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE app.record_counts AS c SET live_records = c.live_records - d.ended
    FROM (SELECT o.table_id, count(*) AS ended FROM old_rows AS o
          WHERE o.is_deleted IS NOT TRUE GROUP BY 1) AS d
    WHERE c.table_id = d.table_id;
  ELSE
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT d.table_id, sum(d.delta) FROM (
      SELECT n.table_id, 1 AS delta FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE
      UNION ALL
      SELECT o.table_id, -1 FROM old_rows AS o WHERE o.is_deleted IS NOT TRUE
    ) AS d GROUP BY 1 HAVING sum(d.delta) <> 0
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  END IF;

  -- 3. The limit: live rows of the tenant's live tables, at most core.tenants.max_records.
  FOR i IN 1 .. coalesce(array_length(v_tenants, 1), 0) LOOP
    CONTINUE WHEN v_limits[i] IS NULL;
    SELECT coalesce(sum(c.live_records), 0) INTO v_total
    FROM core.table_metadata AS m
    JOIN app.record_counts AS c ON c.table_id = m.id
    WHERE m.tenant_id = v_tenants[i] AND m.is_deleted IS NOT TRUE;
    IF v_total > v_limits[i] THEN
      IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO v_added FROM new_rows AS n
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE;
      ELSE
        SELECT count(*) INTO v_added FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE AND o.is_deleted IS TRUE;
      END IF;
      RAISE EXCEPTION 'the tenant has % records; % more would exceed its plan''s max_records (%)',
        v_total - v_added, v_added, v_limits[i]
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_max_records';
    END IF;
  END LOOP;
  RETURN NULL;
END"""


# (constraint, column, referenced table) of the keys 0001 made and the composite one implies.
IMPLIED_KEYS = [
    ("generic_data_tenant_id_71aa3a9b_fk_tenants_id", "tenant_id", '"core"."tenants"'),
    ("generic_data_project_id_7731b38d_fk_projects_id", "project_id", '"core"."projects"'),
    (
        "generic_data_table_id_9739915d_fk_table_metadata_id",
        "table_id",
        '"core"."table_metadata"',
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("generic_data", "0007_containment_gin_first"),
        ("ops", "0006_cheaper_audit"),
    ]

    operations = [
        InstallFunction(
            name="app.count_records",
            arguments="",
            returns="trigger",
            body=COUNT_RECORDS,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
            replaces={
                "returns": "trigger",
                "body": record_counts.COUNT_RECORDS,
                "security_definer": True,
                "search_path": "pg_catalog, pg_temp",
            },
        ),
        AttachStatementTrigger(
            "genericdata",
            kind="audit_insert",
            event="INSERT",
            function="ops.log_audit_inserts",
            new_table="new_rows",
        ),
        ChangeAuditTriggerEvents("genericdata", ["UPDATE", "DELETE"]),
        # Django's AlterField cannot find a constraint of a schema-qualified table by
        # introspection (it would drop nothing): the keys are dropped by their names, the
        # ones Django gave them in 0001, and the state follows.
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'ALTER TABLE "app"."generic_data" DROP CONSTRAINT "{name}"',
                    reverse_sql=(
                        f'ALTER TABLE "app"."generic_data" ADD CONSTRAINT "{name}" '
                        f'FOREIGN KEY ("{column}") REFERENCES {target} ("id") ON DELETE CASCADE'
                    ),
                )
                for name, column, target in IMPLIED_KEYS
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="genericdata",
                    name=field,
                    field=hzm.db.fields.ForeignKey(
                        db_constraint=False,
                        db_on_delete="CASCADE",
                        related_name=related_name,
                        to=to,
                    ),
                )
                for field, related_name, to in (
                    ("tenant", "+", "core.tenant"),
                    ("project", "+", "core.project"),
                    ("table", "rows", "core.tablemetadata"),
                )
            ],
        ),
    ]
