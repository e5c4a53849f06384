"""The platform admin role's grants on django-axes' tables, which throttle the admin's sign-in.

The admin's process (README: hzm_admin, granted <HZM_APP_ROLE>_admin) records failed
sign-ins in axes_accessattempt (hzm/throttling.py): it counts them (SELECT), adds and
updates an attempt row (INSERT, UPDATE; the row is locked with SELECT ... FOR UPDATE),
and deletes the rows of an expired cool-off or of a successful sign-in (DELETE). Django
deletes those rows through its collector, which first deletes their
axes_accessattemptexpiration rows (SELECT, DELETE; nothing else writes that table while
AXES_USE_ATTEMPT_EXPIRATION is off). axes' access log and failure log are off
(AXES_DISABLE_ACCESS_LOG, no AXES_ENABLE_ACCESS_FAILURE_LOG): no grant on them.

The runtime role gets nothing: the tenants' sign-in is not throttled by axes.
"""

from django.db import migrations

from hzm.db.operations import GrantServiceTablePrivileges

ADMIN_AXES_TABLES = [
    ("axes.accessattempt", ["SELECT", "INSERT", "UPDATE", "DELETE"]),
    ("axes.accessattemptexpiration", ["SELECT", "DELETE"]),
]


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0003_add_monitoring"),
        ("hzm", "0004_web_sign_in_and_admin_role"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [
        GrantServiceTablePrivileges(model, "admin", privileges)
        for model, privileges in ADMIN_AXES_TABLES
    ]
