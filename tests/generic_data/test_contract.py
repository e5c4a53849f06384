"""The HTTP API's contract: the OpenAPI document, one request shape (version, unknown
keys, operators), JSON for every answer, and who may do what (RBAC, deleted things)."""

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client, override_settings
from openapi_spec_validator import validate

from core.models import Project, TableMetadata, Tenant
from generic_data import query as q
from generic_data.models import GenericData
from hzm.api import MAX_BODY_DEPTH
from tests.generic_data.conftest import default_role_permissions, grant
from tests.generic_data.test_api import PRODUCTS, Api, issue_key

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def api(project) -> Api:
    api = Api(project.pk, issue_key(project))
    assert api.call("post", body={"name": "products", "fields": PRODUCTS}).status_code == 201
    return api


def document() -> dict[str, Any]:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def error(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return json.loads(response.content)["error"]


# --- The document -------------------------------------------------------------------------


def test_the_openapi_document_is_valid_and_describes_every_endpoint():
    spec = document()
    validate(spec)  # openapi-spec-validator, an independent implementation of the standard
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item
    }
    base, table = "/api/v1/projects/{project_id}/tables/", "{table}/"
    assert operations == {
        ("GET", "/api/v1/auth/csrf"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/auth/session"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", base),
        ("POST", base),
        ("GET", base + table),
        ("PATCH", base + table),
        ("DELETE", base + table),
        ("GET", base + table + "rows/"),
        ("POST", base + table + "rows/"),
        ("POST", base + table + "rows/query/"),
        ("GET", base + table + "rows/{row_id}/"),
        ("PATCH", base + table + "rows/{row_id}/"),
        ("DELETE", base + table + "rows/{row_id}/"),
        ("GET", base + table + "search/"),
    }
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            responses = item[method]["responses"]
            # Every error answer has the one error shape, and is described.
            for status, answer in responses.items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)
                    assert answer["description"], (path, status)
            assert {"405", "500"} <= set(responses), (method, path)
            if "requestBody" in item[method]:
                assert {"400", "413", "415"} <= set(responses), (method, path)
            if path.startswith(base):
                assert {"401", "403", "404"} <= set(responses), (method, path)
                assert item[method]["security"] == [{"BearerApiKey": []}, {"SessionCookie": []}]
                assert "Permission (session users)" in item[method]["description"]
    schemas = spec["components"]["schemas"]
    assert schemas["FilterCondition"]["properties"]["op"]["enum"] == list(q.OPERATORS)
    assert schemas["RowUpdate"]["properties"]["version"]
    assert schemas["RowUpdate"]["additionalProperties"] is False


def test_the_docs_page_serves_swagger_ui_from_our_own_static_files(tmp_path):
    page = Client().get("/api/v1/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets and all(a.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith(
        "/") else "/" + settings.STATIC_URL) for a in assets), assets  # fmt: skip
    assert "cdn" not in html.lower()
    for asset in assets:
        assert finders.find(asset.split(settings.STATIC_URL, 1)[1]), asset
    # With DEBUG off, WhiteNoise serves them from STATIC_ROOT once collected (a release).
    with override_settings(STATIC_ROOT=tmp_path, DEBUG=False, SECURE_SSL_REDIRECT=False):
        call_command("collectstatic", interactive=False, verbosity=0)
        for asset in assets:
            served = Client().get(asset)
            assert served.status_code == 200, asset


# --- One request shape ----------------------------------------------------------------------


def test_optimistic_concurrency_is_version_everywhere_and_a_lost_update_is_gone(api):
    row = api.call("post", "products/rows/", {"data": {"title": "first"}}).json_body
    path = f"products/rows/{row['id']}/"
    # Two clients read version 1; the first writes.
    assert api.call("patch", path, {"data": {"title": "A"}, "version": 1}).status_code == 200
    # The second's stale write, under either name, changes nothing.
    other_name = api.call("patch", path, {"data": {"title": "B"}, "expected_version": 1})
    assert other_name.status_code == 400
    assert error(other_name)["errors"] == [
        {"field": "expected_version", "message": "is not a key of this request (use 'version')"}
    ]
    stale = api.call("patch", path, {"data": {"title": "B"}, "version": 1})
    assert stale.status_code == 409
    assert error(stale)["errors"] == [
        {"field": "version", "message": "is 1, but the current version is 2"}
    ]
    assert api.call("get", path).json_body["data"]["title"] == "A"
    # A delete and a table's alteration and drop take it too (DELETE: ?version=).
    assert api.client.delete(api.base + path + "?version=1", headers=api.headers).status_code == 409
    assert api.call("get", path).status_code == 200
    assert api.client.delete(api.base + path + "?version=2", headers=api.headers).status_code == 204
    table_version = api.call("get", "products/").json_body["version"]
    stale_alter = {"remove": ["sku"], "version": table_version + 1}
    assert api.call("patch", "products/", stale_alter).status_code == 409
    assert "sku" in [f["name"] for f in api.call("get", "products/").json_body["fields"]]
    current = {**stale_alter, "version": table_version}
    assert api.call("patch", "products/", current).status_code == 200
    stale_drop = api.client.delete(
        api.base + f"products/?version={table_version}", headers=api.headers
    )
    assert stale_drop.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "", {"name": "t", "fields": [], "colour": 1}),
        ("patch", "products/", {"rename": {}, "colour": 1}),
        ("post", "products/rows/", {"data": {"title": "a"}, "colour": 1}),
        ("post", "products/rows/query/", {"limit": 5, "colour": 1}),
        ("patch", "products/rows/1/", {"data": {}, "colour": 1}),
    ],
)
def test_unknown_keys_are_refused_everywhere_naming_them(api, method, path, body):
    response = api.call(method, path, body)
    assert response.status_code == 400
    assert error(response)["errors"] == [
        {"field": "colour", "message": "is not a key of this request"}
    ]


def test_unknown_query_parameters_are_refused_where_no_condition_can_be(api):
    for method, path in [("get", "products/"), ("delete", "products/rows/1/"), ("get", "")]:
        response = getattr(api.client, method)(
            api.base + path + "?expected_version=3", headers=api.headers
        )
        assert response.status_code == 400, (method, path)
        assert error(response)["errors"][0]["field"] == "expected_version"
    # In a listing, another key is a condition on a field, which must exist.
    response = api.call("get", "products/rows/", colour="red")
    assert response.status_code == 400
    assert "'colour' is not a field" in error(response)["message"]


def test_the_readme_and_the_server_agree_on_the_operators(api):
    text = README.read_text()
    listed = re.search(r"Operators: (.+?)\.\n", text)
    assert listed, "the README's API section lists the operators as 'Operators: `eq`, ...'."
    assert re.findall(r"`([a-z_]+)`", listed.group(1)) == list(q.OPERATORS)
    assert "is_null" not in q.OPERATORS
    refused = api.call("post", "products/rows/query/",
                       {"filter": {"field": "sku", "op": "is_null", "value": True}})  # fmt: skip
    assert refused.status_code == 400
    assert "'is_null' is spelled 'isnull'" in error(refused)["message"]
    shorthand = api.call("get", "products/rows/", sku__is_null="true")
    assert shorthand.status_code == 400
    assert "'is_null' is spelled 'isnull'" in error(shorthand)["message"]
    assert api.call("get", "products/rows/", sku__isnull="true").status_code == 200
    for name in ("MAX_IN_VALUES", "MAX_FILTER_DEPTH", "MAX_FILTER_SIZE", "MAX_SEARCH_LENGTH",
                 "MAX_FILTER_VALUE_LENGTH", "MAX_CONDITIONS", "MAX_BODY_DEPTH"):  # fmt: skip
        assert f"`{name}`" in text, f"the README's limits name {name}"


# --- JSON for every answer --------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_every_answer_under_api_is_json(api, debug):
    with override_settings(DEBUG=debug, SECURE_SSL_REDIRECT=False):
        client = Client(raise_request_exception=False)
        unknown = client.get("/api/v1/nowhere/at/all")
        assert (unknown.status_code, error(unknown)["code"]) == (404, "not_found")
        no_slash = client.post("/api/v1/projects/1/tables", data="{}",
                               content_type="application/json")  # fmt: skip
        assert no_slash.status_code == 404 and error(no_slash)["code"] == "not_found"
        put = client.put(api.base + "products/rows/", headers=api.headers)
        assert put.status_code == 405
        assert put["Allow"] == "GET, POST, OPTIONS"
        assert error(put)["code"] == "method_not_allowed"
        plain = client.post(api.base + "products/rows/", data="title=a",
                            content_type="text/plain", headers=api.headers)  # fmt: skip
        assert (plain.status_code, error(plain)["code"]) == (415, "unsupported_media_type")
        form = client.post(api.base + "products/rows/", data={"title": "a"}, headers=api.headers)
        assert form.status_code == 415
        large = json.dumps({"data": {"title": "x" * 2000}})
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
            big = client.post(api.base + "products/rows/", data=large,
                              content_type="application/json", headers=api.headers)  # fmt: skip
        assert (big.status_code, error(big)["code"]) == (413, "too_large")
        not_json = client.post(api.base + "products/rows/", data="{", headers=api.headers,
                               content_type="application/json")  # fmt: skip
        assert (not_json.status_code, error(not_json)["code"]) == (400, "bad_json")
        bad_id = client.get(api.base + "products/rows/abc/", headers=api.headers)
        assert bad_id.status_code == 400
        assert error(bad_id)["errors"][0]["field"] == "row_id"


def test_a_bug_is_a_json_500_with_debug_too(api, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("generic_data.services.get_row", broken)
    with override_settings(DEBUG=True):
        response = Client(raise_request_exception=False).get(
            api.base + "products/rows/1/", headers=api.headers
        )
    assert response.status_code == 500
    assert error(response) == {
        "code": "server_error",
        "message": "the server failed to answer this request",
    }


# --- Who may do what ----------------------------------------------------------------------------


def session_api(project, *codes: str) -> Api:
    grant(project.user, *codes)
    client = Client()
    client.force_login(project.user)
    return Api(project.pk, client=client)


def test_session_users_need_the_permission_of_each_operation(api, project):
    row = api.call("post", "products/rows/", {"data": {"title": "a"}}).json_body
    viewer = session_api(project, *default_role_permissions("viewer"))
    assert viewer.call("get", "products/rows/").status_code == 200
    assert viewer.call("get", f"products/rows/{row['id']}/").status_code == 200
    assert viewer.call("get", "products/").status_code == 200
    for method, path, body, permission in [
        ("delete", f"products/rows/{row['id']}/", None, "data.delete"),
        ("patch", f"products/rows/{row['id']}/", {"data": {"title": "b"}}, "data.write"),
        ("post", "products/rows/", {"data": {"title": "b"}}, "data.write"),
        ("post", "", {"name": "t2", "fields": []}, "projects.edit"),
        ("patch", "products/", {"remove": ["sku"]}, "projects.edit"),
        ("delete", "products/", None, "projects.edit"),
    ]:
        response = viewer.call(method, path, body)
        assert response.status_code == 403, (method, path)
        assert error(response)["code"] == "permission_denied"
        assert f"'{permission}'" in error(response)["message"]
    assert api.call("get", f"products/rows/{row['id']}/").json_body["data"]["title"] == "a"
    assert GenericData.objects.filter(pk=row["id"], is_deleted=False).exists()

    member = session_api(project, *default_role_permissions("member"))
    assert member.call("delete", f"products/rows/{row['id']}/").status_code == 204


def test_a_user_without_roles_may_do_nothing(api, project):
    client = Client()
    client.force_login(project.user)
    response = Api(project.pk, client=client).call("get", "products/rows/")
    assert response.status_code == 403
    assert "'data.read'" in error(response)["message"]


def test_a_deleted_project_or_table_answers_as_if_absent(api, project):
    api.call("post", "products/rows/", {"data": {"title": "a"}})
    tenant_key = Api(project.pk, issue_key(project, whole_tenant=True))
    TableMetadata.objects.filter(project=project).update(is_deleted=True)
    for path in ("products/", "products/rows/", "products/rows/1/", "products/search/?q=a"):
        assert tenant_key.client.get(tenant_key.base + path,
                                     headers=tenant_key.headers).status_code == 404  # fmt: skip
    TableMetadata.objects.filter(project=project).update(is_deleted=False)
    Project.objects.filter(pk=project.pk).delete()  # soft
    assert Project.all_objects.get(pk=project.pk).is_deleted
    for method, path, body in [
        ("get", "", None),
        ("get", "products/", None),
        ("get", "products/rows/", None),
        ("post", "products/rows/", {"data": {"title": "b"}}),
        ("post", "", {"name": "t2", "fields": []}),
    ]:
        response = tenant_key.call(method, path, body)
        assert response.status_code in (401, 404), (method, path, response.status_code)


def test_a_suspended_tenants_signed_in_users_are_signed_out(api, project):
    viewer = session_api(project, *default_role_permissions("viewer"))
    assert viewer.call("get", "products/rows/").status_code == 200
    Tenant.objects.filter(pk=project.tenant_id).update(is_active=False)
    assert viewer.call("get", "products/rows/").status_code == 401
    assert viewer.client.get("/api/v1/auth/session").status_code == 401


# --- Bad input, class by class ---------------------------------------------------------------

BIG = 2**63


def test_every_class_of_bad_input_is_a_4xx_naming_the_field(api):
    api.call("post", body={"name": "things", "fields": [
        {"name": "n", "type": "integer"}, {"name": "d", "type": "decimal"},
        {"name": "at", "type": "datetime"}, {"name": "doc", "type": "json"},
        {"name": "ref", "type": "reference", "to": "products"},
        {"name": "text", "type": "text"},
    ]})  # fmt: skip
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    deep_filter: Any = {"field": "n", "op": "eq", "value": 1}
    for _ in range(300):
        deep_filter = {"and": [deep_filter]}
    cases = [
        # (method, path, body or query, field named)
        ("get", "things/rows/", {"id__gt": str(BIG)}, "id"),
        ("post", "things/rows/query/", {"filter": {"field": "id", "op": "in", "value": [BIG]}},
         "id"),
        ("post", "things/rows/query/", {"after": 12}, "after"),
        ("post", "things/rows/query/", {"filter": {"field": "ref", "value": BIG}}, "ref"),
        ("post", "things/rows/", {"data": {"ref": BIG}}, "ref"),
        ("post", "things/rows/", {"data": {"at": "9999-12-31T23:00:00-05:00"}}, "at"),
        ("post", "things/rows/", {"data": {"at": "0001-01-01T00:00:00+05:00"}}, "at"),
        ("post", "things/rows/", {"data": {"text": "a\x00b"}}, "data.text"),
        ("post", "things/rows/", {"data": {"te\x00xt": "a"}}, "data"),
        ("post", "things/rows/", {"data": {"text": "\ud800"}}, "data.text"),
        ("post", "things/rows/", {"data": {"doc": deep}}, "data.doc"),
        ("post", "things/rows/query/", {"filter": deep_filter}, "filter"),
        ("post", "things/rows/", {"data": {"n": int("9" * 4000)}}, "data.n"),
        ("post", "things/rows/", {"data": {"d": Decimal("1." + "1" * 3000)}}, "data.d"),
        ("post", "things/rows/", {"data": {"d": Decimal("1e999999999")}}, "data.d"),
        ("post", "things/rows/", {"data": {"text": "word " * 300_000}}, "text"),
        ("patch", "things/", {"remove": [1, {"a": 1}]}, "remove[0]"),
        ("patch", "things/", {"rename": {"n": 5}}, "rename.n"),
        ("patch", "things/", {"add": [5]}, None),
        ("post", "things/rows/query/", {"filter": {"field": "n", "op": "in",
                                                    "value": list(range(5000))}}, "n"),
        ("post", "things/rows/query/", {"search": "x" * 5000}, "search"),
        ("post", "things/rows/query/", {"search": "a\x00"}, "search"),
        ("get", "things/rows/", {"sort": "\x00"}, None),
        ("get", "things/search/", {"q": "a\x00"}, "q"),
        ("get", "things/rows/", {"text__contains": "x" * 5000}, "text"),
    ]
    for method, path, payload, field in cases:
        if method == "get":
            response = api.call("get", path, **payload)
        else:
            response = api.client.generic(
                method.upper(), api.base + path, _dumps(payload),
                content_type="application/json", headers=api.headers,
            )  # fmt: skip
        label = f"{method} {path} {str(payload)[:80]}"
        assert 400 <= response.status_code < 500, (label, response.status_code, response.content)
        found = error(response)
        assert found["message"], label
        if field is not None:
            named = [e.get("field") for e in found.get("errors", [])] + [found["message"]]
            assert any(field in (n or "") for n in named), (label, found)
    response = api.call("get", "things/rows/", **{"text\x00": "a"})
    assert response.status_code == 400
    assert api.client.get(api.base + "th%00ings/rows/", headers=api.headers).status_code == 400
    nested = "[" * (MAX_BODY_DEPTH + 1) + "]" * (MAX_BODY_DEPTH + 1)
    deep_body = api.client.post(
        api.base + "things/rows/",
        data='{"data": {"doc": ' + nested + "}}",
        content_type="application/json",
        headers=api.headers,
    )
    assert deep_body.status_code == 400


def _dumps(payload: Any) -> str:
    """JSON of test input, decimals as numbers (as a client would send them), lone
    surrogates escaped."""
    text = json.dumps(payload, default=lambda d: f"@@{d}@@")
    return re.sub(r'"@@([^@]+)@@"', r"\1", text)
