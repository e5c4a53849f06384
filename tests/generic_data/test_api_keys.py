"""API keys enforce what they store: scopes, addresses, origins, rate limits, expiry, counts.

Through the HTTP API with Django's test client, so ApiKeyMiddleware and the view's
authenticate_api_key() both take part, as in production. The whole test runs in one
transaction, whose now() (the clock of the rate limit's windows) does not move: no test
here depends on when it runs.
"""

import datetime
import json
from typing import Any

import pytest
from django.test import Client, RequestFactory
from django.utils import timezone

from core.api_keys import ApiKeyUsage, usage_of
from core.models import ApiKey, Project
from generic_data.auth import (
    CHECKED,
    ApiKeyRefused,
    authenticate_api_key,
    required_scope,
)
from hzm.db.context import as_runtime_role
from tests.generic_data.conftest import make_project
from tests.support import fetchone

pytestmark = pytest.mark.django_db

PRODUCTS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "price", "type": "decimal"},
]


def issue(project: Project, **fields: Any) -> tuple[ApiKey, str]:
    return ApiKey.objects.issue(
        tenant=project.tenant, user=project.user, project=project, name="test", **fields
    )


def call(
    project: Project,
    key: str,
    method: str,
    path: str = "",
    body: Any = None,
    *,
    remote_addr: str | None = None,
    **headers: str,
) -> Any:
    """One request with the key; `headers` by their HTTP names (Origin, X_Forwarded_For)."""
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {key}", **headers}}
    if body is not None:
        kwargs.update(data=json.dumps(body), content_type="application/json")
    if remote_addr is not None:
        kwargs["REMOTE_ADDR"] = remote_addr
    response = getattr(Client(), method)(f"/api/v1/projects/{project.pk}/tables/{path}", **kwargs)
    response.body = json.loads(response.content) if response.content else None
    return response


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json"
    return response.body["error"]


@pytest.fixture
def project(db: None) -> Project:
    project = make_project()
    _, key = issue(project)
    assert (
        call(project, key, "post", body={"name": "products", "fields": PRODUCTS}).status_code == 201
    )
    assert (
        call(project, key, "post", body={"name": "orders", "fields": PRODUCTS}).status_code == 201
    )
    return project


# --- Done when ----------------------------------------------------------------------------------


def test_a_read_only_key_limited_to_10_a_minute_gets_403_on_a_write_and_429_on_the_eleventh(
    project,
):
    _, key = issue(project, scopes=["read"], rate_limit_per_minute=10)
    write = call(project, key, "post", "products/rows/", {"data": {"title": "Tea"}})
    assert write.status_code == 403
    assert error_of(write)["code"] == "missing_scope"
    assert "'write'" in error_of(write)["message"]
    assert error_of(write)["errors"] == [{"field": "scopes", "message": error_of(write)["message"]}]
    # The refused write used none of the limit: ten reads pass, the eleventh is refused.
    for _ in range(10):
        assert call(project, key, "get", "products/rows/").status_code == 200
    eleventh = call(project, key, "get", "products/rows/")
    assert eleventh.status_code == 429
    assert error_of(eleventh)["code"] == "rate_limited"
    assert "10 requests per minute" in error_of(eleventh)["message"]
    assert 1 <= int(eleventh["Retry-After"]) <= 60
    # A write is still refused for its scope first.
    assert (
        call(project, key, "post", "products/rows/", {"data": {"title": "Tea"}}).status_code == 403
    )


# --- Scopes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "needs"),
    [
        ("get", "", None, "read"),
        ("post", "", {"name": "t", "fields": PRODUCTS}, "define"),
        ("get", "products/", None, "read"),
        ("patch", "products/", {"name": "goods"}, "define"),
        ("delete", "products/", None, "define"),
        ("get", "products/rows/", None, "read"),
        ("post", "products/rows/query/", {}, "read"),
        ("get", "products/search/?q=tea", None, "read"),
        ("post", "products/rows/", {"data": {"title": "x"}}, "write"),
        ("patch", "products/rows/1/", {"data": {"title": "x"}}, "write"),
        ("delete", "products/rows/1/", None, "write"),
    ],
)
def test_each_request_needs_its_verb_s_scope(project, method, path, body, needs):
    others = [scope for scope in ("read", "write", "define") if scope != needs]
    _, without = issue(project, scopes=others)
    refused = call(project, without, method, path, body)
    assert refused.status_code == 403, refused.body
    assert error_of(refused)["code"] == "missing_scope"
    assert f"'{needs}'" in error_of(refused)["message"]
    _, with_it = issue(project, scopes=[needs])
    assert call(project, with_it, method, path, body).status_code not in (401, 403)


def test_a_table_scope_opens_that_table_only(project):
    _, key = issue(project, scopes=["read:products", "write:products"])
    assert call(project, key, "get", "products/rows/").status_code == 200
    assert (
        call(project, key, "post", "products/rows/", {"data": {"title": "Tea"}}).status_code == 201
    )
    other = call(project, key, "get", "orders/rows/")
    assert other.status_code == 403
    assert "'read' or 'read:orders'" in error_of(other)["message"]
    # The list of tables is no one table's: it needs read itself.
    assert call(project, key, "get", "").status_code == 403


def test_a_key_without_scopes_may_do_everything(project):
    _, key = issue(project)  # the column's default: no scopes stored
    assert ApiKey.objects.get(key_prefix=key[:16]).scopes == []
    assert (
        call(project, key, "post", "products/rows/", {"data": {"title": "Tea"}}).status_code == 201
    )


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/projects/3/tables/", ("read", None)),
        ("POST", "/api/v1/projects/3/tables", ("define", None)),
        ("HEAD", "/api/v1/projects/3/tables/t/", ("read", "t")),
        ("PATCH", "/api/v1/projects/3/tables/t", ("define", "t")),
        ("POST", "/api/v1/projects/3/tables/t/rows/query/", ("read", "t")),
        ("POST", "/api/v1/projects/3/tables/t/rows/", ("write", "t")),
        ("PUT", "/api/v1/projects/3/tables/t/rows/9/", ("write", "t")),
        ("GET", "/api/v1/projects/3/tables/t/search/", ("read", "t")),
        # Not the data API: safe methods read, the others write.
        ("GET", "/api/v1/elsewhere/", ("read", None)),
        ("POST", "/api/v1/elsewhere/", ("write", None)),
    ],
)
def test_required_scope(method, path, expected):
    assert required_scope(method, path) == expected


# --- Addresses and origins -----------------------------------------------------------------------


def test_allowed_ips_are_networks_of_the_client_address(project):
    _, key = issue(project, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    assert call(project, key, "get", remote_addr="10.1.2.3").status_code == 200
    assert call(project, key, "get", remote_addr="2001:db8::7").status_code == 200
    refused = call(project, key, "get", remote_addr="192.0.2.1")
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "ip_not_allowed"
    assert "192.0.2.1" in error_of(refused)["message"]


@pytest.mark.parametrize(
    ("allowed", "origin", "status"),
    [
        (["app.example.com"], "https://app.example.com", 200),
        (["app.example.com"], "http://app.example.com:8080", 200),
        (["app.example.com"], "https://evil.example", 403),
        (["app.example.com"], None, 403),
        (["app.example.com"], "null", 403),
        (["*.example.com"], "https://a.b.example.com", 200),
        (["*.example.com"], "https://example.com", 403),
        (["https://app.example.com:8443"], "https://app.example.com:8443", 200),
        (["https://app.example.com:8443"], "https://app.example.com", 403),
        ([], None, 200),
    ],
)
def test_allowed_domains_are_checked_against_the_origin(project, allowed, origin, status):
    _, key = issue(project, allowed_domains=allowed)
    headers = {"Origin": origin} if origin else {}
    response = call(project, key, "get", **headers)
    assert response.status_code == status
    if status == 403:
        assert error_of(response)["code"] == "origin_not_allowed"


# --- Expiry and revocation -----------------------------------------------------------------------


def test_an_expired_key_is_401_saying_when(project):
    _, key = issue(project, expires_at=timezone.now() - datetime.timedelta(minutes=1))
    response = call(project, key, "get")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert error_of(response)["code"] == "key_expired"
    assert "expired at" in error_of(response)["message"]


def test_a_revoked_key_is_401(project):
    api_key, key = issue(project)
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now(), revoke_reason="test")
    response = call(project, key, "get")
    assert (response.status_code, error_of(response)["code"]) == (401, "key_revoked")
    assert not ApiKeyUsage.objects.filter(api_key=api_key).exists()  # nothing counted


# --- Limits and counts ---------------------------------------------------------------------------


def test_the_day_s_limit_says_when_the_day_ends(project):
    _, key = issue(project, rate_limit_per_minute=None, rate_limit_per_day=3)
    for _ in range(3):
        assert call(project, key, "get").status_code == 200
    refused = call(project, key, "get")
    assert refused.status_code == 429
    assert "3 requests per day" in error_of(refused)["message"]
    seconds_left = fetchone(
        "SELECT ceil(extract(epoch FROM (date_trunc('day', now(), 'UTC') + interval '1 day')"
        " - now()))::int"
    )[0]
    assert int(refused["Retry-After"]) == max(1, seconds_left)


def test_no_limit_means_none(project):
    _, key = issue(project, rate_limit_per_minute=None, rate_limit_per_day=None)
    for _ in range(70):  # past the column's default of 60 a minute
        assert call(project, key, "get").status_code == 200


def test_requests_errors_and_last_use_are_counted_with_one_row_per_day(project):
    api_key, key = issue(project, scopes=["read"], rate_limit_per_minute=3)
    assert usage_of(api_key).total_requests == 0
    statuses = [
        call(project, key, "get").status_code,  # 200
        call(project, key, "get", "missing/").status_code,  # 404 from the handler
        call(project, key, "post", "products/rows/", {"data": {"title": "x"}}).status_code,  # 403
        call(project, key, "get").status_code,  # 200
        call(project, key, "get").status_code,  # 429: the 404 used the third
    ]
    assert statuses == [200, 404, 403, 200, 429]
    usage = usage_of(api_key)
    assert (usage.total_requests, usage.total_errors) == (5, 3)
    assert usage.last_used_at == fetchone("SELECT now()")[0]
    (row,) = ApiKeyUsage.objects.filter(api_key=api_key)
    assert (row.requests, row.errors, row.day_count, row.minute_count) == (5, 3, 3, 3)
    # Nothing was written to the key's own row on the way.
    api_key.refresh_from_db()
    assert (api_key.version, api_key.total_requests, api_key.last_used_at) == (1, 0, None)


def test_a_key_s_first_request_of_a_day_folds_the_days_before_into_the_key(project):
    api_key, key = issue(project)
    today = fetchone("SELECT (now() AT TIME ZONE 'UTC')::date")[0]
    before = timezone.now() - datetime.timedelta(days=2)
    for days_ago, requests, errors in ((2, 5, 1), (1, 7, 2)):
        ApiKeyUsage.objects.create(
            api_key=api_key,
            day=today - datetime.timedelta(days=days_ago),
            requests=requests,
            errors=errors,
            minute_start=before,
            last_used_at=before + datetime.timedelta(days=2 - days_ago),
        )
    assert usage_of(api_key).total_requests == 12
    assert call(project, key, "get").status_code == 200
    api_key.refresh_from_db()
    assert (api_key.total_requests, api_key.total_errors) == (12, 3)
    assert api_key.last_used_at == before + datetime.timedelta(days=1)
    assert list(ApiKeyUsage.objects.filter(api_key=api_key).values_list("day", flat=True)) == [
        today
    ]
    usage = usage_of(api_key)
    assert (usage.total_requests, usage.total_errors) == (13, 3)
    assert usage.last_used_at > api_key.last_used_at


# --- Without the middleware ----------------------------------------------------------------------


def test_without_the_middleware_the_view_s_call_checks_and_counts(project):
    api_key, key = issue(project, scopes=["read"], rate_limit_per_minute=1)
    factory = RequestFactory()
    with as_runtime_role():  # as RuntimeRoleMiddleware runs a request
        first = factory.get(f"/api/v1/projects/{project.pk}/tables/")
        assert authenticate_api_key(key, first).api_key_id == api_key.pk
        assert authenticate_api_key(key, first).api_key_id == api_key.pk  # checked once
        assert getattr(first, CHECKED).caller.api_key_id == api_key.pk
        second = factory.get(f"/api/v1/projects/{project.pk}/tables/")
        with pytest.raises(ApiKeyRefused) as refused:
            authenticate_api_key(key, second)
    assert (refused.value.status, refused.value.headers.keys()) == (429, {"Retry-After"})
    assert usage_of(api_key).total_requests == 2
    # Without a request, code outside HTTP only verifies the key.
    assert authenticate_api_key(key).api_key_id == api_key.pk
    assert usage_of(api_key).total_requests == 2
