"""The throttle of the tenants' sign-in (/api/v1/auth/login): the tenants' side of axes.

The admin's sign-in is throttled by django-axes (hzm/throttling.py). The tenants' policy
is the same: AXES_FAILURE_LIMIT failed sign-ins of one email from one client address
(hzm.proxies.client_ip), each within AXES_COOLOFF_TIME of the previous, lock that pair
out for AXES_COOLOFF_TIME. A locked-out pair gets 429 with Retry-After before any
password is hashed, whether or not the password is right. Other addresses, and other
emails from the same address, sign in as before. A successful sign-in clears the pair.

The counts are app.sign_in_failures, which the web process's role cannot read; it calls
the SECURITY DEFINER functions of core/migrations/0008_sign_in_throttle.py. A failure is
counted only with the web process's signature for this transaction (core 0010), so SQL
injected into a request cannot lock out an email from an address it names.
"""

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest

from core.models import SignInFailure
from hzm.db import context_tokens
from hzm.db.context import backend
from hzm.db.context_tokens import Backend
from hzm.proxies import client_ip
from hzm.secrets import context_keys

# Longer emails, or ones PostgreSQL's text cannot hold, never name a user
# (core.auth.authenticate_credentials refuses them unread): nothing to guess, nothing to count.
EMAIL_MAX_LENGTH = 254


def throttled_email(email: Any) -> str | None:
    """The email as the throttle counts it, or None when no sign-in with it can succeed."""
    if not isinstance(email, str) or not email or len(email) > EMAIL_MAX_LENGTH:
        return None
    if "\x00" in email:
        return None
    return email


def client_address(request: HttpRequest) -> str:
    """The client's address as the throttle keys it ('' when unknown)."""
    return client_ip(request) or ""


def cool_off_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def _scalar(query: str, params: list[Any], using: str) -> Any:
    with connections[using].cursor() as cursor:
        cursor.execute(query, params)
        row = cursor.fetchone()
    return row[0] if row else None


def wait_seconds(email: str, address: str, using: str = DEFAULT_DB_ALIAS) -> int:
    """Seconds until this email may sign in from this address again (0: now)."""
    return _scalar("SELECT app.sign_in_wait(%s, %s)", [email, address], using) or 0


def failure_message(email: str, address: str, limit: int, cool_off: int, at: Backend) -> str:
    """What a failure's signature covers, as app.count_sign_in_failure() (core 0010) builds
    it: the email and address (hex of their UTF-8), the limit, the cool-off, the transaction."""
    return ".".join(
        (
            "sign-in-failure",
            "v1",
            email.encode("utf-8").hex(),
            address.encode("utf-8").hex(),
            str(limit),
            str(cool_off),
            str(at.pid),
            str(at.transaction_start),
        )
    )


def failure_signature(
    email: str, address: str, limit: int, cool_off: int, at: Backend, key: bytes
) -> str:
    """The signature app.count_sign_in_failure() requires: HMAC-SHA256 of failure_message()."""
    return context_tokens.signature(failure_message(email, address, limit, cool_off, at), key)


def record_failure(email: str, address: str, using: str = DEFAULT_DB_ALIAS) -> int:
    """Count a failed sign-in; the seconds the pair is now locked out for (0: it is not).

    Signed for this transaction with HZM_CONTEXT_KEY: the database counts no failure that
    the web process did not sign, so SQL injected into a request cannot lock a pair out.
    """
    limit, cool_off = settings.AXES_FAILURE_LIMIT, cool_off_seconds()
    signature = failure_signature(
        email, address, limit, cool_off, backend(using), context_keys()[0]
    )
    return (
        _scalar(
            "SELECT app.count_sign_in_failure(%s, %s, %s, %s, %s)",
            [email, address, limit, cool_off, signature],
            using,
        )
        or 0
    )


def clear_failures(address: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Clear the signed-in user's failures from this address (inside the user's context)."""
    _scalar("SELECT app.sign_in_succeeded(%s)", [address], using)


# --- The owner's side (manage.py sign_in_lockouts, sign_in_unlock) -------------------------


def recorded_failures(
    email: str | None = None, using: str = DEFAULT_DB_ALIAS
) -> list[SignInFailure]:
    """The failures on record (core.SignInFailure rows), newest first; of one email if given.

    Read as the owner: the runtime role holds no privilege on app.sign_in_failures.
    """
    rows = SignInFailure.objects.using(using).order_by("-last_failure", "email", "ip_address")
    if email is not None:
        rows = rows.filter(email=email.lower())
    return list(rows)


def unlock(email: str, address: str | None = None, using: str = DEFAULT_DB_ALIAS) -> int:
    """Forget the failures of `email` (from `address`, or from every address): unlocked.

    The email in any case, as the throttle counts it; the number of (email, address)
    pairs forgotten.
    """
    rows = SignInFailure.objects.using(using).filter(email=email.lower())
    if address is not None:
        rows = rows.filter(ip_address=address)
    deleted, _ = rows.delete()
    return deleted
