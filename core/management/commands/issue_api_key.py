"""python manage.py issue_api_key ...: a new API key, printed once (and nothing else)."""

import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.api_keys import KeySettingError, parse_rate_limit
from core.management.base import OnboardingCommand
from core.onboarding import OnboardingError, find_project, find_tenant, find_user, issue_api_key


class Command(OnboardingCommand):
    help = """\
Issue an API key and print it on stdout, once, with nothing else: it is not stored (only
its hash is) and cannot be shown again, so capture it (KEY=$(...)). Clients send it as
`Authorization: Bearer <key>`. A key is for one project (--project) or for every project
of its tenant (--tenant-wide), acts as its user, and is held to its scopes, addresses,
origins, rate limits and expiry (README, API keys). Revoke it with revoke_api_key. Runs
as the owner (MIGRATION_DATABASE_URL when set) and is recorded in the audit trail."""
    examples = """\
  KEY=$(python manage.py issue_api_key --project 7 --name "shop backend")
  python manage.py issue_api_key --tenant acme --tenant-wide --user ops@acme.test \\
      --name reporting --scope read --rate-limit-per-minute 10 --expires-in 90
  python manage.py issue_api_key --tenant acme --project Shop --name storefront \\
      --scope read:products --allow-origin https://shop.acme.test --allow-ip 203.0.113.0/24"""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--name", required=True, help="what the key is for, as the admin lists it"
        )
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--project",
            metavar="ID_OR_NAME",
            help="the project the key opens: its id, or its name with --tenant",
        )
        which.add_argument(
            "--tenant-wide",
            action="store_true",
            help="the key opens every project of --tenant (needs --tenant and --user)",
        )
        parser.add_argument(
            "--tenant",
            help="the tenant's slug or id (default: the project's tenant)",
        )
        parser.add_argument(
            "--user",
            metavar="EMAIL",
            help="the user of the tenant the key acts as (default: the project's owner)",
        )
        parser.add_argument(
            "--scope",
            action="append",
            metavar="SCOPE",
            help="what the key may do, repeatable or comma-separated: read (read rows and "
            "table definitions, queries, search), write (create, change, delete rows), "
            "define (create, alter, drop tables); <scope>:<table> for one table only "
            "(read:products). Default: read, write and define",
        )
        parser.add_argument(
            "--allow-ip",
            action="append",
            metavar="CIDR",
            help="a client address or network the key may be used from (203.0.113.7, "
            "10.0.0.0/8), repeatable; default: any",
        )
        parser.add_argument(
            "--allow-origin",
            action="append",
            metavar="ORIGIN",
            help="a browser origin the key may be used from, checked against the Origin "
            "header: app.example.com (any scheme and port), *.example.com (its "
            "subdomains) or https://app.example.com (that origin only); repeatable. With "
            "any, requests without an Origin header are refused. Default: any",
        )
        parser.add_argument(
            "--rate-limit-per-minute",
            metavar="N",
            default="default",
            help="requests let through per minute (UTC clock minute), or none; default 60",
        )
        parser.add_argument(
            "--rate-limit-per-day",
            metavar="N",
            default="default",
            help="requests let through per UTC day, or none; default 10000",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-in",
            type=int,
            metavar="DAYS",
            help="the key stops working this many days from now; default: never",
        )
        expiry.add_argument(
            "--expires-at",
            metavar="WHEN",
            help="the key stops working at this ISO 8601 time (2030-01-31T00:00:00Z)",
        )

    def run(self, **options: Any) -> None:
        tenant = find_tenant(options["tenant"]) if options["tenant"] else None
        project = None
        if options["tenant_wide"]:
            if tenant is None or not options["user"]:
                raise OnboardingError("--tenant-wide: give --tenant and --user too")
        else:
            project = find_project(options["project"], tenant)
            tenant = tenant or project.tenant
        if options["user"]:
            user = find_user(tenant, options["user"])
        else:
            user = project.user
        try:
            limits = {
                name: parse_rate_limit(options[name], f"--{name.replace('_', '-')}")
                for name in ("rate_limit_per_minute", "rate_limit_per_day")
                if options[name] != "default"
            }
        except KeySettingError as error:
            raise OnboardingError(str(error)) from None
        api_key, plaintext = issue_api_key(
            tenant,
            user,
            options["name"],
            project=project,
            scopes=",".join(options["scope"]) if options["scope"] else None,
            allowed_ips=options["allow_ip"],
            allowed_domains=options["allow_origin"],
            expires_at=self._expiry(options),
            **limits,
        )
        where = (
            f"project {project.pk}" if project is not None else f"every project of {tenant.slug}"
        )
        self.tell(
            f"Issued API key {api_key.name!r} ({api_key.key_prefix}) for {where}, as "
            f"{user.email}, scopes {', '.join(api_key.scopes)}. It is shown this once."
        )
        self.stdout.write(plaintext)

    def _expiry(self, options: dict[str, Any]) -> datetime.datetime | None:
        if options["expires_in"] is not None:
            if options["expires_in"] < 1:
                raise OnboardingError("--expires-in: at least 1 day")
            return timezone.now() + datetime.timedelta(days=options["expires_in"])
        if options["expires_at"]:
            text = options["expires_at"].strip().replace("Z", "+00:00")
            when = parse_datetime(text)
            if when is None:
                raise OnboardingError(
                    f"--expires-at {options['expires_at']!r}: not an ISO 8601 time "
                    "(2030-01-31T00:00:00Z)"
                )
            if timezone.is_naive(when):
                raise OnboardingError(
                    f"--expires-at {options['expires_at']!r}: give the time zone (Z or +02:00)"
                )
            return when
        return None
