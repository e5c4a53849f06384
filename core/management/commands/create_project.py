"""python manage.py create_project --tenant T --owner E NAME: a project; prints its id."""

from typing import Any

from core.management.base import OnboardingCommand
from core.onboarding import create_project, find_tenant, find_user


class Command(OnboardingCommand):
    help = """\
Create a project of a tenant and print its id, nothing else, on stdout. A project holds
the tenant's tables (the HTTP API under /api/v1/projects/<id>/tables/). A tenant may
have max_projects live projects (3 unless changed in the admin). Runs as the owner
(MIGRATION_DATABASE_URL when set) and is recorded in the audit trail."""
    examples = """\
  python manage.py create_project --tenant acme --owner owner@acme.test "Shop"
  PROJECT=$(python manage.py create_project --tenant acme --owner owner@acme.test Shop)"""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the project's name, unique among the tenant's projects")
        parser.add_argument("--tenant", required=True, help="the tenant's slug or id")
        parser.add_argument(
            "--owner",
            required=True,
            metavar="EMAIL",
            help="the email of the user of the tenant who owns the project",
        )
        parser.add_argument("--description", help="what the project is for; optional")

    def run(self, **options: Any) -> None:
        tenant = find_tenant(options["tenant"])
        owner = find_user(tenant, options["owner"], "--owner")
        project = create_project(tenant, owner, options["name"], description=options["description"])
        self.tell(f"Created project {project.name!r} of tenant {tenant.slug} (id {project.pk}).")
        self.stdout.write(str(project.pk))
