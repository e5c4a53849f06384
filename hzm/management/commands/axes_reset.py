"""`manage.py axes_reset`: axes' command (clears every lock-out), run as the owner."""

from axes.management.commands import axes_reset

from hzm.throttling import AxesOwnerCommand


class Command(AxesOwnerCommand, axes_reset.Command):
    help = axes_reset.Command.help + AxesOwnerCommand.help_suffix
