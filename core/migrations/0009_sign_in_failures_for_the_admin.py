"""The admin's role may list and delete the tenants' sign-in lock-outs (core.admin).

Deleting a row of app.sign_in_failures unlocks that email from that address before the
cool-off has passed; the admin's role may not write the rows otherwise.
"""

from django.db import migrations

from hzm.db.operations import GrantServiceTablePrivileges


class Migration(migrations.Migration):
    dependencies = [("core", "0008_sign_in_throttle")]

    operations = [GrantServiceTablePrivileges("core.signinfailure", "admin", ["SELECT", "DELETE"])]
