"""`manage.py changepassword`: django.contrib.auth's, run as the owner (MIGRATION_DATABASE_URL).

The `hzm` app comes before django.contrib.auth in INSTALLED_APPS, so this one runs.
"""

from typing import Any

from django.contrib.auth.management.commands import changepassword

from hzm.deploy.connection import MigrationConnectionCommand


class Command(MigrationConnectionCommand, changepassword.Command):
    help = changepassword.Command.help + " Connects with MIGRATION_DATABASE_URL when it is set."

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"bypass_rls": True}  # core.users forces row level security
