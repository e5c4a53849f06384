"""`manage.py loaddata`: Django's command, run as the database owner (MIGRATION_DATABASE_URL).

Added to Django's command:
- `--missing-only`: load only the rows that are not in the database yet (found by primary
  or natural key); a row there is left as it is, edits made since included. `./dev up`
  loads the reference data this way.
- progress lines while it loads (rows, elapsed, rate) at verbosity 1 and above.
Reloading a row that exists writes only the columns that differ (hzm.db.columns), so
loading the same fixtures twice changes nothing the second time.
"""

from typing import Any

from django.core.management.commands import loaddata

from hzm.deploy.connection import MigrationConnectionCommand
from hzm.progress import Progress, for_verbosity


class Command(MigrationConnectionCommand, loaddata.Command):
    help = (
        loaddata.Command.help
        + " Connects with MIGRATION_DATABASE_URL when it is set. --missing-only leaves the "
        "rows already in the database as they are."
    )

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--missing-only",
            action="store_true",
            help="Load only the fixture rows that are not in the database yet (by primary or "
            "natural key); rows already there, and edits made to them, are left as they are.",
        )

    def handle(self, *fixture_labels: Any, **options: Any) -> None:
        self.missing_only = options["missing_only"]
        self.skipped = 0
        self.progress = Progress(
            "loaddata", for_verbosity(self.stdout.write, options["verbosity"]), unit="rows"
        )
        self.progress.update(rows=0)
        super().handle(*fixture_labels, **options)
        skipped = f"{self.skipped:,} already present, left as they are" if self.missing_only else ""
        self.progress.finish(skipped)

    def save_obj(self, obj: Any) -> bool:
        self.progress.update(rows=(self.progress.rows or 0) + 1)
        if self.missing_only and self._exists(obj.object):
            self.skipped += 1
            return False
        return super().save_obj(obj)

    def _exists(self, instance: Any) -> bool:
        """Whether the row of `instance` is in the database (its key was found, or is set)."""
        if instance.pk is None:
            return False  # a natural key the database does not hold yet
        return type(instance)._base_manager.using(self.using).filter(pk=instance.pk).exists()
