"""python manage.py sign_in_unlock EMAIL... [--ip ADDRESS]: end tenant users' sign-in lock-outs."""

import ipaddress
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core import sign_in_throttle
from hzm.deploy.connection import MigrationConnectionCommand


def address_argument(value: str) -> str:
    """A client address as the throttle keys it (hzm.proxies.client_ip's form)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise CommandError(f"--ip {value!r} is not an IPv4 or IPv6 address") from None


def email_argument(value: str) -> str:
    email = sign_in_throttle.throttled_email(value)
    if email is None:
        raise CommandError(
            f"{value[:80]!r} is not an email the throttle counts (1 to "
            f"{sign_in_throttle.EMAIL_MAX_LENGTH} characters, no NUL)"
        )
    return email


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Unlock tenant users' sign-in (/api/v1/auth/login) before the cool-off: forget the "
        "failed sign-ins of each EMAIL (in any case) from every address, or from --ip only. "
        "The tenants' side of axes_reset_username. Runs as the owner (MIGRATION_DATABASE_URL "
        "when set); the web process's role may not touch app.sign_in_failures."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("emails", nargs="+", metavar="EMAIL")
        parser.add_argument("--ip", metavar="ADDRESS", help="only the failures from this address")
        parser.add_argument("--database", default="default", help="database alias")

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}  # the owner owns app.sign_in_failures, which has no row level security

    def handle(self, *args: Any, **options: Any) -> None:
        # Every argument checked before anything is deleted.
        emails = [email_argument(email) for email in options["emails"]]
        address = address_argument(options["ip"]) if options["ip"] is not None else None
        where = f" from {address}" if address is not None else ""
        with transaction.atomic(using=options["database"]):  # all the emails, or none
            forgotten = {
                email: sign_in_throttle.unlock(email, address, using=options["database"])
                for email in emails
            }
        for email, pairs in forgotten.items():
            if pairs:
                self.stdout.write(f"{email.lower()}: unlocked, {pairs} address(es) forgotten")
            else:
                self.stdout.write(f"{email.lower()}: no failed sign-ins on record{where}")
