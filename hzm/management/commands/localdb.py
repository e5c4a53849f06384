"""`manage.py localdb status|start|stop|url`: the embedded PostgreSQL cluster."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from hzm.db.localdb import LocalCluster, LocalDatabaseError

# `localdb status` exits 0 when the cluster runs, NOT_RUNNING when it is stopped or not
# created yet (the LSB convention of `service status`), 1 on an error.
NOT_RUNNING = 3


class Command(BaseCommand):
    help = (
        "Manage the embedded PostgreSQL cluster that the project uses when DATABASE_URL is "
        'unset. `url` prints a libpq URL: psql "$(python manage.py localdb url)". `status` '
        f"exits 0 when the cluster runs, {NOT_RUNNING} when it is stopped or absent."
    )
    # The cluster must be manageable even while models or migrations are broken.
    requires_system_checks = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "action",
            choices=["status", "start", "stop", "url"],
            help="status: state and location; start: initialise and start; "
            "stop: stop the server; url: print the connection URL",
        )

    def handle(self, *args, action: str, **options) -> None:
        cluster = LocalCluster(settings.BASE_DIR)
        try:
            if action == "status":
                self._status(cluster)
            elif action == "start":
                cluster.ensure_running()
                self.stdout.write(f"running; socket in {cluster.socket_dir}")
            elif action == "stop":
                cluster.stop()
                self.stdout.write(f"stopped ({cluster.data_dir})")
            else:
                self.stdout.write(cluster.url())
        except LocalDatabaseError as exc:
            raise CommandError(str(exc)) from exc

    def _status(self, cluster: LocalCluster) -> None:
        state = cluster.status()
        self.stdout.write(state)
        self.stdout.write(f"data:   {cluster.data_dir}")
        self.stdout.write(f"socket: {cluster.socket_dir}")
        self.stdout.write(f"log:    {cluster.log_file}")
        self.stdout.write(f"url:    {cluster.url()}")
        if not settings.HZM_LOCALDB:
            self.stdout.write(
                "DATABASE_URL is set: the project does not use this embedded cluster."
            )
        if state != "running":
            raise SystemExit(NOT_RUNNING)
