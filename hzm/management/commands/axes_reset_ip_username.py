"""`manage.py axes_reset_ip_username IP EMAIL`: axes' command, as the owner, any case."""

from typing import Any

from axes.management.commands import axes_reset_ip_username

from hzm.throttling import AxesOwnerCommand


class Command(AxesOwnerCommand, axes_reset_ip_username.Command):
    help = axes_reset_ip_username.Command.help + AxesOwnerCommand.help_suffix

    def handle(self, *args: Any, **options: Any) -> None:
        options["username"] = self.counted(options["username"])
        super().handle(*args, **options)
