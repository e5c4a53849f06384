"""The JSON HTTP API (generic_data.views): authentication, tenant context, status codes."""

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from core.models import ApiKey, User, api_key_prefix
from generic_data.auth import authenticate_api_key
from ops.models import AuditLog
from tests.factories import ProjectFactory, UserFactory
from tests.generic_data.conftest import default_role_permissions, grant, make_project
from tests.support import fetchone

pytestmark = pytest.mark.django_db

PRODUCTS = [
    {"name": "title", "type": "text", "required": True},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal"},
    {"name": "status", "type": "choice", "options": ["new", "sold"], "default": "new"},
]


class Api:
    """A client of one project's API with one set of credentials."""

    def __init__(self, project_id: int, key: str | None = None, client: Client | None = None):
        self.base = f"/api/v1/projects/{project_id}/tables/"
        self.client = client or Client()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def call(self, method: str, path: str = "", body: Any = None, **query: Any):
        send = getattr(self.client, method)
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        elif query:
            kwargs["data"] = query
        response = send(self.base + path, **kwargs)
        if response.content:
            assert response["Content-Type"] == "application/json"
            response.json_body = json.loads(response.content, parse_float=Decimal)
        return response


def issue_key(project, *, whole_tenant: bool = False, **fields: Any) -> str:
    _key, plaintext = ApiKey.objects.issue(
        tenant=project.tenant,
        user=project.user,
        project=None if whole_tenant else project,
        name="test",
        **fields,
    )
    return plaintext


@pytest.fixture
def api(project) -> Api:
    api = Api(project.pk, issue_key(project))
    assert api.call("post", body={"name": "products", "fields": PRODUCTS}).status_code == 201
    return api


# --- Authentication -----------------------------------------------------------------------


def test_without_credentials_the_answer_is_401_in_json(project):
    response = Api(project.pk).call("get")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json_body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Basic dXNlcjpwYXNz", "Bearer hzm_0123456789ab_wrong", "Bearer not-a-key"],
)
def test_a_bad_authorization_header_is_401(project, header):
    issue_key(project)
    response = Client().get(f"/api/v1/projects/{project.pk}/tables/",
                            headers={"Authorization": header})  # fmt: skip
    assert response.status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"is_active": False},
        {"revoked_at": timezone.now()},
        {"expires_at": timezone.now() - datetime.timedelta(seconds=1)},
    ],
    ids=["inactive", "revoked", "expired"],
)
def test_an_unusable_key_is_401(project, fields):
    response = Api(project.pk, issue_key(project, **fields)).call("get")
    assert response.status_code == 401


def test_a_key_of_a_deleted_tenant_or_user_is_401(project):
    key = issue_key(project)
    User.objects.filter(pk=project.user_id).delete()  # soft
    assert authenticate_api_key(key) is None


def test_a_key_whose_secret_contains_underscores_is_found():
    # token_urlsafe() secrets may contain '_'; the prefix is cut by its length.
    assert api_key_prefix("hzm_0123456789ab_a_b_c") == "hzm_0123456789ab"
    assert api_key_prefix("hzm_0123456789ab") is None
    assert api_key_prefix("hzm_0123456789Zb_x") is None


def test_a_project_key_opens_only_its_project(project):
    sibling = ProjectFactory(tenant=project.tenant, user=project.user)
    key = issue_key(project)
    assert Api(project.pk, key).call("get").status_code == 200
    response = Api(sibling.pk, key).call("get")
    assert response.status_code == 403
    assert response.json_body["error"]["message"] == (
        f"this API key is for project {project.pk} only"
    )
    # A key of the whole tenant opens every project of the tenant, and no other.
    tenant_key = issue_key(project, whole_tenant=True)
    assert Api(sibling.pk, tenant_key).call("get").status_code == 200
    other = make_project()
    assert Api(other.pk, tenant_key).call("get").status_code == 404


def test_session_requests_need_the_csrf_token_api_key_requests_do_not(project):
    grant(project.user, *default_role_permissions("member"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(project.user)
    session = Api(project.pk, client=client)
    assert session.call("get").status_code == 200
    response = session.call("post", body={"name": "t", "fields": []})
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "csrf_failed"
    # Django's CSRF pair: the secret in the cookie, the same secret (or a masked one) in
    # the header.
    token = "a" * 32
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    session.headers = {"X-CSRFToken": token}
    assert session.call("post", body={"name": "t", "fields": []}).status_code == 201

    keyed = Api(project.pk, issue_key(project), client=Client(enforce_csrf_checks=True))
    assert keyed.call("post", body={"name": "u", "fields": []}).status_code == 201


def test_platform_staff_have_no_tenant_data(project):
    staff = UserFactory(tenant=project.tenant, role="platform_admin")
    client = Client()
    client.force_login(staff)
    assert Api(project.pk, client=client).call("get").status_code == 403


def test_a_session_and_a_key_together_are_refused(project):
    client = Client()
    client.force_login(project.user)
    assert Api(project.pk, issue_key(project), client=client).call("get").status_code == 400


def test_each_request_runs_as_the_runtime_role_with_the_callers_context(api, project):
    api.headers["X-Request-ID"] = "req-42"
    response = api.call("post", "products/rows/", {"data": {"title": "a"}})
    assert response.status_code == 201
    row_id = response.json_body["id"]
    assert fetchone("SELECT created_by FROM app.generic_data WHERE id = %s", [row_id]) == (
        project.user_id,
    )
    audit = AuditLog.objects.get(entity_type="app.generic_data", entity_id=str(row_id))
    assert (audit.tenant_id, audit.user_id, audit.request_id) == (
        project.tenant_id, project.user_id, "req-42"
    )  # fmt: skip
    # Afterwards the connection is back to the login role, without a tenant.
    assert fetchone("SELECT current_user = session_user, app.current_tenant()") == (True, None)


# --- Tables and rows ------------------------------------------------------------------------


def test_tables_are_defined_listed_altered_and_dropped(api):
    listed = api.call("get").json_body["tables"]
    assert [t["name"] for t in listed] == ["products"]
    response = api.call("patch", "products/", {"rename": {"sku": "code"}, "name": "goods"})
    assert response.status_code == 200
    assert [f["name"] for f in response.json_body["fields"]] == ["title", "code", "price", "status"]
    assert api.call("get", "goods/").json_body["name"] == "goods"
    assert api.call("delete", "goods/").status_code == 204
    assert api.call("get", "goods/").status_code == 404


def test_a_bad_definition_is_400_naming_each_field(api):
    response = api.call("post", body={"name": "t", "fields": [{"name": "a", "type": "money"},
                                                               {"name": "b"}]})  # fmt: skip
    assert response.status_code == 400
    assert [e["field"] for e in response.json_body["error"]["errors"]] == ["a", "b"]
    assert api.call("post", body={"name": "products", "fields": []}).status_code == 409


def test_rows_round_trip_with_exact_decimals(api):
    response = api.call("post", "products/rows/", {"data": {"title": "a", "price": 12.50}})
    assert response.status_code == 201
    row = response.json_body
    assert row["data"] == {"title": "a", "price": Decimal("12.5"), "status": "new"}
    assert b'"price":12.5' in api.call("get", f"products/rows/{row['id']}/").content
    response = api.call("patch", f"products/rows/{row['id']}/",
                        {"data": {"price": "0.1000000000000000000001"}, "version": 1})  # fmt: skip
    assert response.json_body["data"]["price"] == Decimal("0.1000000000000000000001")
    assert response.json_body["version"] == 2
    stale = api.call("patch", f"products/rows/{row['id']}/", {"data": {"title": "b"}, "version": 1})
    assert stale.status_code == 409
    assert api.call("delete", f"products/rows/{row['id']}/").status_code == 204
    assert api.call("get", f"products/rows/{row['id']}/").status_code == 404


def test_a_bulk_create_is_all_or_nothing_with_every_error_in_the_body(api):
    response = api.call("post", "products/rows/", {"rows": [{"title": "a", "sku": "A"},
                                                            {"title": "b", "price": "abc"},
                                                            {"sku": "A"}]})  # fmt: skip
    assert response.status_code == 400
    assert response.json_body["error"]["errors"] == [
        {"row": 2, "field": "price", "message": "expected a decimal, got 'abc'"},
        {"row": 3, "field": "title", "message": "is required"},
        {"row": 3, "field": "sku", "message": "value 'A' repeats row 1 (the field is unique)"},
    ]
    assert api.call("get", "products/rows/").json_body["rows"] == []
    created = api.call("post", "products/rows/", {"rows": [{"title": "a", "sku": "A"}]})
    assert (created.status_code, created.json_body["created"]) == (201, 1)
    conflict = api.call("post", "products/rows/", {"rows": [{"title": "b", "sku": "A"}]})
    assert conflict.status_code == 409
    assert conflict.json_body["error"]["errors"] == [
        {"row": 1, "field": "sku",
         "message": "value 'A' is already used by another row (the field is unique)"}
    ]  # fmt: skip


def test_status_codes(api, project):
    assert api.call("get", "nope/rows/").status_code == 404
    assert api.call("get", "products/rows/999999999/").status_code == 404
    assert api.call("put", "products/rows/").status_code == 405
    bad_json = api.client.post(
        api.base + "products/rows/", data="{", content_type="application/json", headers=api.headers
    )
    assert bad_json.status_code == 400
    assert json.loads(bad_json.content)["error"]["code"] == "bad_json"
    assert api.call("get", "products/rows/", filter="{nope").status_code == 400
    assert api.call("get", "products/rows/", sort="colour").status_code == 400


def test_listing_filters_sorts_pages_and_counts(api):
    rows = [{"title": f"item {n}", "price": n, "status": ("new", "sold")[n % 2]}
            for n in range(1, 26)]  # fmt: skip
    api.call("post", "products/rows/", {"rows": rows})
    response = api.call("get", "products/rows/", status="new", price__gt="10", sort="-price",
                        limit="5", count="true")  # fmt: skip
    page = response.json_body
    assert [r["data"]["price"] for r in page["rows"]] == [24, 22, 20, 18, 16]
    assert page["count"] == 7
    following = api.call("get", "products/rows/", status="new", price__gt="10", sort="-price",
                         limit="5", after=page["next_cursor"]).json_body  # fmt: skip
    assert [r["data"]["price"] for r in following["rows"]] == [14, 12]
    assert following["next_cursor"] is None
    as_json = api.call("post", "products/rows/query/", {
        "filter": {"or": [{"field": "price", "op": "lt", "value": 2},
                          {"field": "price", "op": "in", "value": [24, 25]}]},
        "sort": "price"}).json_body  # fmt: skip
    assert [r["data"]["price"] for r in as_json["rows"]] == [1, 24, 25]
    in_query_string = api.call("get", "products/rows/", price__in="3,4", title__contains="item")
    assert [r["data"]["price"] for r in in_query_string.json_body["rows"]] == [3, 4]


def test_search(api):
    api.call("post", "products/rows/", {"rows": [{"title": "blue shirt"}, {"title": "red hat"},
                                                 {"title": "blue hat"}]})  # fmt: skip
    hits = api.call("get", "products/search/", q="blue", status="new", count="true").json_body
    assert sorted(r["data"]["title"] for r in hits["rows"]) == ["blue hat", "blue shirt"]
    assert hits["count"] == 2
    assert api.call("get", "products/search/").status_code == 400


def test_another_tenant_sees_none_of_it(api, project):
    api.call("post", "products/rows/", {"rows": [{"title": "secret blue"}]})
    other = make_project()
    theirs = Api(other.pk, issue_key(other))
    theirs.call("post", body={"name": "products", "fields": PRODUCTS})
    assert theirs.call("get", "products/rows/").json_body["rows"] == []
    assert theirs.call("get", "products/search/", q="secret").json_body["rows"] == []
    # With their key, our project does not exist.
    mine_with_their_key = Api(project.pk, theirs.headers["Authorization"].split()[1])
    assert mine_with_their_key.call("get", "products/rows/").status_code == 403
