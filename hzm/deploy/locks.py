"""What a DDL statement locks, from PostgreSQL's documented lock levels (pure, no Django).

`classify(statement)` reads one SQL statement and says which table-level lock it takes
on which table(s), whether it rewrites or scans the table while holding it, and whether
it can run inside a transaction at all. Sources: "Explicit Locking" (table-level lock
modes) and the lock notes of ALTER TABLE, CREATE INDEX, CREATE TRIGGER, CREATE POLICY
in the PostgreSQL 15 documentation; tests/deploy/test_locks.py checks a sample against
pg_locks on a live server.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
# Weakest first: a statement's lock on a table is the strongest of its parts.
LOCK_MODES = (
    ACCESS_SHARE,
    ROW_SHARE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
)
# What the application can no longer do on the table while the lock is held.
BLOCKS = {
    ACCESS_SHARE: "blocks only ACCESS EXCLUSIVE",
    ROW_SHARE: "blocks only EXCLUSIVE and ACCESS EXCLUSIVE",
    ROW_EXCLUSIVE: "blocks other schema changes, not reads or writes",
    SHARE_UPDATE_EXCLUSIVE: "blocks other schema changes and VACUUM, not reads or writes",
    SHARE: "blocks writes (reads go on)",
    SHARE_ROW_EXCLUSIVE: "blocks writes (reads go on)",
    EXCLUSIVE: "blocks writes (reads go on)",
    ACCESS_EXCLUSIVE: "blocks reads and writes",
}

_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)'
_TABLE = rf"(?P<table>{_NAME}(?:\.{_NAME})?)"
_OPTIONAL = r"(?:(?:ONLY|IF EXISTS|IF NOT EXISTS)\s+)*"


@dataclass(frozen=True)
class StatementLock:
    """The table-level lock of one statement and what it does while holding it."""

    kind: str
    lock: str | None = None  # None: no lock on any existing table
    tables: tuple[str, ...] = ()
    rewrites: bool = False
    scans: bool = False
    transactional: bool = True
    note: str = ""
    created: str | None = None  # the table a CREATE TABLE makes

    def describe(self) -> str:
        """One line for a report: 'ACCESS EXCLUSIVE: blocks reads and writes; no rewrite'."""
        if self.lock is None:
            text = "no lock on an existing table"
        else:
            text = f"{self.lock}: {BLOCKS[self.lock]}"
            text += "; rewrites the table" if self.rewrites else "; no rewrite"
            if self.scans and not self.rewrites:
                text += "; scans the table while locked"
        if not self.transactional:
            text += "; cannot run inside a transaction"
        return f"{text} ({self.note})" if self.note else text


def strongest(modes: list[str | None]) -> str | None:
    """The strongest of several lock modes (None when there is none)."""
    present = [mode for mode in modes if mode is not None]
    return max(present, key=LOCK_MODES.index) if present else None


def normalize(statement: str) -> str:
    """The statement on one line, without comments or a trailing semicolon."""
    lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return re.sub(r"\s+", " ", " ".join(lines)).strip().rstrip(";").strip()


def _match(pattern: str, text: str) -> re.Match[str] | None:
    return re.match(pattern, text, flags=re.IGNORECASE)


def classify(statement: str) -> StatementLock | None:
    """What `statement` locks; None for statements that change nothing (SELECT, SET, ...)."""
    text = normalize(statement)
    if not text or _match(
        r"(SELECT|SHOW|SET|RESET|BEGIN|START|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|EXPLAIN)\b",
        text,
    ):
        return None
    for rule in _RULES:
        found = rule(text)
        if found is not None:
            return found
    first_words = " ".join(text.split()[:2]).upper()
    return StatementLock(first_words, note="not in the lock table: check the documentation")


def _create_index(text: str) -> StatementLock | None:
    m = _match(
        rf"CREATE (?:UNIQUE )?INDEX (?P<concurrently>CONCURRENTLY )?.*? ON {_OPTIONAL}{_TABLE}",
        text,
    )
    if not m:
        return None
    if m["concurrently"]:
        return StatementLock(
            "CREATE INDEX CONCURRENTLY",
            SHARE_UPDATE_EXCLUSIVE,
            (m["table"],),
            scans=True,
            transactional=False,
        )
    return StatementLock("CREATE INDEX", SHARE, (m["table"],), scans=True)


def _drop_index(text: str) -> StatementLock | None:
    m = _match(rf"DROP INDEX (?P<concurrently>CONCURRENTLY )?{_OPTIONAL}{_TABLE}", text)
    if not m:
        return None
    # The lock is on the index's table; the statement names only the index.
    if m["concurrently"]:
        return StatementLock(
            "DROP INDEX CONCURRENTLY",
            SHARE_UPDATE_EXCLUSIVE,
            (m["table"],),
            transactional=False,
            note="lock on the index's table",
        )
    return StatementLock(
        "DROP INDEX", ACCESS_EXCLUSIVE, (m["table"],), note="lock on the index's table"
    )


def _reindex(text: str) -> StatementLock | None:
    m = _match(
        r"REINDEX (?:\(.*?\) )?(?:INDEX|TABLE|SCHEMA|DATABASE|SYSTEM) (?P<c>CONCURRENTLY )?"
        + _TABLE,
        text,
    )
    if not m:
        return None
    if m["c"]:
        return StatementLock(
            "REINDEX CONCURRENTLY", SHARE_UPDATE_EXCLUSIVE, (m["table"],), transactional=False
        )
    return StatementLock(
        "REINDEX", SHARE, (m["table"],), scans=True, note="ACCESS EXCLUSIVE on the index itself"
    )


def _create_table(text: str) -> StatementLock | None:
    m = _match(rf"CREATE (?:UNLOGGED |TEMP |TEMPORARY )?TABLE {_OPTIONAL}{_TABLE}", text)
    if not m:
        return None
    referenced = tuple(
        dict.fromkeys(r for r in re.findall(rf"REFERENCES ({_NAME}(?:\.{_NAME})?)", text, re.I))
    )
    if referenced:
        return StatementLock(
            "CREATE TABLE",
            SHARE_ROW_EXCLUSIVE,
            referenced,
            note="a new table; the lock is on the tables its foreign keys reference",
            created=m["table"],
        )
    return StatementLock("CREATE TABLE", note="a new table", created=m["table"])


Rule = Callable[[str], StatementLock | None]


def _first_words(text: str) -> str:
    """'CREATE POLICY', 'CREATE OR REPLACE FUNCTION', 'GRANT': what kind of statement it is."""
    words = text.upper().split()
    return " ".join(words[:4] if words[1:2] == ["OR"] else words[:2] if len(words) > 1 else words)


def _simple(kind: str | None, pattern: str, lock: str | None, **extra: Any) -> Rule:
    """A rule for a statement with one pattern; kind None: the statement's first words."""

    def rule(text: str) -> StatementLock | None:
        m = _match(pattern, text)
        if not m:
            return None
        tables = (m["table"],) if "table" in m.groupdict() and lock is not None else ()
        return StatementLock(kind or _first_words(m[0]), lock, tables, **extra)

    return rule


def _alter_table(text: str) -> StatementLock | None:
    m = _match(rf"ALTER TABLE {_OPTIONAL}{_TABLE} (?P<actions>.*)", text)
    if not m:
        return None
    table, actions = m["table"], m["actions"]
    parts = [_alter_action(table, action.strip()) for action in _split_actions(actions)]
    lock = strongest([part.lock for part in parts])
    tables = tuple(dict.fromkeys(t for part in parts for t in part.tables))
    notes = "; ".join(dict.fromkeys(part.note for part in parts if part.note))
    return StatementLock(
        "ALTER TABLE " + ", ".join(part.kind for part in parts),
        lock,
        tables,
        rewrites=any(part.rewrites for part in parts),
        scans=any(part.scans for part in parts),
        note=notes,
    )


def _split_actions(actions: str) -> list[str]:
    """Split ALTER TABLE's subcommands on the commas outside parentheses and quotes."""
    parts, depth, quoted, current = [], 0, False, []
    for char in actions:
        if char in "'\"":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == "," and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


_VOLATILE_DEFAULT = re.compile(
    r"\b(clock_timestamp|random|gen_random_uuid|uuid_generate_v[14]|nextval|timeofday)\s*\(",
    re.IGNORECASE,
)


def _alter_action(table: str, action: str) -> StatementLock:
    """One ALTER TABLE subcommand (ACCESS EXCLUSIVE unless the documentation says less)."""
    upper = action.upper()
    own = (table,)
    if re.match(r"ADD CONSTRAINT .*FOREIGN KEY", upper) or re.match(r"ADD FOREIGN KEY", upper):
        referenced = re.search(rf"REFERENCES ({_NAME}(?:\.{_NAME})?)", action, re.I)
        not_valid = upper.endswith("NOT VALID")
        return StatementLock(
            "ADD FOREIGN KEY",
            SHARE_ROW_EXCLUSIVE,
            own + ((referenced[1],) if referenced else ()),
            scans=not not_valid,
            note="" if not_valid else "validates every row; NOT VALID + VALIDATE avoids it",
        )
    if upper.startswith("VALIDATE CONSTRAINT"):
        return StatementLock("VALIDATE CONSTRAINT", SHARE_UPDATE_EXCLUSIVE, own, scans=True)
    if re.match(r"ADD (CONSTRAINT \S+ )?CHECK", upper):
        not_valid = upper.endswith("NOT VALID")
        return StatementLock("ADD CHECK", ACCESS_EXCLUSIVE, own, scans=not not_valid)
    if re.match(r"ADD (CONSTRAINT \S+ )?(UNIQUE|PRIMARY KEY)\b.*\bUSING INDEX\b", upper):
        return StatementLock("ADD CONSTRAINT USING INDEX", ACCESS_EXCLUSIVE, own)
    if re.match(r"ADD (CONSTRAINT \S+ )?(UNIQUE|PRIMARY KEY|EXCLUDE)\b", upper):
        return StatementLock(
            "ADD UNIQUE/PRIMARY KEY",
            ACCESS_EXCLUSIVE,
            own,
            scans=True,
            note="builds an index under the lock; CREATE UNIQUE INDEX CONCURRENTLY, then "
            "ADD CONSTRAINT ... USING INDEX avoids it",
        )
    if upper.startswith("ADD ") and not upper.startswith("ADD CONSTRAINT"):
        return _add_column(table, action)
    if re.match(r"ALTER (COLUMN )?\S+ (SET DATA )?TYPE\b", upper):
        return StatementLock(
            "ALTER COLUMN TYPE",
            ACCESS_EXCLUSIVE,
            own,
            rewrites=True,
            note="no rewrite only when the types are binary-compatible (e.g. to a longer "
            "varchar or to text); indexes on the column are rebuilt",
        )
    if re.match(r"ALTER (COLUMN )?\S+ SET NOT NULL", upper):
        return StatementLock(
            "SET NOT NULL",
            ACCESS_EXCLUSIVE,
            own,
            scans=True,
            note="no scan when a valid CHECK (column IS NOT NULL) exists",
        )
    m = re.match(r"ALTER (?:COLUMN )?\S+ ((?:SET|DROP) (?:DEFAULT|NOT NULL))", upper)
    if m:
        return StatementLock(m[1], ACCESS_EXCLUSIVE, own)
    if re.match(r"ALTER (COLUMN )?\S+ SET STATISTICS", upper) or re.match(r"(SET|RESET) \(", upper):
        return StatementLock("SET STATISTICS/STORAGE PARAMETER", SHARE_UPDATE_EXCLUSIVE, own)
    if re.match(r"(ENABLE|DISABLE) (ALWAYS |REPLICA )?TRIGGER", upper):
        return StatementLock("ENABLE/DISABLE TRIGGER", SHARE_ROW_EXCLUSIVE, own)
    if re.match(r"(ENABLE|DISABLE|FORCE|NO FORCE) ROW LEVEL SECURITY", upper):
        return StatementLock(upper, ACCESS_EXCLUSIVE, own)
    if re.match(r"SET (LOGGED|UNLOGGED|TABLESPACE)", upper):
        return StatementLock(upper.split(" (")[0], ACCESS_EXCLUSIVE, own, rewrites=True)
    if re.match(r"CLUSTER ON|SET WITHOUT CLUSTER", upper):
        return StatementLock("CLUSTER ON", SHARE_UPDATE_EXCLUSIVE, own)
    if upper.startswith("DROP CONSTRAINT"):
        return StatementLock("DROP CONSTRAINT", ACCESS_EXCLUSIVE, own)
    if upper.startswith("DROP "):
        return StatementLock(
            "DROP COLUMN",
            ACCESS_EXCLUSIVE,
            own,
            note="instant, but code still using the column breaks",
        )
    if upper.startswith("RENAME"):
        return StatementLock(
            "RENAME", ACCESS_EXCLUSIVE, own, note="instant, but code using the old name breaks"
        )
    words = re.match(r"[A-Z ]+", upper)
    kind = " ".join((words[0] if words else upper).split()[:3])
    return StatementLock(kind, ACCESS_EXCLUSIVE, own)


def _add_column(table: str, action: str) -> StatementLock:
    upper = action.upper()
    rewrites = bool(
        re.search(r"\bGENERATED ALWAYS AS\b.*\bSTORED\b", upper)
        or re.search(r"\b(SMALL|BIG)?SERIAL\b|\bAS IDENTITY\b", upper)
        or (" DEFAULT " in f" {upper} " and _VOLATILE_DEFAULT.search(action))
    )
    notes = []
    scans = False
    if re.search(r"\bNOT NULL\b", upper) and " DEFAULT " not in f" {upper} " and not rewrites:
        notes.append("NOT NULL without a default fails on a table with rows")
    if re.search(r"\b(UNIQUE|PRIMARY KEY)\b", upper):
        scans = True
        notes.append("builds an index under the lock")
    if re.search(r"\bREFERENCES\b", upper):
        scans = True
    return StatementLock(
        "ADD COLUMN",
        ACCESS_EXCLUSIVE,
        (table,),
        rewrites=rewrites,
        scans=scans,
        note="; ".join(notes),
    )


def _lock_table(text: str) -> StatementLock | None:
    m = _match(rf"LOCK (?:TABLE )?{_OPTIONAL}{_TABLE}(?: IN (?P<mode>[A-Z ]+?) MODE)?", text)
    if not m:
        return None
    mode = (m["mode"] or ACCESS_EXCLUSIVE).upper()
    return StatementLock(
        "LOCK TABLE", mode if mode in LOCK_MODES else ACCESS_EXCLUSIVE, (m["table"],)
    )


_NO_TABLE_LOCK = (
    r"(CREATE|ALTER|DROP|COMMENT ON) (OR REPLACE )?(SCHEMA|EXTENSION|FUNCTION|PROCEDURE|ROLE|"
    r"USER|TYPE|DOMAIN|SEQUENCE|COLLATION|AGGREGATE|OPERATOR|CAST|TEXT SEARCH|DEFAULT PRIVILEGES)"
)

_RULES: tuple[Rule, ...] = (
    _create_index,
    _drop_index,
    _reindex,
    _create_table,
    _alter_table,
    _simple("DROP TABLE", rf"DROP TABLE {_OPTIONAL}{_TABLE}", ACCESS_EXCLUSIVE),
    _simple("TRUNCATE", rf"TRUNCATE (?:TABLE )?{_OPTIONAL}{_TABLE}", ACCESS_EXCLUSIVE),
    _simple(
        "CREATE TRIGGER",
        rf"CREATE (?:OR REPLACE )?(?:CONSTRAINT )?TRIGGER \S+ .*? ON {_OPTIONAL}{_TABLE}",
        SHARE_ROW_EXCLUSIVE,
    ),
    _simple(
        "DROP TRIGGER", rf"DROP TRIGGER {_OPTIONAL}\S+ ON {_OPTIONAL}{_TABLE}", ACCESS_EXCLUSIVE
    ),
    _simple(
        None,
        rf"(?:CREATE|ALTER|DROP) POLICY {_OPTIONAL}\S+ ON {_OPTIONAL}{_TABLE}",
        ACCESS_EXCLUSIVE,
    ),
    _simple("COMMENT ON", rf"COMMENT ON (?:TABLE|COLUMN) {_TABLE}", SHARE_UPDATE_EXCLUSIVE),
    _simple("INSERT", rf"INSERT INTO {_TABLE}", ROW_EXCLUSIVE),
    _simple("UPDATE", rf"UPDATE {_OPTIONAL}{_TABLE}", ROW_EXCLUSIVE, note="row locks until commit"),
    _simple(
        "DELETE", rf"DELETE FROM {_OPTIONAL}{_TABLE}", ROW_EXCLUSIVE, note="row locks until commit"
    ),
    _lock_table,
    _simple(None, r"(GRANT|REVOKE)\b", None, note="catalog only"),
    _simple("DO", r"DO\b", None, note="an anonymous block: its locks depend on its body"),
    _simple("VACUUM", r"VACUUM\b", SHARE_UPDATE_EXCLUSIVE, transactional=False),
    _simple(None, r"(CREATE|DROP|ALTER) DATABASE\b", None, transactional=False),
    _simple("ALTER SYSTEM", r"ALTER SYSTEM\b", None, transactional=False),
    _simple(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY",
        rf"REFRESH MATERIALIZED VIEW CONCURRENTLY {_TABLE}",
        EXCLUSIVE,
    ),
    _simple("REFRESH MATERIALIZED VIEW", rf"REFRESH MATERIALIZED VIEW {_TABLE}", ACCESS_EXCLUSIVE),
    _simple(None, _NO_TABLE_LOCK, None),
    _simple(None, r"CREATE (OR REPLACE )?(MATERIALIZED )?VIEW\b", None),
)
