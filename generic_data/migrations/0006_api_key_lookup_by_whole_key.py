"""API keys found by the whole key, compared in the database: no hash leaves it (issue 11).

app.api_key_tenant(prefix) (generic_data 0003) returned any prefix's tenant, project,
user and key hash to whoever called it, without a context: SQL run as the runtime role
could collect the hashes of every key whose prefix it learnt. app.api_key_lookup(key)
takes the presented key itself, hashes it (SHA-256, as hzm.secrets.hash_api_key does)
and returns the key's row only when the hash matches, never the hash. A caller learns
about a key only what holding that very key already gives. The runtime role may no
longer call app.api_key_tenant.
"""

from django.db import migrations

from hzm.db.operations import GrantExecute, InstallFunction, RevokeExecute

API_KEY_LOOKUP_ARGUMENTS = "p_key text"
API_KEY_LOOKUP_RETURNS = (
    "TABLE(key_id int, tenant_id int, project_id int, user_id int, usable boolean)"
)
# The prefix (hzm_ and 12 hex digits: core.models.API_KEY_PREFIX_LENGTH) finds the row
# through its unique index; the hash of the whole key must then match. Usable as in
# generic_data 0003: the key active, unrevoked and unexpired, its tenant, user and
# project (if any) live and active.
API_KEY_LOOKUP = """
  SELECT k.id, k.tenant_id, k.project_id, k.user_id,
         k.is_active IS TRUE AND k.revoked_at IS NULL
         AND (k.expires_at IS NULL OR k.expires_at > now())
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE
         AND u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND (k.project_id IS NULL OR (p.is_active IS TRUE AND p.is_deleted IS NOT TRUE))
  FROM core.api_keys AS k
  JOIN core.tenants AS t ON t.id = k.tenant_id
  JOIN core.users AS u ON u.id = k.user_id
  LEFT JOIN core.projects AS p ON p.id = k.project_id
  WHERE k.key_prefix = substr(p_key, 1, 16)
    AND k.key_hash = encode(sha256(convert_to(p_key, 'UTF8')), 'hex')
"""


class Migration(migrations.Migration):
    dependencies = [
        ("generic_data", "0005_record_counts"),
        ("core", "0006_onboarding_and_key_limits"),
    ]

    operations = [
        InstallFunction(
            name="app.api_key_lookup",
            arguments=API_KEY_LOOKUP_ARGUMENTS,
            returns=API_KEY_LOOKUP_RETURNS,
            body=API_KEY_LOOKUP,
            language="sql",
            volatility="STABLE",
            security_definer=True,
            search_path="pg_catalog, pg_temp",
        ),
        GrantExecute("app.api_key_lookup", API_KEY_LOOKUP_ARGUMENTS),
        RevokeExecute("app.api_key_tenant", "p_prefix text"),
    ]
