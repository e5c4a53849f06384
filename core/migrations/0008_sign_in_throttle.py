"""A throttle for the tenants' sign-in (/api/v1/auth/login), as django-axes is the admin's.

Until now only the admin's sign-in was throttled: axes keeps its failure counts in
tables the admin's role holds, and the web process runs as the runtime role, which holds
none. A tenant user's password could be guessed as fast as the server answered.

app.sign_in_failures holds the failures per email (lower-cased) and client address. The
runtime role has no privilege on it, so no request, injected SQL included, reads who
failed to sign in from where. It reaches the table through three SECURITY DEFINER
functions, search_path pinned, EXECUTE for the runtime role only:

- app.sign_in_wait(email, ip): the seconds until that pair may try again (0: now). A
  locked-out pair is refused before any password is hashed.
- app.sign_in_failed(email, ip, limit, cool_off_seconds): one more failure. A failure
  within the cool-off of the previous one adds to the count, a later one starts it again.
  At `limit` the pair is locked out for the cool-off, counted from that failure. Returns
  the wait that leaves (0: not locked out). The cool-off is at most a day, so a caller
  cannot lock a pair out for longer. Each call also removes up to 100 rows older than
  any cool-off, so the table stays small without a job of its own.
- app.sign_in_succeeded(ip): clears the failures of the signed-in user's own email from
  that address. The email is the one of app.current_user_id(), the verified context's
  user, not an argument: injected SQL cannot clear the count of an account it is guessing.
"""

from django.db import migrations, models

from hzm.db.operations import GrantExecute, InstallFunction

DEFINER = {"security_definer": True, "search_path": "pg_catalog, pg_temp"}

SIGN_IN_WAIT_ARGUMENTS = "p_email text, p_ip text"
SIGN_IN_WAIT = """
  SELECT coalesce(max(ceil(extract(epoch FROM f.locked_until - now())))::int, 0)
  FROM app.sign_in_failures AS f
  WHERE f.email = lower(p_email) AND f.ip_address = coalesce(p_ip, '')
    AND f.locked_until > now()
"""

SIGN_IN_FAILED_ARGUMENTS = "p_email text, p_ip text, p_limit int, p_cool_off_seconds int"
SIGN_IN_FAILED = """
DECLARE
  v_cool_off interval;
  v_locked_until timestamptz;
BEGIN
  IF p_limit IS NULL OR p_limit < 1
     OR p_cool_off_seconds IS NULL OR p_cool_off_seconds NOT BETWEEN 1 AND 86400 THEN
    RAISE EXCEPTION 'sign-in throttle: limit % and cool-off % s (the limit at least 1, the '
                    'cool-off 1 to 86400 seconds)', p_limit, p_cool_off_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_cool_off := make_interval(secs => p_cool_off_seconds);
  INSERT INTO app.sign_in_failures AS f (email, ip_address, failures, last_failure, locked_until)
  VALUES (lower(p_email), coalesce(p_ip, ''), 1, now(),
          CASE WHEN p_limit <= 1 THEN now() + v_cool_off END)
  ON CONFLICT (email, ip_address) DO UPDATE SET
    failures = CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END,
    last_failure = now(),
    locked_until = CASE
      WHEN (CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END)
           >= p_limit
      THEN now() + v_cool_off END
  RETURNING f.locked_until INTO v_locked_until;
  -- Rows older than any cool-off count for nothing: a few go with each new failure.
  DELETE FROM app.sign_in_failures AS o
  WHERE o.ctid = ANY (ARRAY(
    SELECT x.ctid FROM app.sign_in_failures AS x
    WHERE x.last_failure < now() - interval '1 day'
      AND (x.locked_until IS NULL OR x.locked_until < now())
    LIMIT 100));
  RETURN coalesce(ceil(extract(epoch FROM v_locked_until - now()))::int, 0);
END"""

SIGN_IN_SUCCEEDED_ARGUMENTS = "p_ip text"
SIGN_IN_SUCCEEDED = """
  DELETE FROM app.sign_in_failures AS f
  USING core.users AS u
  WHERE u.id = app.current_user_id()
    AND f.email = lower(u.email::text) AND f.ip_address = coalesce(p_ip, '')
"""

FUNCTIONS = [
    ("app.sign_in_wait", SIGN_IN_WAIT_ARGUMENTS, "int", SIGN_IN_WAIT, "sql", "STABLE"),
    ("app.sign_in_failed", SIGN_IN_FAILED_ARGUMENTS, "int", SIGN_IN_FAILED, "plpgsql", "VOLATILE"),
    ("app.sign_in_succeeded", SIGN_IN_SUCCEEDED_ARGUMENTS, "void", SIGN_IN_SUCCEEDED, "sql",
     "VOLATILE"),
]  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0007_index_user_references"),
        ("hzm", "0006_verified_tenant_context"),
    ]

    operations = [
        migrations.CreateModel(
            name="SignInFailure",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email", models.TextField()),
                ("ip_address", models.TextField()),
                ("failures", models.IntegerField()),
                ("last_failure", models.DateTimeField()),
                ("locked_until", models.DateTimeField(null=True)),
            ],
            options={
                "db_table": 'app"."sign_in_failures',
                "indexes": [
                    models.Index(fields=["last_failure"], name="idx_sign_in_failures_last")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("email", "ip_address"), name="sign_in_failures_email_ip_key"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(failures__gte=1),
                        name="sign_in_failures_failures_check",
                    ),
                ],
            },
        ),
        *[
            operation
            for name, arguments, returns, body, language, volatility in FUNCTIONS
            for operation in (
                InstallFunction(
                    name=name,
                    arguments=arguments,
                    returns=returns,
                    body=body,
                    language=language,
                    volatility=volatility,
                    **DEFINER,
                ),
                GrantExecute(name, arguments),
            )
        ],
    ]
