"""python manage.py prune_audit_logs --older-than-days N: delete old audit rows, audited."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hzm.deploy.connection import MigrationConnectionCommand
from hzm.progress import Progress, for_verbosity
from ops.retention import DEFAULT_BATCH_SIZE, RetentionRefused, prune_audit_logs


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Retention of ops.audit_logs: delete the rows older than --older-than-days, "
        "--batch-size rows per transaction, and record the prune itself in the audit trail "
        "(action PRUNE). Platform staff only: runs as the tables' owner, outside any tenant "
        "context."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--older-than-days", type=int, required=True, metavar="N")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            metavar="ROWS",
            help=f"rows deleted per transaction ({DEFAULT_BATCH_SIZE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument("--database", default="default", help="database alias")

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def handle(self, *args: Any, **options: Any) -> None:
        # Periodic lines while it deletes (-v 0: none, and no summary either).
        write = for_verbosity(self.stdout.write, options["verbosity"])
        progress = Progress("ops.audit_logs: deleting", write)
        try:
            result = prune_audit_logs(
                options["older_than_days"],
                batch_size=options["batch_size"],
                dry_run=options["dry_run"],
                using=options["database"],
                on_batch=lambda deleted: progress.update(rows=deleted),
            )
        except (RetentionRefused, ValueError) as error:
            raise CommandError(str(error)) from error
        if write is None:
            return
        if options["dry_run"]:
            self.stdout.write(
                f"ops.audit_logs: would delete {result.deleted} rows older than "
                f"{result.cutoff.isoformat()}"
            )
        else:
            progress.finish()
            self.stdout.write(
                f"ops.audit_logs: deleted {result.deleted} rows older than "
                f"{result.cutoff.isoformat()} in {result.batches} batch(es); recorded as PRUNE"
            )
