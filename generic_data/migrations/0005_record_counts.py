"""Record limits in constant time per insert, serialised per tenant by a row only the
database's own trigger can lock.

Before: each insert took pg_advisory_xact_lock(hashtext('app.generic_data records'),
tenant) and counted the tenant's live rows (time in proportion to the tenant's size);
and any tenant's code could take the same advisory key at session level and block
another tenant's writes indefinitely.

Now app.record_counts holds each user table's live rows, kept by three statement
triggers on app.generic_data (transition tables: a bulk insert costs one call). When
a statement adds live rows, app.count_records() first locks the tenants it adds to
(their core.tenants row, FOR NO KEY UPDATE: writers of one tenant wait for each other;
foreign key checks, which take KEY SHARE, do not wait, and no tenant-facing role may
lock that row), then updates the counts, then compares the sum over the tenant's live
tables with core.tenants.max_records, refusing with check_violation and the constraint
name tenant_max_records (generic_data.services reports it as LimitExceeded). SECURITY
DEFINER with a pinned search_path; EXECUTE for nobody (triggers need none). Like
app.generic_data_unique, the counts have no tenant_id (table ids are global; the tenant
is the table's, in core.table_metadata) and no role but the owner may touch them.
"""

from django.db import migrations, models

from hzm.db.operations import AttachStatementTrigger, InstallFunction, RevokePublicExecute

COUNT_RECORDS = """
DECLARE
  v_tenants int[];
  v_tenant int;
  v_limit int;
  v_total bigint;
  v_added bigint;
BEGIN
  -- 1. The tenants this statement gives live rows (new rows, restored rows), locked first
  --    and in id order, so that two writers of one tenant never deadlock here.
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(DISTINCT n.tenant_id ORDER BY n.tenant_id) INTO v_tenants
    FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(DISTINCT n.tenant_id ORDER BY n.tenant_id) INTO v_tenants
    FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.is_deleted IS NOT TRUE AND (o.is_deleted IS TRUE OR o.table_id <> n.table_id);
  END IF;
  IF v_tenants IS NOT NULL THEN
    PERFORM 1 FROM core.tenants AS t WHERE t.id = ANY (v_tenants)
    ORDER BY t.id FOR NO KEY UPDATE;
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
  FOREACH v_tenant IN ARRAY coalesce(v_tenants, '{}'::int[]) LOOP
    SELECT t.max_records INTO v_limit FROM core.tenants AS t WHERE t.id = v_tenant;
    CONTINUE WHEN v_limit IS NULL;
    SELECT coalesce(sum(c.live_records), 0) INTO v_total
    FROM core.table_metadata AS m
    JOIN app.record_counts AS c ON c.table_id = m.id
    WHERE m.tenant_id = v_tenant AND m.is_deleted IS NOT TRUE;
    IF v_total > v_limit THEN
      IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO v_added FROM new_rows AS n
        WHERE n.tenant_id = v_tenant AND n.is_deleted IS NOT TRUE;
      ELSE
        SELECT count(*) INTO v_added FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.tenant_id = v_tenant AND n.is_deleted IS NOT TRUE AND o.is_deleted IS TRUE;
      END IF;
      RAISE EXCEPTION 'the tenant has % records; % more would exceed its plan''s max_records (%)',
        v_total - v_added, v_added, v_limit
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_max_records';
    END IF;
  END LOOP;
  RETURN NULL;
END"""

# The counts of the rows already there, once the triggers hold the table.
BACKFILL = """
INSERT INTO app.record_counts (table_id, live_records)
SELECT g.table_id, count(*) FILTER (WHERE g.is_deleted IS NOT TRUE)
FROM app.generic_data AS g GROUP BY 1
"""


class Migration(migrations.Migration):
    dependencies = [("generic_data", "0004_unique_field_values")]

    operations = [
        migrations.CreateModel(
            name="RecordCount",
            fields=[
                ("table_id", models.IntegerField(primary_key=True, serialize=False)),
                ("live_records", models.BigIntegerField(db_default=0)),
            ],
            options={"db_table": 'app"."record_counts'},
        ),
        InstallFunction(
            name="app.count_records",
            arguments="",
            returns="trigger",
            body=COUNT_RECORDS,
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        RevokePublicExecute("app.count_records", ""),
        AttachStatementTrigger(
            "genericdata",
            kind="count_insert",
            event="INSERT",
            function="app.count_records",
            new_table="new_rows",
        ),
        AttachStatementTrigger(
            "genericdata",
            kind="count_update",
            event="UPDATE",
            function="app.count_records",
            old_table="old_rows",
            new_table="new_rows",
        ),
        AttachStatementTrigger(
            "genericdata",
            kind="count_delete",
            event="DELETE",
            function="app.count_records",
            old_table="old_rows",
        ),
        migrations.RunSQL(BACKFILL, reverse_sql="DELETE FROM app.record_counts"),
    ]
