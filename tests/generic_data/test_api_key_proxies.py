"""An API key's allowed addresses behind the reverse proxy: the client is the forwarded one.

The client address is the one the audit trail records (hzm.proxies.client_ip, from
FORWARDED_ALLOW_IPS, as gunicorn trusts it).
"""

import pytest
from django.test import override_settings

from tests.generic_data.test_api_keys import call, issue

pytestmark = pytest.mark.django_db


@override_settings(HZM_FORWARDED_ALLOW_IPS=["127.0.0.1"])
def test_behind_the_trusted_proxy_the_client_is_the_forwarded_address(project):
    _, key = issue(project, allowed_ips=["10.0.0.0/8"])
    proxied = {"remote_addr": "127.0.0.1"}
    assert call(project, key, "get", **proxied, X_Forwarded_For="10.9.9.9").status_code == 200
    refused = call(project, key, "get", **proxied, X_Forwarded_For="192.0.2.1")
    assert refused.status_code == 403
    # What a client writes to the left of what the proxy appended is not believed.
    forged = call(project, key, "get", **proxied, X_Forwarded_For="10.0.0.1, 192.0.2.1")
    assert forged.status_code == 403
    # From anyone but the proxy the header counts for nothing.
    direct = call(project, key, "get", remote_addr="192.0.2.1", X_Forwarded_For="10.9.9.9")
    assert direct.status_code == 403
