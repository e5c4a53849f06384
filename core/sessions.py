"""Django's database session store, through functions the web login may call (SESSION_ENGINE).

The web process logs in as an authenticator that may read no table, and its requests
run as the runtime role, which may not touch django_session either: a session is
loaded, saved and deleted by its key through app.session_load/save/delete/exists
(SECURITY DEFINER, hzm/migrations/0004). Nothing lists sessions, so SQL run as the
runtime role learns nothing of other users' sessions. Same table and encoding as
django.contrib.sessions.backends.db: `clearsessions` (as the owner) works unchanged.
"""

import re
from types import SimpleNamespace
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections, router

# Django makes keys of 32 characters from [a-z0-9]; the column holds 40. Anything else a
# cookie carries is no session (and never reaches the database as a parameter).
SESSION_KEY = re.compile(r"[a-z0-9]{8,40}\Z")


def _call(function: str, *arguments: Any) -> Any:
    from django.contrib.sessions.models import Session

    connection = connections[router.db_for_write(Session)]
    placeholders = ", ".join(["%s"] * len(arguments))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app.{function}({placeholders})", list(arguments))
        return cursor.fetchone()[0]


def _well_formed(session_key: str | None) -> bool:
    return isinstance(session_key, str) and SESSION_KEY.match(session_key) is not None


class SessionStore(DatabaseSessionStore):
    """Sessions in django_session, read and written by key through SECURITY DEFINER functions."""

    def _get_session_from_db(self) -> Any:
        data = _call("session_load", self.session_key) if _well_formed(self.session_key) else None
        if data is None:
            self._session_key = None
            return None
        return SimpleNamespace(session_data=data)

    def exists(self, session_key: str) -> bool:
        return _well_formed(session_key) and bool(_call("session_exists", session_key))

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        written = _call(
            "session_save",
            self._get_or_create_session_key(),
            self.encode(data),
            self.get_expiry_date(),
            must_create,
        )
        if not written:
            raise CreateError if must_create else UpdateError
        return None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        if _well_formed(session_key):
            _call("session_delete", session_key)

    # The ASGI variants, on the same functions.
    async def _aget_session_from_db(self) -> Any:
        return await sync_to_async(self._get_session_from_db)()

    async def aexists(self, session_key: str) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def asave(self, must_create: bool = False) -> None:
        return await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        return await sync_to_async(self.delete)(session_key)
