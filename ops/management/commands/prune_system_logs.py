"""python manage.py prune_system_logs --older-than-months N: drop old months, create coming ones."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hzm.deploy.connection import MigrationConnectionCommand
from hzm.progress import Progress, for_verbosity
from ops.retention import DEFAULT_MONTHS_AHEAD, RetentionRefused, prune_system_logs


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Retention of ops.system_logs (partitioned by month): drop the month partitions "
        "older than --older-than-months (the current month and that many before it are "
        "kept), delete older rows from the default partition, and create the partitions of "
        "the current month and the next --months-ahead. Run it daily, as the tables' owner."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than-months", type=int, required=True, metavar="N")
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=DEFAULT_MONTHS_AHEAD,
            metavar="M",
            help=f"months after the current one to create partitions for ({DEFAULT_MONTHS_AHEAD})",
        )
        parser.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
        parser.add_argument("--database", default="default", help="database alias")

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def handle(self, *args: Any, **options: Any) -> None:
        # A line per step as it commits, with the time so far (-v 0: nothing at all).
        write = for_verbosity(self.stdout.write, options["verbosity"])
        progress = Progress("ops.system_logs", write, unit="steps", interval=0)
        steps = 0

        def step(message: str) -> None:
            nonlocal steps
            steps += 1
            progress.update(rows=steps, note=message)

        try:
            result = prune_system_logs(
                options["older_than_months"],
                months_ahead=options["months_ahead"],
                dry_run=options["dry_run"],
                using=options["database"],
                on_step=step,
            )
        except (RetentionRefused, ValueError) as error:
            raise CommandError(str(error)) from error
        if write is None:
            return
        if not options["dry_run"]:
            self.stdout.write(
                f"ops.system_logs: keeping from {result.cutoff.isoformat()}; dropped "
                f"{len(result.dropped)}, created {len(result.created)} partition(s), deleted "
                f"{result.deleted_from_default} older rows from the default partition"
            )
            return
        verb = "would "
        for name in result.dropped:
            self.stdout.write(f"{verb}drop ops.{name}")
        for name in result.created:
            self.stdout.write(f"{verb}create ops.{name}")
        self.stdout.write(
            f"ops.system_logs: keeping from {result.cutoff.isoformat()}; {verb}delete "
            f"{result.deleted_from_default} older rows from the default partition"
        )
