"""What an API key allows, how its use is counted, and revoking it.

A key (core.api_keys) stores what it may do; generic_data.auth enforces it on every
request of the HTTP API:

- `scopes`: the verbs the key may use: `read` (GET rows and definitions, queries,
  search), `write` (create, change and delete rows), `define` (create, alter and drop
  tables); `<verb>:<table>` for one table only (`read:products`). Empty: every verb.
- `allowed_ips`: the client addresses (CIDR, `203.0.113.0/24`, or one address) it may be
  used from. Empty: any address.
- `allowed_domains`: the browser origins (the Origin header) it may be used from: a host
  (`app.example.com`, any scheme and port), a host's subdomains (`*.example.com`), or an
  exact origin (`https://app.example.com:8443`). Empty: any origin, or none.
- `rate_limit_per_minute`, `rate_limit_per_day`: requests let through per UTC minute and
  per UTC day; NULL: no limit.
- `expires_at`: after it the key is refused (401).

Use is counted in core.api_key_usage, one row per key and UTC day, which only two
SECURITY DEFINER functions write (core/migrations/0006): app.count_api_key_request()
(one row write per request, which is also the rate limit's atomic counter) and
app.count_api_key_error(). A key's first request of a day folds the days before into
its own last_used_at, total_requests and total_errors (one write of core.api_keys per
key and day) and deletes them; `with_usage()` adds what is not folded yet.
"""

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.db import models
from django.db.models import F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from hzm.db import fields

SCOPE_VERBS = ("read", "write", "define")
ALL_SCOPES = list(SCOPE_VERBS)
# A table name as generic_data.schema.TABLE_NAME has it (core must not import the app
# that builds on it).
_TABLE = r"[a-z][a-z0-9_]{0,62}"
_SCOPE = re.compile(rf"(?P<verb>[a-z]+)(?::(?P<table>{_TABLE}))?\Z")
_HOST = re.compile(
    r"(?:\*\.)?(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)


class KeySettingError(ValueError):
    """A scope, address, origin or limit that a key cannot store; the message names it."""


def split_list(value: str | Iterable[str] | None) -> list[str]:
    """Entries of a comma-, space- or newline-separated list (or of a list), stripped."""
    if value is None:
        return []
    parts = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value)
    return [part.strip() for part in parts if part and part.strip()]


def parse_scopes(value: str | Iterable[str] | None) -> list[str]:
    """Checked scopes, in the order given, without repeats: read, write, define[:table]."""
    scopes: list[str] = []
    for entry in split_list(value):
        found = _SCOPE.match(entry)
        if found is None or found["verb"] not in SCOPE_VERBS:
            raise KeySettingError(
                f"scopes: {entry!r} is not a scope; use {', '.join(SCOPE_VERBS)}, or "
                "<verb>:<table> for one table (read:products)"
            )
        if entry not in scopes:
            scopes.append(entry)
    return scopes


def parse_allowed_ips(value: str | Iterable[str] | None) -> list[str]:
    """Checked networks (CIDR) or addresses, written as networks: 203.0.113.7/32."""
    networks = []
    for entry in split_list(value):
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise KeySettingError(
                f"allowed_ips: {entry!r} is not an IP address or network "
                "(203.0.113.7, 10.0.0.0/8, 2001:db8::/32)"
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def parse_allowed_domains(value: str | Iterable[str] | None) -> list[str]:
    """Checked origins: app.example.com, *.example.com or https://app.example.com[:port]."""
    domains = []
    for entry in split_list(value):
        normalised = _normalise_origin(entry)
        if normalised is None:
            raise KeySettingError(
                f"allowed_domains: {entry!r} is not a host or an origin; use app.example.com, "
                "*.example.com (its subdomains) or https://app.example.com (that origin only)"
            )
        if normalised not in domains:
            domains.append(normalised)
    return domains


def _normalise_origin(entry: str) -> str | None:
    entry = entry.strip().lower().rstrip("/")
    if "://" not in entry:
        return entry if _HOST.match(entry) else None
    parts = urlsplit(entry)
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.username:
        return None
    if host.startswith("*.") or not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def parse_rate_limit(value: str | int | None, name: str) -> int | None:
    """A limit of at least 1 request, or None (no limit) for '', 'none' or None."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise KeySettingError(
            f"{name}: expected a whole number of requests, or 'none' for no limit, got {value!r}"
        ) from None
    if number < 1:
        raise KeySettingError(f"{name}: must be at least 1 (or 'none' for no limit), got {number}")
    return number


# --- Enforcement's questions -------------------------------------------------------------


def scope_allows(scopes: Iterable[str] | None, verb: str, table: str | None) -> bool:
    """Whether a key with `scopes` may use `verb` (on `table`, if the request has one)."""
    scopes = list(scopes or [])
    if not scopes:
        return True
    return verb in scopes or (table is not None and f"{verb}:{table}" in scopes)


def ip_allowed(allowed: Iterable[str] | None, address: str | None) -> bool:
    """Whether `address` is in one of the networks (no networks: any address, even unknown)."""
    allowed = list(allowed or [])
    if not allowed:
        return True
    try:
        client = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    for entry in allowed:
        try:
            if client in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a malformed stored entry admits nobody
    return False


def origin_allowed(allowed: Iterable[str] | None, origin: str | None) -> bool:
    """Whether the Origin header's value matches an entry (no entries: any, or none)."""
    allowed = list(allowed or [])
    if not allowed:
        return True
    if not origin or origin.strip().lower() == "null":
        return False
    parts = urlsplit(origin.strip().lower())
    try:
        port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    exact = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    for entry in allowed:
        if "://" in entry:
            if entry == exact:
                return True
        elif entry.startswith("*."):
            if host.endswith(entry[1:]):  # .example.com: a subdomain, not example.com
                return True
        elif entry == host:
            return True
    return False


# --- Counting -------------------------------------------------------------------------------


class ApiKeyUsage(models.Model):
    """core.api_key_usage: one key's use on one UTC day, and its current minute's window.

    Written only by app.count_api_key_request() and app.count_api_key_error() (SECURITY
    DEFINER): no tenant-facing role may read or change it, so a tenant cannot reset its
    own limits. No tenant_id: the tenant is the key's. Folded into the key's totals and
    deleted on the key's first request of a later day.
    """

    id = models.BigAutoField(primary_key=True)
    api_key = fields.ForeignKey(
        "core.ApiKey", db_on_delete=fields.CASCADE, related_name="usage_days"
    )
    day = models.DateField()
    requests = models.BigIntegerField(db_default=0)  # every request with the key
    errors = models.BigIntegerField(db_default=0)  # answers of 400 or more, refusals too
    day_count = models.IntegerField(db_default=0)  # let through: the per-day limit's count
    minute_start = models.DateTimeField()
    minute_count = models.IntegerField(db_default=0)  # let through in that minute
    last_used_at = models.DateTimeField(null=True)

    class Meta:
        db_table = 'core"."api_key_usage'
        verbose_name_plural = "API key usage"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "day"], name="api_key_usage_key_day_key")
        ]

    def __str__(self) -> str:
        return f"key {self.api_key_id} on {self.day}"


def with_usage(queryset: models.QuerySet) -> models.QuerySet:
    """API keys annotated with their live totals: what is folded plus today's (and older) rows.

    live_last_used_at, live_total_requests, live_total_errors.
    """
    rows = ApiKeyUsage.objects.filter(api_key=OuterRef("pk")).order_by().values("api_key")
    unfolded_requests = Subquery(rows.annotate(n=Sum("requests")).values("n")[:1])
    unfolded_errors = Subquery(rows.annotate(n=Sum("errors")).values("n")[:1])
    latest = Subquery(
        ApiKeyUsage.objects.filter(api_key=OuterRef("pk"))
        .order_by("-day")
        .values("last_used_at")[:1]
    )
    return queryset.annotate(
        live_total_requests=Coalesce(F("total_requests"), Value(0))
        + Coalesce(unfolded_requests, Value(0)),
        live_total_errors=Coalesce(F("total_errors"), Value(0))
        + Coalesce(unfolded_errors, Value(0)),
        # GREATEST ignores NULLs in PostgreSQL.
        live_last_used_at=Greatest(F("last_used_at"), latest),
    )


@dataclass(frozen=True)
class Usage:
    last_used_at: datetime | None
    total_requests: int
    total_errors: int


def usage_of(api_key: models.Model) -> Usage:
    """One key's live totals (see with_usage())."""
    found = with_usage(type(api_key)._base_manager.filter(pk=api_key.pk)).values_list(
        "live_last_used_at", "live_total_requests", "live_total_errors"
    )
    last, requests, errors = found.get()
    return Usage(last, int(requests), int(errors))


# --- Revoking --------------------------------------------------------------------------------


def revoke(api_key: models.Model, reason: str, by_user_id: int | None) -> None:
    """Mark the key revoked now, by whom and why; refused for an empty reason or a revoked key."""
    reason = (reason or "").strip()
    if not reason:
        raise KeySettingError("reason: say why the key is revoked (it is kept with the key)")
    if api_key.revoked_at is not None:
        raise KeySettingError(
            f"API key {api_key.key_prefix} was already revoked at "
            f"{api_key.revoked_at.isoformat(timespec='seconds')}"
        )
    api_key.revoked_at = timezone.now()
    api_key.revoked_by = by_user_id
    api_key.revoke_reason = reason
    api_key.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
