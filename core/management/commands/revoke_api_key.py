"""python manage.py revoke_api_key KEY --reason ...: a key stops working, for good."""

from typing import Any

from core.management.base import OnboardingCommand
from core.onboarding import find_api_key, revoke_api_key


class Command(OnboardingCommand):
    help = """\
Revoke an API key: from now on every request with it is refused (401 key_revoked). The
key stays, with when it was revoked and why, for the audit trail; it cannot be used
again (issue a new one). Runs as the owner (MIGRATION_DATABASE_URL when set) and is
recorded in the audit trail."""
    examples = """\
  python manage.py revoke_api_key hzm_0123456789ab --reason "leaked in a CI log"
  python manage.py revoke_api_key 42 --reason "the integration was retired\""""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "key",
            help="the key's public prefix (hzm_ and 12 hex digits, as the admin lists it), "
            "the whole key, or its id",
        )
        parser.add_argument("--reason", required=True, help="why it is revoked; kept with the key")

    def run(self, **options: Any) -> None:
        api_key = revoke_api_key(find_api_key(options["key"]), options["reason"])
        self.stdout.write(
            f"Revoked API key {api_key.name!r} ({api_key.key_prefix}) of tenant "
            f"{api_key.tenant_id}: {api_key.revoke_reason}"
        )
