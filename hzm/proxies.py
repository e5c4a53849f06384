"""The client's address behind the reverse proxy, trusted exactly as gunicorn trusts it.

gunicorn (hzm/gunicorn.py) takes X-Forwarded-Proto only from FORWARDED_ALLOW_IPS, and
leaves REMOTE_ADDR the proxy's address. The settings read the same variable
(settings.HZM_FORWARDED_ALLOW_IPS), so that one list says whose forwarding headers
count: a request whose peer is one of those proxies comes from the right-most address
of X-Forwarded-For that is not itself a trusted proxy (the proxy appends the address it
saw, so what a client wrote further left is never believed); from any other peer the
header is ignored and the peer is the client. The sign-in throttle (axes) and the audit
trail both use it.
"""

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: Iterable[str], name: str = "FORWARDED_ALLOW_IPS") -> list[str]:
    """The entries of gunicorn's forwarded_allow_ips syntax (addresses, networks, "*"), checked."""
    checked = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        if entry != "*":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name}: {entry!r} is not an IP address or network; give the proxies' "
                    "addresses comma-separated (127.0.0.1,10.0.0.0/8), or * to trust any peer"
                ) from None
        checked.append(entry)
    return checked


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[bool, tuple[Network, ...]]:
    return "*" in entries, tuple(ipaddress.ip_network(e, strict=False) for e in entries if e != "*")


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # ::ffff:127.0.0.1 (a dual-stack socket's IPv4 peer) is 127.0.0.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from, behind the trusted proxies; None if unknown."""
    any_peer, networks = _networks(tuple(settings.HZM_FORWARDED_ALLOW_IPS))

    def listed(address: Address) -> bool:
        return any(address in network for network in networks)

    peer = _address(request.META.get("REMOTE_ADDR") or "")
    # No IP peer is a UNIX socket, which gunicorn trusts too (only local processes reach it).
    if peer is not None and not (any_peer or listed(peer)):
        return str(peer)
    client = str(peer) if peer is not None else None
    # "*" trusts whoever the peer is, for one hop: its right-most entry is the client.
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        address = _address(hop)
        if address is None:
            break  # a malformed entry: nothing left of it can be believed either
        client = str(address)
        if not listed(address):
            break
    return client
