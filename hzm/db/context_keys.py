"""The database's copy of the context keys: installed and refreshed by `migrate` itself.

On post_migrate (every `migrate`, also one with nothing to apply, and the test database's
creation) the keys of HZM_CONTEXT_KEY, as hzm.secrets derives them, are written to
hzm_private.context_keys when they differ from what is there, so a deploy that rotates the
key needs no step of its own. Only the owner can read or write that table: `migrate` runs
as the owner.
"""

import hashlib
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from hzm.db import sql
from hzm.secrets import context_keys


def key_fingerprints(keys: tuple[bytes, ...]) -> list[tuple[int, str]]:
    """(position, SHA-256 of the key) of each key: what may be compared and shown."""
    return [(position, hashlib.sha256(key).hexdigest()) for position, key in enumerate(keys, 1)]


def key_store_exists(cursor: Any) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.CONTEXT_KEY_TABLE])
    return cursor.fetchone()[0]


def installed_fingerprints(cursor: Any) -> list[tuple[int, str]]:
    cursor.execute(
        f"SELECT position, encode(sha256(key), 'hex') FROM {sql.CONTEXT_KEY_TABLE} ORDER BY 1"
    )
    return [tuple(row) for row in cursor.fetchall()]


def install_context_keys(using: str = DEFAULT_DB_ALIAS) -> bool:
    """Make the database's keys those of HZM_CONTEXT_KEY; True if anything was written.

    Does nothing before the migration that creates the table (a database migrated to an
    earlier state, or to zero).
    """
    keys = context_keys()
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        if not key_store_exists(cursor):
            return False
        if installed_fingerprints(cursor) == key_fingerprints(keys):
            return False
        cursor.execute(f"DELETE FROM {sql.CONTEXT_KEY_TABLE}")
        cursor.executemany(
            f"INSERT INTO {sql.CONTEXT_KEY_TABLE} (position, key) VALUES (%s, %s)",
            list(enumerate(keys, 1)),
        )
        # The verifying functions' plans hold the keys as a folded constant
        # (hzm_private.verifying_keys() is IMMUTABLE): touching the function's catalog row
        # makes every session plan them again, with these keys.
        cursor.execute(sql.invalidate_verifying_keys())
    return True


def install_after_migrate(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate receiver (hzm.apps.HzmConfig.ready)."""
    install_context_keys(using)
