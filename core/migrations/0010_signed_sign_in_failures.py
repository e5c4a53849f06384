"""The tenants' sign-in throttle counts only the failures the web process signed.

0008's app.sign_in_failed(email, ip, limit, cool_off_seconds) believed its caller's
address, so SQL injected into any request could lock out any (email, address) pair it
knew, the victim's own address included, for up to a day. Over HTTP nobody can: the
address is the client's own (hzm.proxies.client_ip).

- app.count_sign_in_failure(email, ip, limit, cool_off_seconds, signature): the same
  failure as app.sign_in_failed(), counted only when `signature` is HMAC-SHA256, with a
  key of HZM_CONTEXT_KEY (those that verify a tenant context's token,
  hzm_private.verifying_keys()), over the email, the
  address, the limit, the cool-off and this very transaction (the backend's pid and the
  transaction's start, as a context token is bound). The web process signs the failure of
  the sign-in it is answering (core.sign_in_throttle.failure_signature): the email in the
  request, the client's address. Injected SQL holds no key, and a signature it could see
  is for another transaction. An unsigned failure is refused (insufficient_privilege) and
  counts nothing.
- 0008's app.sign_in_failed() stays as it was (reversing needs nothing back), with
  EXECUTE taken from the runtime role: nobody but the owner may call it.
"""

from importlib import import_module

from django.db import migrations

from hzm.db.operations import GrantExecute, InstallFunction, RevokeExecute

throttle = import_module("core.migrations.0008_sign_in_throttle")

SIGNED_ARGUMENTS = "p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text"
# 0008's body, with the signature checked after the limit and the cool-off (the same
# error as before for the same wrong values).
SIGNED_SIGN_IN_FAILED = """
DECLARE
  v_message text;
  v_key bytea;
  v_signed boolean := false;
  v_cool_off interval;
  v_locked_until timestamptz;
BEGIN
  IF p_limit IS NULL OR p_limit < 1
     OR p_cool_off_seconds IS NULL OR p_cool_off_seconds NOT BETWEEN 1 AND 86400 THEN
    RAISE EXCEPTION 'sign-in throttle: limit % and cool-off % s (the limit at least 1, the '
                    'cool-off 1 to 86400 seconds)', p_limit, p_cool_off_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_message := 'sign-in-failure.v1.'
    || encode(convert_to(p_email, 'UTF8'), 'hex') || '.'
    || encode(convert_to(coalesce(p_ip, ''), 'UTF8'), 'hex') || '.'
    || p_limit::text || '.' || p_cool_off_seconds::text || '.'
    || pg_backend_pid()::text || '.' || ((extract(epoch FROM now()) * 1000000)::bigint)::text;
  FOREACH v_key IN ARRAY hzm_private.verifying_keys() LOOP
    IF encode(public.hmac(convert_to(v_message, 'UTF8'), v_key, 'sha256'), 'hex')
       = p_signature THEN
      v_signed := true;
      EXIT;
    END IF;
  END LOOP;
  IF p_email IS NULL OR NOT v_signed THEN
    RAISE EXCEPTION 'sign-in throttle: this failure is not signed for this transaction'
      USING ERRCODE = 'insufficient_privilege';
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


class Migration(migrations.Migration):
    dependencies = [("core", "0009_sign_in_failures_for_the_admin")]

    operations = [
        InstallFunction(
            name="app.count_sign_in_failure",
            arguments=SIGNED_ARGUMENTS,
            returns="int",
            body=SIGNED_SIGN_IN_FAILED,
            language="plpgsql",
            volatility="VOLATILE",
            **throttle.DEFINER,
        ),
        GrantExecute("app.count_sign_in_failure", SIGNED_ARGUMENTS),
        RevokeExecute("app.sign_in_failed", throttle.SIGN_IN_FAILED_ARGUMENTS),
    ]
