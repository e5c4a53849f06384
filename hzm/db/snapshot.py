"""The schema snapshot as text: the migration history's SQL as a template, and back.

Pure functions, no Django and no database (hzm.deploy.snapshot makes and loads snapshots).
A snapshot is the SQL every migration ran, in plan order, as `sqlmigrate` shows it, each
collected against a database migrated up to the one before it: loaded in one transaction
it runs the very statements the history runs, so it builds the very same catalog (a
pg_dump of the result would not: PostgreSQL deparses some expressions, e.g.
`status IN ('a', 'b')` on a varchar column, into text that parses back differently).
What depends on the deployment is taken out of it:

- the runtime role (HZM_APP_ROLE) and the roles named after it (<role>_comms, ...) become
  `{{runtime_role}}` and `{{runtime_role_comms}}`, filled in with this deployment's names;
  the role that runs migrate is never named (policies say `TO CURRENT_USER`);
- what cannot run inside a transaction (CREATE INDEX CONCURRENTLY, of migrations with
  `atomic = False`) runs as its plain form: on an empty table it builds the same index.

A header of `-- key value` lines records what the snapshot was made from, for
`stale_reasons()` to compare with the migration history of today's code.
"""

import re
from collections.abc import Mapping, Sequence

from hzm.db import sql

FORMAT = "1"
MAGIC = "-- hzm schema snapshot"
END_OF_HEADER = "-- end of header"
_PLACEHOLDER = re.compile(r"\{\{runtime_role(?:_([a-z0-9_]+))?\}\}")
_CONCURRENTLY = re.compile(
    r"^(CREATE (?:UNIQUE )?INDEX|DROP INDEX|REINDEX(?: \w+)?) CONCURRENTLY\b", re.MULTILINE
)
# Statements that name roles: where the owner must never be named.
_ROLE_STATEMENT = re.compile(
    r"^(?:GRANT|REVOKE|ALTER|CREATE POLICY|SET SESSION|SET ROLE)\b.*$", re.MULTILINE
)
# What Django's collect_sql writes for an operation that is not SQL (RunPython).
NOT_SQL = "-- MIGRATION NOW PERFORMS OPERATION THAT CANNOT BE WRITTEN AS SQL"


def _role_pattern(role: str) -> re.Pattern[str]:
    """`role` or `role_<suffix>` as a whole name (inside quotes or not)."""
    name = re.escape(sql.validate_identifier(role, "role"))
    return re.compile(rf"(?<![\w$]){name}(?:_([a-z0-9_]+))?(?![\w$])")


def template_from_sql(
    migrations: Sequence[tuple[str, Sequence[str]]], runtime_role: str, owner: str
) -> str:
    """(label, statements) of every migration, in plan order, as a snapshot template."""
    blocks = []
    for label, statements in migrations:
        body = "\n".join(statements)
        if NOT_SQL in body:
            raise ValueError(
                f"migration {label} performs an operation that is not SQL (RunPython): a "
                "schema snapshot cannot hold it"
            )
        blocks.append(f"-- migration {label}\n{body}\n")
    text = "\n".join(blocks)
    if "{{" in text:
        raise ValueError("the migrations' SQL contains '{{', which the snapshot's placeholders use")
    text = _CONCURRENTLY.sub(r"\1", text)
    text = _role_pattern(runtime_role).sub(
        lambda m: "{{runtime_role" + (f"_{m[1]}" if m[1] else "") + "}}", text
    )
    if owner != runtime_role:
        owner_pattern = _role_pattern(owner)
        for statement in _ROLE_STATEMENT.findall(text):
            if owner_pattern.search(statement):
                raise ValueError(
                    f"a migration names the role it runs as ({owner!r}), which a snapshot "
                    f"cannot follow to another owner: {statement[:200]}"
                )
    return text


def render(template: str, runtime_role: str) -> str:
    """The SQL of a snapshot template for this deployment's runtime role.

    A placeholder stands where the name stood, inside its quotes (sql.py quotes every
    identifier; role names in DO blocks are string literals): the bare, validated name.
    """
    sql.validate_identifier(runtime_role, "HZM_APP_ROLE")

    def name(match: re.Match[str]) -> str:
        if match[1] is None:
            return runtime_role
        return sql.service_role_name(runtime_role, match[1])

    return _PLACEHOLDER.sub(name, template)


# --- The header ---------------------------------------------------------------------------


def format_header(facts: Mapping[str, str], migrations: Mapping[str, str]) -> str:
    """`facts` (postgresql, django, source <path>: digest) and migrations, in plan order."""
    lines = [
        f"{MAGIC} {FORMAT}",
        "-- Made by `python manage.py schema_snapshot --write`: do not edit.",
    ]
    lines += [f"-- {key} {value}" for key, value in facts.items()]
    lines += [f"-- migration {label} {digest}" for label, digest in migrations.items()]
    return "\n".join([*lines, END_OF_HEADER]) + "\n"


def parse(text: str) -> tuple[dict[str, str], dict[str, str], str]:
    """(facts, migrations, template) of a snapshot file; ValueError if it is not one."""
    header, found, template = text.partition(END_OF_HEADER + "\n")
    lines = header.splitlines()
    if not found or not lines or lines[0] != f"{MAGIC} {FORMAT}":
        raise ValueError(f"not a schema snapshot of format {FORMAT} (no '{MAGIC} {FORMAT}' header)")
    facts: dict[str, str] = {}
    migrations: dict[str, str] = {}
    for line in lines[2:]:
        key, _, value = line.removeprefix("-- ").rpartition(" ")
        if key.startswith("migration "):
            migrations[key.removeprefix("migration ")] = value
        else:
            facts[key] = value
    return facts, migrations, template


def stale_reasons(
    recorded: tuple[Mapping[str, str], Mapping[str, str]],
    current: tuple[Mapping[str, str], Mapping[str, str]],
) -> list[str]:
    """How a snapshot's (facts, migrations) differ from the history's now ([]: up to date)."""
    (facts, migrations), (now_facts, now_migrations) = recorded, current
    reasons = []
    for key in sorted(now_facts.keys() | facts.keys()):
        if facts.get(key) != now_facts.get(key):
            was, now = facts.get(key, "nothing"), now_facts.get(key, "nothing")
            reasons.append(f"{key}: {was} in the snapshot, {now} now")
    missing = [label for label in now_migrations if label not in migrations]
    gone = [label for label in migrations if label not in now_migrations]
    changed = [
        label
        for label in now_migrations
        if label in migrations and migrations[label] != now_migrations[label]
    ]
    if missing:
        reasons.append(f"not in the snapshot: {', '.join(missing)}")
    if gone:
        reasons.append(f"in the snapshot but no longer in the history: {', '.join(gone)}")
    if changed:
        reasons.append(f"changed since the snapshot: {', '.join(changed)}")
    if not (missing or gone or changed) and list(migrations) != list(now_migrations):
        reasons.append("the migrations are applied in another order now")
    return reasons
