"""python manage.py create_tenant_user --tenant T --email E: a user of a tenant; prints its id."""

import sys
from typing import Any

from core.management.base import OnboardingCommand
from core.onboarding import OnboardingError, create_tenant_user, find_tenant


class Command(OnboardingCommand):
    help = """\
Create a user of a tenant and print the user's id, nothing else, on stdout. A user owns
projects and API keys (a key acts as its user). Without --password-stdin the user has
no password: it cannot sign in (POST /api/v1/auth/login) until one is set
(python manage.py changepassword EMAIL), but its API keys work. Platform admins are
made with createsuperuser instead. Runs as the owner (MIGRATION_DATABASE_URL when set)
and is recorded in the audit trail."""
    stealth_options = ("stdin",)  # call_command(..., stdin=...), as createsuperuser has
    examples = """\
  python manage.py create_tenant_user --tenant acme --email owner@acme.test --name "Ada Owner"
  printf '%s\\n' "$PASSWORD" | python manage.py create_tenant_user --tenant acme \\
      --email ada@acme.test --role admin --password-stdin"""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's slug or id")
        parser.add_argument(
            "--email",
            required=True,
            help="the user's email address: the sign-in name, unique across the platform",
        )
        parser.add_argument("--name", help="the user's name, as people see it")
        parser.add_argument(
            "--role",
            default="user",
            help="core.users.role (default user); what the user may do is RBAC's "
            "(core.user_roles, in the admin)",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password (8 characters or more) from the first line of stdin; "
            "never give it as an argument, where ps would show it",
        )

    def run(self, **options: Any) -> None:
        tenant = find_tenant(options["tenant"])
        password = None
        if options["password_stdin"]:
            password = (options.get("stdin") or sys.stdin).readline().rstrip("\r\n")
            if not password:
                raise OnboardingError("--password-stdin: stdin held no password")
        user = create_tenant_user(
            tenant,
            options["email"],
            name=options["name"],
            role=options["role"],
            password=password,
        )
        how = "with a password" if password else "without a password (API keys only)"
        self.tell(f"Created user {user.email} of tenant {tenant.slug} (id {user.pk}), {how}.")
        self.stdout.write(str(user.pk))
