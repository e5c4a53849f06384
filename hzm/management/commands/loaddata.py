"""`manage.py loaddata`: Django's command, run as the database owner (MIGRATION_DATABASE_URL)."""

from typing import Any

from django.core.management.commands import loaddata

from hzm.deploy.connection import MigrationConnectionCommand


class Command(MigrationConnectionCommand, loaddata.Command):
    help = loaddata.Command.help + " Connects with MIGRATION_DATABASE_URL when it is set."

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}
