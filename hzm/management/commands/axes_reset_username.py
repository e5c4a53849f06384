"""`manage.py axes_reset_username EMAIL...`: axes' command, run as the owner, emails in any case."""

from typing import Any

from axes.management.commands import axes_reset_username

from hzm.throttling import AxesOwnerCommand


class Command(AxesOwnerCommand, axes_reset_username.Command):
    help = axes_reset_username.Command.help + AxesOwnerCommand.help_suffix

    def handle(self, *args: Any, **options: Any) -> None:
        options["username"] = [self.counted(email) for email in options["username"]]
        super().handle(*args, **options)
