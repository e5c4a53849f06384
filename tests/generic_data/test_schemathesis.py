"""Contract fuzzing by a tool we did not write: Schemathesis generates requests from
/api/v1/openapi.json and sends them to the WSGI application in-process, as an API-key
client of one tenant while a second tenant's rows are present. No answer is a 5xx, each
conforms to the document (status code, content type, body schema), and nothing of the
other tenant ever appears in one. Bounded (MAX_EXAMPLES per operation, no deadline)."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hzm.urls import api as ninja_api
from tests.generic_data.conftest import make_project
from tests.generic_data.test_api import PRODUCTS, Api, issue_key

MAX_EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(ninja_api.get_openapi_schema(path_prefix="/api/v1/"))
application = get_wsgi_application()


@pytest.fixture
def tenants(db: None) -> dict[str, Any]:
    """Ours (a key, a table with rows) and another tenant's, whose rows carry markers."""
    mine, theirs = make_project(), make_project()
    key = issue_key(mine, rate_limit_per_minute=1_000_000, rate_limit_per_day=1_000_000)
    ours = Api(mine.pk, key)
    assert ours.call("post", body={"name": "products", "fields": PRODUCTS}).status_code == 201
    created = ours.call("post", "products/rows/", {"rows": [{"title": "ours", "sku": "M-1"},
                                                            {"title": "ours too"}]})  # fmt: skip
    other = Api(theirs.pk, issue_key(theirs))
    assert other.call("post", body={"name": "products", "fields": PRODUCTS}).status_code == 201
    secret = f"secret-{uuid.uuid4().hex}"
    foreign = other.call("post", "products/rows/", {"rows": [{"title": secret, "sku": secret}]})
    return {
        "key": key,
        "project": mine.pk,
        "rows": created.json_body["ids"],
        "other_project": theirs.pk,
        "secret": secret,
        "other_rows": foreign.json_body["ids"],
    }


@pytest.fixture
def in_process(tenants: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The WSGI app keeps the test's connection (and transaction) open, as Django's test
    client does: each request's start and end would otherwise close it. (After the
    tenants are made: the test client connects these receivers again after each request.)"""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield tenants
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def steer(case: Any, tenants: dict[str, Any]) -> None:
    """Most generated ids point at our project, table and rows (else nearly every case
    would stop at 403 or 404); some at the other tenant's project."""
    params = case.path_parameters or {}
    project = params.get("project_id")
    if isinstance(project, int) and not isinstance(project, bool):
        choice = project % 5
        if choice in (1, 2, 3):
            params["project_id"] = tenants["project"]
        elif choice == 4:
            params["project_id"] = tenants["other_project"]
    table = params.get("table")
    if isinstance(table, str) and len(table) % 3 != 0:
        params["table"] = "products"
    row = params.get("row_id")
    if isinstance(row, int) and not isinstance(row, bool) and row % 3 != 0:
        params["row_id"] = tenants["rows"][row % 2]
        if row % 7 == 0:
            params["row_id"] = tenants["other_rows"][0]


@schema.include(path_regex="^/api/v1/projects/").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_api_keeps_its_contract_and_never_shows_another_tenant(case, in_process):
    tenants = in_process
    steer(case, tenants)
    response = case.call_and_validate(
        app=application, headers={"Authorization": f"Bearer {tenants['key']}"}, checks=CHECKS
    )
    body = response.text
    assert tenants["secret"] not in body
    if body:  # every answer is JSON (content_type_conformance checked it); HEAD has none
        assert case.method != "HEAD" or not body.strip(), body[:200]
        for found in objects(json.loads(body)) if case.method != "HEAD" else ():
            if "data" in found and "version" in found:  # a row
                assert found.get("id") not in tenants["other_rows"], found
            if "physical_table_name" in found:  # a table
                assert found.get("project_id") != tenants["other_project"], found


def objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `value`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
