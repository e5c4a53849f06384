"""Audit cfg: every INSERT, UPDATE and DELETE of its tables goes to ops.audit_logs.

The seed audits only core and app tables, so changes made to the platform's
reference data (in the admin or anywhere else) left no trace. translations has an
`id`; languages and currencies are keyed by code and exchange_rates by
(from_currency, to_currency, rate_date): their triggers pass those key columns to
ops.log_audit, which records them as the entity id (hzm 0002), e.g. "USD,EUR,2025-01-31".
"""

from django.db import migrations

from hzm.db import operations as hzm_ops


class Migration(migrations.Migration):
    dependencies = [
        ("cfg", "0002_runtime_access"),
        # ops.log_audit as hzm 0002 made it (any primary key), and the trail it writes.
        ("hzm", "0002_runtime_role_and_audit_trail"),
        ("ops", "0002_audit_trail_rls"),
    ]

    operations = [
        hzm_ops.AttachAuditTrigger("language"),
        hzm_ops.AttachAuditTrigger("currency"),
        hzm_ops.AttachAuditTrigger("exchangerate"),
        hzm_ops.AttachAuditTrigger("translation"),
    ]
