"""The seed's naming rule for migration files: a sequence, then a descriptive snake_case name.

Django's four-digit sequence (0003_add_organizations.py) stands for the seed's three
digits (003_add_organizations.sql); what matters is the same: ordered by sequence, named
for what it does, never by date, never Django's auto_<timestamp>.
"""

import re
from pathlib import Path

MIGRATION_FILE_NAME = re.compile(r"\d{4}_[a-z][a-z0-9_]*\.py\Z")
# 20261127, 2026_11_27, 2026-11-27 (and 19xx): a date where a description belongs.
DATE_LIKE = re.compile(r"(?<!\d)(?:19|20)\d\d[_-]?(?:0[1-9]|1[0-2])[_-]?(?:0[1-9]|[12]\d|3[01])")
EXAMPLE = "0003_add_organizations.py"


def migration_name_problem(filename: str) -> str:
    """What is wrong with a migration file's name ('' when nothing is)."""
    if not MIGRATION_FILE_NAME.match(filename):
        return (
            f"{filename}: name it <4-digit sequence>_<what it does, in snake_case>.py, "
            f"e.g. {EXAMPLE}"
        )
    description = filename[5:-3]
    if description == "auto" or description.startswith("auto_") or "_auto_" in description:
        return (
            f"{filename}: an auto-generated name; say what the migration does "
            "(makemigrations --name add_organizations, or rename the file and its "
            "references in later migrations' dependencies)"
        )
    if DATE_LIKE.search(description) or re.search(r"\d{8}", description):
        return f"{filename}: no dates in migration names; the sequence orders them ({EXAMPLE})"
    return ""


def migration_files(directory: Path) -> list[str]:
    """The migration files of a migrations package (not __init__.py)."""
    return sorted(p.name for p in directory.glob("*.py") if p.name != "__init__.py")
