"""What the onboarding commands share: the owner's connection, refusals as CommandError.

They are owner commands (README, The owner's commands): run from the shell they connect
with MIGRATION_DATABASE_URL when it is set, and refuse at once unless the role may
write every tenant's rows (the owner with BYPASSRLS, or a superuser), since core.tenants,
core.users, core.projects and core.api_keys force row level security. What they print on
stdout is only what a script captures (an id, a key); what they say for people goes to
stderr, and -v 0 silences it.
"""

import argparse
from typing import Any

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)

from core.onboarding import OnboardingError
from hzm.deploy.connection import MigrationConnectionCommand


class HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's help layout, with the description and examples kept as written."""


class OnboardingCommand(MigrationConnectionCommand, BaseCommand):
    examples = ""  # shown at the end of --help

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", HelpFormatter)
        if self.examples:
            kwargs.setdefault("epilog", "examples:\n" + self.examples)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def owner_needs(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"bypass_rls": True}  # the tables force row level security

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except OnboardingError as error:
            raise CommandError(str(error)) from error

    def tell(self, message: str) -> None:
        """A line for the person running the command (stderr; not with -v 0)."""
        if self.verbosity > 0:
            self.stderr.write(message)

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        self.run(**options)

    def run(self, **options: Any) -> None:
        raise NotImplementedError
