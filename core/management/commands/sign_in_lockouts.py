"""python manage.py sign_in_lockouts [EMAIL]: tenant users' failed sign-ins and lock-outs."""

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from core import sign_in_throttle
from core.management.commands.sign_in_unlock import email_argument
from hzm.deploy.connection import MigrationConnectionCommand


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "List the failed sign-ins of tenant users (/api/v1/auth/login) on record, newest "
        "first, or those of one EMAIL: email, address, failures, the last failure, and until "
        "when the pair is locked out. The tenants' side of axes_list_attempts. Runs as the "
        "owner (MIGRATION_DATABASE_URL when set)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email", nargs="?", metavar="EMAIL")
        parser.add_argument("--database", default="default", help="database alias")

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def handle(self, *args: Any, **options: Any) -> None:
        email = email_argument(options["email"]) if options["email"] is not None else None
        rows = sign_in_throttle.recorded_failures(email, using=options["database"])
        now = timezone.now()
        for row in rows:
            locked = (
                f"locked out until {row.locked_until.isoformat(timespec='seconds')}"
                if row.locked_until is not None and row.locked_until > now
                else "not locked out"
            )
            self.stdout.write(
                f"{row.email}\t{row.ip_address or '-'}\t{row.failures} failure(s)\t"
                f"last {row.last_failure.isoformat(timespec='seconds')}\t{locked}"
            )
        if not rows and options["verbosity"] > 0:
            self.stderr.write("No failed sign-ins on record.")
