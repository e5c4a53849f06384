"""python manage.py dbdoctor: compare the live database with what the code declares."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hzm.db.checks import diagnose
from hzm.deploy.connection import MigrationConnectionCommand


class Command(MigrationConnectionCommand, BaseCommand):
    help = (
        "Check the live database against the code: row level security enabled and forced "
        "on every tenant table, the declared policies, triggers, tenant foreign keys and "
        "functions, and the runtime role's attributes and exact grants. Exits non-zero "
        "naming each gap. Connects with MIGRATION_DATABASE_URL when it is set."
    )

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {}

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default", help="database alias to check")
        parser.add_argument("--strict", action="store_true", help="treat warnings as failures too")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = diagnose(options["database"])
        errors = [f for f in findings if f.severity == "error"]
        warnings = [f for f in findings if f.severity == "warning"]
        for finding in findings:
            style = self.style.ERROR if finding.severity == "error" else self.style.WARNING
            self.stdout.write(style(str(finding)))
        if errors or (options["strict"] and warnings):
            raise CommandError(
                f"dbdoctor: {len(errors)} error(s), {len(warnings)} warning(s) in the database"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"dbdoctor: the database matches the code ({len(warnings)} warnings)"
            )
        )
