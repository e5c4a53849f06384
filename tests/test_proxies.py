"""The client's address behind the trusted proxies (hzm/proxies.py), as gunicorn trusts them."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory, override_settings

from hzm.proxies import client_ip, parse_trusted_proxies


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        (["127.0.0.1"], "127.0.0.1", None, "127.0.0.1"),
        (["127.0.0.1"], "127.0.0.1", "198.51.100.7", "198.51.100.7"),
        # The proxy appends what it saw; whatever the client wrote to its left is not believed.
        (["127.0.0.1"], "127.0.0.1", "192.0.2.1, 198.51.100.7", "198.51.100.7"),
        # From an address that is no trusted proxy, the header is ignored.
        (["127.0.0.1"], "203.0.113.50", "192.0.2.1", "203.0.113.50"),
        # A chain of trusted proxies (load balancer, then nginx): the first untrusted hop.
        (
            ["127.0.0.1", "10.0.0.0/8"],
            "127.0.0.1",
            "192.0.2.1, 198.51.100.7, 10.1.2.3",
            "198.51.100.7",
        ),
        # * trusts the peer, for one hop.
        (["*"], "203.0.113.50", "192.0.2.1, 198.51.100.7", "198.51.100.7"),
        # A malformed entry: nothing left of it counts.
        (["127.0.0.1"], "127.0.0.1", "192.0.2.1, junk", "127.0.0.1"),
        (["127.0.0.1"], "::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"),
        (["::1"], "::1", "2001:db8::5", "2001:db8::5"),
        # A UNIX socket peer (no address) is local, as gunicorn treats it.
        (["127.0.0.1"], "", "198.51.100.7", "198.51.100.7"),
        (["127.0.0.1"], "", None, None),
    ],
)
def test_the_client_ip_is_taken_behind_the_trusted_proxies_only(trusted, peer, forwarded, client):
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **meta)
    with override_settings(HZM_FORWARDED_ALLOW_IPS=trusted):
        assert client_ip(request) == client


def test_trusted_proxies_must_be_addresses_or_networks():
    assert parse_trusted_proxies(["127.0.0.1", " 10.0.0.0/8", "*", ""]) == [
        "127.0.0.1",
        "10.0.0.0/8",
        "*",
    ]
    with pytest.raises(ImproperlyConfigured, match="'proxy.internal' is not an IP address"):
        parse_trusted_proxies(["proxy.internal"])
