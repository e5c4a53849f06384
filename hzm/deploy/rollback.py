"""Back to the migration state a backup recorded: which `migrate <app> <target>` to run.

The sidecar of a backup lists the migrations applied when it was taken. Every app that
has moved ahead since is migrated back to its last migration in that list (or to zero),
newest dependents first. Data written to what is unapplied (new tables, new columns) is
lost on the way down: to get the data back as it was, restore the backup instead.
"""

from dataclasses import dataclass
from typing import Any


class RollbackError(Exception):
    """The rollback cannot be planned or did not reach the backup's state."""


@dataclass(frozen=True)
class Step:
    app: str
    target: str  # a migration name, or "zero"
    unapplies: tuple[str, ...]  # this app's migrations it unapplies, newest first

    @property
    def command(self) -> str:
        return f"python manage.py migrate {self.app} {self.target}"


def plan_order(graph: Any) -> dict[tuple[str, str], int]:
    """Each migration's position in the full forwards plan (dependencies come first)."""
    order: dict[tuple[str, str], int] = {}
    for leaf in sorted(graph.leaf_nodes()):
        for key in graph.forwards_plan(leaf):
            order.setdefault(key, len(order))
    return order


def rollback_plan(
    recorded: dict[str, list[str]], applied: dict[str, list[str]], graph: Any
) -> tuple[list[Step], list[str]]:
    """(steps, migrations the database lacks) to go from `applied` back to `recorded`.

    Steps come newest first: the app whose newest migration to unapply comes latest in
    the plan goes first, so dependents are unapplied before what they depend on.
    """
    unknown = sorted(
        f"{app}.{name}"
        for source in (recorded, applied)
        for app, names in source.items()
        for name in names
        if (app, name) not in graph.nodes
    )
    if unknown:
        raise RollbackError(
            f"migration(s) {', '.join(unknown)} are not in this code: run the rollback with "
            "the code of the release that applied them, or restore the backup (--restore)"
        )
    order = plan_order(graph)
    steps = []
    for app in sorted(applied):
        kept = set(recorded.get(app, []))
        ahead = sorted((n for n in applied[app] if n not in kept), key=lambda n: -order[app, n])
        if not ahead:
            continue
        target = max(kept, key=lambda n: order[app, n]) if kept else "zero"
        steps.append(Step(app, target, tuple(ahead)))
    steps.sort(key=lambda step: -order[step.app, step.unapplies[0]])
    behind = sorted(
        f"{app}.{name}"
        for app, names in recorded.items()
        for name in names
        if name not in applied.get(app, [])
    )
    return steps, behind
