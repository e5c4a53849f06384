"""API keys enforce their limits; the admin's pages for tenant users, projects and API keys.

core.api_key_usage counts one key's use per UTC day, with its current minute's window
(core/api_keys.py). Only two SECURITY DEFINER functions, callable by the runtime role
alone, write it (no tenant-facing role may read or change it, so a tenant can neither
see another's counts nor reset its own limits):

- app.count_api_key_request(key, refused) counts one request of a key of the context's
  tenant and answers whether it is let through: refused by the caller (a scope, an
  address or an origin the key does not allow), over the day's limit or over the
  minute's. It is the rate limit's counter: one row per key and day, locked while it
  is read and written (INSERT ... ON CONFLICT DO NOTHING, then SELECT ... FOR UPDATE),
  so concurrent requests in any number of processes count one after the other.
  Requests that are refused do not use up the limits; they count as errors. The
  windows are the database's clock's UTC minute and day. A key's first request of a
  day folds the days before into core.api_keys (last_used_at, total_requests,
  total_errors) and deletes them: one write of the key's row (and its audit row) per
  key and day, never one per request.
- app.count_api_key_error(key) adds one error (an answer of 400 or more that the key
  check itself did not refuse) to the key's latest day.

Both take the tenant only from app.current_tenant() and act only on a key of that
tenant; without a context they do nothing. search_path is pinned.

The platform admin's role (hzm.0004) gets what its new pages need: creating and
(soft) deleting tenant users, projects, issuing and revoking (updating) API keys, and
reading the usage counts. API keys are never deleted from the admin.
"""

import hzm.db.fields
from django.db import migrations, models

from hzm.db.operations import GrantExecute, GrantServiceTablePrivileges, InstallFunction

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

COUNT_REQUEST_ARGUMENTS = "p_key_id int, p_refused boolean"
COUNT_REQUEST_RETURNS = "TABLE(allowed boolean, limit_name text, retry_after int)"
COUNT_REQUEST = """
DECLARE
  v_tenant int := app.current_tenant();
  v_now timestamptz := now();
  v_day date := (v_now AT TIME ZONE 'UTC')::date;
  v_minute timestamptz := date_trunc('minute', v_now, 'UTC');
  v_per_minute int;
  v_per_day int;
  v_day_count int;
  v_minute_count int;
  v_minute_start timestamptz;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing counted, no answer
  END IF;
  SELECT k.rate_limit_per_minute, k.rate_limit_per_day INTO v_per_minute, v_per_day
    FROM core.api_keys AS k
   WHERE k.id = p_key_id AND k.tenant_id = v_tenant;
  IF NOT FOUND THEN
    RETURN;  -- not a key of the context's tenant
  END IF;

  INSERT INTO core.api_key_usage AS u (api_key_id, day, minute_start)
  VALUES (p_key_id, v_day, v_minute)
  ON CONFLICT (api_key_id, day) DO NOTHING;
  IF FOUND THEN
    -- The key's first request of the day: fold the days before into its own totals.
    WITH folded AS (
      DELETE FROM core.api_key_usage AS d
       WHERE d.api_key_id = p_key_id AND d.day < v_day
      RETURNING d.requests, d.errors, d.last_used_at
    ), total AS (
      SELECT sum(f.requests) AS requests, sum(f.errors) AS errors,
             max(f.last_used_at) AS last_used_at
        FROM folded AS f
    )
    UPDATE core.api_keys AS k
       SET total_requests = coalesce(k.total_requests, 0) + t.requests,
           total_errors = coalesce(k.total_errors, 0) + t.errors,
           last_used_at = greatest(k.last_used_at, t.last_used_at)
      FROM total AS t
     WHERE k.id = p_key_id AND t.requests IS NOT NULL;
  END IF;

  -- The day's row, locked until the caller's transaction ends: the next request of this
  -- key, from any process, reads the counts this one leaves.
  SELECT u.day_count, u.minute_count, u.minute_start
    INTO v_day_count, v_minute_count, v_minute_start
    FROM core.api_key_usage AS u
   WHERE u.api_key_id = p_key_id AND u.day = v_day
     FOR UPDATE;
  IF v_minute_start IS DISTINCT FROM v_minute THEN
    v_minute_count := 0;  -- a new minute
  END IF;

  allowed := NOT p_refused;
  IF allowed AND v_per_day IS NOT NULL AND v_day_count >= v_per_day THEN
    allowed := false;
    limit_name := 'day';
    retry_after := greatest(1, ceil(extract(epoch FROM
      ((v_day + 1)::timestamp AT TIME ZONE 'UTC') - v_now)));
  ELSIF allowed AND v_per_minute IS NOT NULL AND v_minute_count >= v_per_minute THEN
    allowed := false;
    limit_name := 'minute';
    retry_after := greatest(1, ceil(extract(epoch FROM
      (v_minute + interval '1 minute') - v_now)));
  END IF;

  UPDATE core.api_key_usage AS u
     SET requests = u.requests + 1,
         errors = u.errors + CASE WHEN allowed THEN 0 ELSE 1 END,
         day_count = u.day_count + CASE WHEN allowed THEN 1 ELSE 0 END,
         minute_start = v_minute,
         minute_count = v_minute_count + CASE WHEN allowed THEN 1 ELSE 0 END,
         last_used_at = v_now
   WHERE u.api_key_id = p_key_id AND u.day = v_day;
  RETURN NEXT;
END"""

COUNT_ERROR_ARGUMENTS = "p_key_id int"
COUNT_ERROR = """
  UPDATE core.api_key_usage AS u
     SET errors = u.errors + 1
   WHERE u.api_key_id = p_key_id
     AND u.day = (SELECT max(l.day) FROM core.api_key_usage AS l WHERE l.api_key_id = p_key_id)
     AND EXISTS (SELECT FROM core.api_keys AS k
                  WHERE k.id = p_key_id AND k.tenant_id = app.current_tenant())
"""

DML = ["SELECT", "INSERT", "UPDATE", "DELETE"]
# What the admin's pages of core/admin_onboarding.py add to hzm.0004's grants.
ADMIN_TABLES = [
    ("user", ["INSERT", "DELETE"]),  # with 0004's SELECT, UPDATE; DELETE is a soft delete
    ("project", DML),
    ("apikey", ["SELECT", "INSERT", "UPDATE"]),
    ("apikeyusage", ["SELECT"]),
]


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_add_file_storage"),
        ("hzm", "0004_web_sign_in_and_admin_role"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiKeyUsage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("requests", models.BigIntegerField(db_default=0)),
                ("errors", models.BigIntegerField(db_default=0)),
                ("day_count", models.IntegerField(db_default=0)),
                ("minute_start", models.DateTimeField()),
                ("minute_count", models.IntegerField(db_default=0)),
                ("last_used_at", models.DateTimeField(null=True)),
                (
                    "api_key",
                    hzm.db.fields.ForeignKey(
                        db_on_delete="CASCADE", related_name="usage_days", to="core.apikey"
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "API key usage",
                "db_table": 'core"."api_key_usage',
                "constraints": [
                    models.UniqueConstraint(
                        fields=("api_key", "day"), name="api_key_usage_key_day_key"
                    )
                ],
            },
        ),
        InstallFunction(
            name="app.count_api_key_request",
            arguments=COUNT_REQUEST_ARGUMENTS,
            returns=COUNT_REQUEST_RETURNS,
            body=COUNT_REQUEST,
            **DEFINER,
        ),
        GrantExecute("app.count_api_key_request", COUNT_REQUEST_ARGUMENTS),
        InstallFunction(
            name="app.count_api_key_error",
            arguments=COUNT_ERROR_ARGUMENTS,
            returns="void",
            body=COUNT_ERROR,
            language="sql",
            **DEFINER,
        ),
        GrantExecute("app.count_api_key_error", COUNT_ERROR_ARGUMENTS),
        *[
            GrantServiceTablePrivileges(model, "admin", privileges)
            for model, privileges in ADMIN_TABLES
        ],
    ]
