"""An index on ops.audit_logs (tenant_id, id), built concurrently.

Since every tenant policy reads the tenant once per statement (hzm 0005), the planner
no longer sees which tenant a query is for, and plans a tenant's page of its own trail
(ORDER BY id DESC LIMIT 50) for the average tenant: a quiet tenant's page walked the
primary key backwards through most of the trail (105 ms at 300k rows; bench/RESULTS.md,
policies). With (tenant_id, id) every tenant's page is one index range, 0.2-0.3 ms.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("ops", "0004_admin_sign_in_throttling")]

    operations = [
        AddIndexConcurrently(
            model_name="auditlog",
            index=models.Index(fields=["tenant_id", "id"], name="idx_audit_tenant_id"),
        ),
    ]
