"""python manage.py watchdog --login LOGIN [--max-transaction 2min] [--every 10s] (hzm.watchdog)."""

import signal
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from hzm import watchdog
from hzm.durations import duration_seconds


def seconds_argument(value: str, option: str) -> int:
    try:
        return duration_seconds(value, option)
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from None


class Command(BaseCommand):
    help = (
        "End the backends of the given logins (the web process's) that no request explains: "
        "in one transaction for longer than --max-transaction, or holding an advisory lock "
        "outside any transaction. SQL inside a request can lift its own timeouts; this bound "
        "it cannot. Once, or every --every. Connects with DATABASE_URL, as a login that may "
        "see and end other backends and reads no table (README, The watchdog)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--login",
            action="append",
            required=True,
            dest="logins",
            metavar="LOGIN",
            help="a login whose backends to watch (repeat for more)",
        )
        parser.add_argument(
            "--max-transaction",
            default="2min",
            metavar="DURATION",
            help="the longest transaction a request may have (default 2min; more than "
            "gunicorn's timeout and HZM_STATEMENT_TIMEOUT)",
        )
        parser.add_argument(
            "--every",
            metavar="DURATION",
            help="check again after each DURATION until stopped (default: check once)",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="database alias")

    def handle(self, *args: Any, **options: Any) -> None:
        max_seconds = seconds_argument(options["max_transaction"], "--max-transaction")
        every = seconds_argument(options["every"], "--every") if options["every"] else None
        logins = sorted(set(options["logins"]))
        connection = connections[options["database"]]
        # SIGTERM (a service manager's stop) ends the loop after the round in progress,
        # whose lines are written first.
        stopping = threading.Event()
        if every is not None:
            signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
        try:
            with connection.cursor() as cursor:
                watchdog.check_privileges(cursor, logins)
            while not stopping.is_set():
                with connection.cursor() as cursor:
                    ended = watchdog.end_runaway_backends(cursor, logins, max_seconds)
                for backend in ended:
                    self.stdout.write(backend.describe())
                if options["verbosity"] > 1:
                    self.stderr.write(f"watchdog: {len(ended)} backend(s) ended")
                # Each line out at once: a service's log is a pipe, which Python buffers.
                self.stdout.flush()
                self.stderr.flush()
                if every is None:
                    return
                # A connection of its own per round: a restarted server is a new one.
                connection.close()
                stopping.wait(every)
        except watchdog.WatchdogRefused as error:
            raise CommandError(str(error)) from None
        except DatabaseError as error:
            raise CommandError(f"watchdog: {str(error).strip()}") from error
