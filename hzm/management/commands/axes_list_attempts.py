"""`manage.py axes_list_attempts`: axes' command (lists the failure counts), run as the owner."""

from axes.management.commands import axes_list_attempts

from hzm.throttling import AxesOwnerCommand


class Command(AxesOwnerCommand, axes_list_attempts.Command):
    help = axes_list_attempts.Command.help + AxesOwnerCommand.help_suffix
