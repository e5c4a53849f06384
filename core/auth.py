"""Who a request's session or sign-in form stands for, found without reading core.users.

The web login may read no table, and its requests run as the runtime role, which sees
no user before a tenant context exists. `UserBackend` (AUTHENTICATION_BACKENDS) finds
users through app.auth_login(email) and app.auth_user(id) (SECURITY DEFINER,
hzm/migrations/0004), which return one user's sign-in facts and nothing else (the
password hash sealed with a key derived from HZM_CONTEXT_KEY, hzm 0006: SQL run as the
runtime role gets ciphertext, hzm.secrets.unseal_password_hash() opens it). The
`User` it builds has only those fields loaded (the rest are deferred: read through row
level security once the tenant's context is open) and a fingerprint of the password
hash in place of the hash, from which the session's auth hash is derived.

A user may sign in, and stays signed in, only while it and its tenant are active and
not deleted: the check runs on every request (get_user), so a deactivated user or a
suspended tenant is signed out on its next request.
"""

import logging
from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.hashers import check_password, make_password
from django.db import DEFAULT_DB_ALIAS, connections

from core.models import User
from hzm.secrets import SealError, unseal_password_hash

logger = logging.getLogger(__name__)

# The columns app.auth_user() returns, as the User model's attribute names.
AUTH_USER_FIELDS = (
    "id",
    "tenant_id",
    "email",
    "name",
    "role",
    "timezone",
    "is_active",
    "is_deleted",
    "version",
    "last_login",
)


def _fetchone(query: str, params: list[Any], using: str) -> tuple | None:
    with connections[using].cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()


def find_user(user_id: Any, using: str = DEFAULT_DB_ALIAS) -> User | None:
    """The user with this id if it may be signed in (it and its tenant active and live)."""
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**31:
        return None
    row = _fetchone(
        "SELECT id, tenant_id, email, name, role, timezone, is_active, is_deleted, version, "
        "last_login_at, password_fingerprint, usable FROM app.auth_user(%s)",
        [user_id],
        using,
    )
    if row is None or not row[-1]:
        return None
    values = dict(zip(AUTH_USER_FIELDS, row, strict=False))
    # from_db() takes the loaded values in the model's field order.
    loaded = [f.attname for f in User._meta.concrete_fields if f.attname in values]
    user = User.from_db(using, loaded, [values[name] for name in loaded])
    user.__dict__["_password_fingerprint"] = row[len(AUTH_USER_FIELDS)]
    return user


# Hashed once: verifying a password against it costs what a real check costs, so that an
# unknown email takes as long to refuse as a wrong password.
_TIMING_HASH: list[str] = []


def _equalise_timing(password: str) -> None:
    if not _TIMING_HASH:
        _TIMING_HASH.append(make_password("hzm timing"))
    check_password(password, _TIMING_HASH[0])


def authenticate_credentials(
    email: Any, password: Any, using: str = DEFAULT_DB_ALIAS
) -> User | None:
    """The user these credentials belong to, if it may sign in; None otherwise."""
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return None
    if len(email) > 254 or "\x00" in email:
        _equalise_timing(password)
        return None
    row = _fetchone(
        "SELECT id, password_hash FROM app.auth_login(%s)",
        [User.objects.normalize_email(email)],
        using,
    )
    if row is None or not row[1]:
        _equalise_timing(password)
        return None
    user_id, sealed = row
    try:
        password_hash = unseal_password_hash(sealed)
    except SealError:
        # The database seals with keys this process does not have: every sign-in fails
        # until migrate installs HZM_CONTEXT_KEY's (/healthz says so too).
        logger.exception("sign-in: app.auth_login() returned a hash no context key opens")
        _equalise_timing(password)
        return None
    if not check_password(password, password_hash):
        return None
    return find_user(user_id, using)


class UserBackend(BaseBackend):
    """Django's authentication backend for core.users, through the sign-in functions."""

    def authenticate(
        self, request: Any, username: Any = None, password: Any = None, **kwargs: Any
    ) -> User | None:
        email = kwargs.get(User.USERNAME_FIELD, username)
        return authenticate_credentials(email, password)

    def get_user(self, user_id: Any) -> User | None:
        return find_user(user_id)

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return bool(getattr(user_obj, "is_superuser", False))
