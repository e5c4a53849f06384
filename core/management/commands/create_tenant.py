"""python manage.py create_tenant NAME [--slug ...]: a new tenant; prints its id."""

from typing import Any

from core.management.base import OnboardingCommand
from core.onboarding import create_tenant


class Command(OnboardingCommand):
    help = """\
Create a tenant (a customer of the platform) and print its id, nothing else, on stdout.
It starts with the database's defaults (plan free, 3 projects, 10 tables per project,
10,000 records); change them in the admin (Core > Tenants). Runs as the owner
(MIGRATION_DATABASE_URL when set) and is recorded in the audit trail."""
    examples = """\
  python manage.py create_tenant "Acme Corp"                # slug acme-corp
  python manage.py create_tenant "Acme Corp" --slug acme --default-language de \\
      --default-currency EUR --timezone Europe/Berlin
  TENANT=$(python manage.py create_tenant "Acme Corp" --slug acme)"""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the tenant's name, as people see it (Acme Corp)")
        parser.add_argument(
            "--slug",
            help="its short name in URLs and in the other commands' --tenant: lower-case "
            "letters and digits joined by - or _ (default: made from the name)",
        )
        parser.add_argument(
            "--domain", help="the tenant's own domain (acme.example.com), unique; optional"
        )
        parser.add_argument(
            "--default-language",
            metavar="CODE",
            help="a code of cfg.languages (en, de, tr, fr); default en",
        )
        parser.add_argument(
            "--default-currency",
            metavar="CODE",
            help="a code of cfg.currencies (USD, EUR, TRY); default USD",
        )
        parser.add_argument(
            "--timezone", metavar="ZONE", help="an IANA time zone (Europe/Istanbul); default UTC"
        )

    def run(self, **options: Any) -> None:
        tenant = create_tenant(
            options["name"],
            slug=options["slug"],
            domain=options["domain"],
            default_language=options["default_language"],
            default_currency=options["default_currency"],
            time_zone=options["timezone"],
        )
        self.tell(f"Created tenant {tenant.name!r} (slug {tenant.slug}, id {tenant.pk}).")
        self.stdout.write(str(tenant.pk))
