"""`manage.py axes_reset_ip IP...`: axes' command, run as the owner."""

from axes.management.commands import axes_reset_ip

from hzm.throttling import AxesOwnerCommand


class Command(AxesOwnerCommand, axes_reset_ip.Command):
    help = axes_reset_ip.Command.help + AxesOwnerCommand.help_suffix
