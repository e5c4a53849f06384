"""The guide's 005: a database role for each microservice schema (comms, billing).

Each role (<HZM_APP_ROLE>_<service>: hzm_app_comms, hzm_app_billing by default) is
built like the runtime role: NOLOGIN, no way around row level security, owning
nothing. It may use its own schema, `app` (the context functions its policies and
triggers call) and `core` (to read what it needs there); the table grants come with
the service's own migrations (comms 0001, billing 0001), next to the tables. Like the
runtime role it reaches rows only through a tenant context (docs/schema.md).
"""

from django.db import migrations

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [("hzm", "0002_runtime_role_and_audit_trail")]

    operations = [
        hzm_ops.EnsureServiceRole("comms"),
        hzm_ops.GrantServiceSchemaUsage("comms", "comms"),
        hzm_ops.GrantServiceSchemaUsage("comms", "app"),
        hzm_ops.GrantServiceSchemaUsage("comms", "core"),
        hzm_ops.EnsureServiceRole("billing"),
        hzm_ops.GrantServiceSchemaUsage("billing", "billing"),
        hzm_ops.GrantServiceSchemaUsage("billing", "app"),
        hzm_ops.GrantServiceSchemaUsage("billing", "core"),
    ]
