"""Tenant-context tokens: what the application signs so that the database believes a context.

A token names a tenant and a user for one transaction of one backend:

    v1.<tenant id>.<user id>.<expires>.<backend pid>.<transaction start>.<signature>

- tenant and user ids are decimal (empty for none; 0 names nobody, /healthz's probe);
- expires is a Unix time in seconds of the database's clock (the transaction's start plus
  the context's lifetime), checked against each statement's start;
- the backend pid and the transaction start (microseconds since the epoch, PostgreSQL's
  now()) bind it to the one transaction it was made for: the role switch that opens every
  context returns both in the same round trip, also behind PgBouncer (the pid psycopg
  learns at connect time is the pooler's, not the server's);
- the signature is HMAC-SHA256, in hex, over everything before it, with the first key of
  HZM_CONTEXT_KEY (hzm.secrets.context_keys()).

The database keeps the keys where only the owner can read them (hzm_private.context_keys,
installed by migrate) and app.current_tenant()/app.current_user_id() verify the token on
every call: a token of another backend, another transaction, past its time or not signed by
a current key names no tenant. The functions here are pure; hzm.db.context uses them.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass

VERSION = "v1"
# The setting the token is kept in, transaction-local.
SETTING = "app.context"

_ID = r"(?:0|[1-9][0-9]{0,9})?"
_TOKEN = re.compile(
    rf"{VERSION}\.(?P<tenant>{_ID})\.(?P<user>{_ID})\.(?P<expires>[0-9]{{1,12}})"
    r"\.(?P<pid>[0-9]{1,10})\.(?P<start>[0-9]{1,20})\.(?P<signature>[0-9a-f]{64})\Z"
)
MAX_ID = 2**31 - 1  # PostgreSQL integer


@dataclass(frozen=True)
class Backend:
    """The server backend and transaction a context is made for, as the database reports them."""

    pid: int
    transaction_start: int  # microseconds since the epoch: (extract(epoch FROM now()) * 1e6)

    @property
    def transaction_start_seconds(self) -> int:
        return self.transaction_start // 1_000_000


@dataclass(frozen=True)
class Claims:
    tenant_id: int | None
    user_id: int | None
    expires: int  # Unix seconds, database clock
    backend: Backend


# The SQL that reports the backend, appended to the statement that switches the role.
BACKEND_COLUMNS = "pg_backend_pid(), (extract(epoch FROM now()) * 1000000)::bigint"


def _id_text(value: int | None, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"a context's {what} must be an integer id of 0 or more, got {value!r}")
    return str(value)


def message(claims: Claims) -> str:
    """The signed part of a token."""
    return ".".join(
        (
            VERSION,
            _id_text(claims.tenant_id, "tenant"),
            _id_text(claims.user_id, "user"),
            str(claims.expires),
            str(claims.backend.pid),
            str(claims.backend.transaction_start),
        )
    )


def signature(text: str, key: bytes) -> str:
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


def sign(claims: Claims, key: bytes) -> str:
    """The token of `claims`, signed with `key`."""
    text = message(claims)
    return f"{text}.{signature(text, key)}"


def claims_for(
    tenant_id: int | None, user_id: int | None, backend: Backend, lifetime_seconds: int
) -> Claims:
    """Claims for a context opened now in `backend`'s transaction, valid for `lifetime_seconds`."""
    return Claims(
        tenant_id=tenant_id,
        user_id=user_id,
        expires=backend.transaction_start_seconds + lifetime_seconds,
        backend=backend,
    )


def verify(token: str, keys: tuple[bytes, ...]) -> Claims | None:
    """The claims of a well-formed token signed by one of `keys` (None otherwise).

    What the database checks besides (the backend, the transaction, the time) depends on
    the connection; this is the application's own reading of a token, for tests and tools.
    """
    match = _TOKEN.match(token)
    if match is None:
        return None
    text, _, given = token.rpartition(".")
    if not any(hmac.compare_digest(signature(text, key), given) for key in keys):
        return None
    return Claims(
        tenant_id=int(match["tenant"]) if match["tenant"] else None,
        user_id=int(match["user"]) if match["user"] else None,
        expires=int(match["expires"]),
        backend=Backend(int(match["pid"]), int(match["start"])),
    )
