"""The whole story through the HTTP API: a tenant defines a table, loads 100,000 rows,
filters, sorts, pages and searches them; another tenant never sees any of it."""

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from core.models import ApiKey
from tests.generic_data.conftest import make_project

pytestmark = pytest.mark.django_db

ROWS = 100_000
PER_REQUEST = 10_000
COLOURS = ["red", "green", "blue", "black", "white"]


class Api:
    def __init__(self, project: Any) -> None:
        _key, plaintext = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, project=project, name="load"
        )
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {plaintext}"}
        self.base = f"/api/v1/projects/{project.pk}/tables/"

    def get(self, path: str, **query: Any) -> Any:
        response = self.client.get(self.base + path, data=query, headers=self.headers)
        assert response.status_code == 200, response.content
        return json.loads(response.content, parse_float=Decimal)

    def post(self, path: str, body: Any, status: int = 201) -> Any:
        response = self.client.post(
            self.base + path, data=json.dumps(body), content_type="application/json",
            headers=self.headers,
        )  # fmt: skip
        assert response.status_code == status, response.content
        return json.loads(response.content, parse_float=Decimal)


def row(n: int) -> dict[str, Any]:
    return {
        "name": f"{COLOURS[n % 5]} shirt number {n}" + (" limited" if n % 1000 == 0 else ""),
        "sku": f"SKU-{n:06d}",
        "price": f"{n % 500}.{n % 100:02d}",
        "colour": COLOURS[n % 5],
        "stock": n % 50,
    }


def test_a_tenant_loads_100k_rows_through_the_api_and_queries_them():
    project = make_project(max_records=ROWS)
    api = Api(project)
    api.post("", {"name": "shirts", "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "sku", "type": "text", "unique": True},
        {"name": "price", "type": "decimal", "min": 0},
        {"name": "colour", "type": "choice", "options": COLOURS},
        {"name": "stock", "type": "integer"},
    ]})  # fmt: skip
    for start in range(0, ROWS, PER_REQUEST):
        created = api.post(
            "shirts/rows/", {"rows": [row(n) for n in range(start, start + PER_REQUEST)]}
        )
        assert created["created"] == PER_REQUEST
    # The limit is reached: one more row is refused, clearly.
    refused = api.post("shirts/rows/", {"data": row(ROWS)}, status=403)
    assert "max_records (100000)" in refused["error"]["message"]

    # Filter and count: numbers compare as numbers.
    page = api.get("shirts/rows/", colour="blue", price__gte="499", count="true", limit="1000")
    assert page["count"] == sum(
        1 for n in range(ROWS) if n % 5 == 2 and Decimal(row(n)["price"]) >= 499
    )
    assert all(r["data"]["colour"] == "blue" for r in page["rows"])

    # Sort and page through every blue shirt with less than 2 in stock, by price.
    expected = sorted(
        (Decimal(row(n)["price"]), n) for n in range(ROWS) if n % 5 == 2 and n % 50 < 2
    )
    seen, after = [], None
    while True:
        query = {"colour": "blue", "stock__lt": "2", "sort": "price", "limit": "500"}
        page = api.get("shirts/rows/", **query, **({"after": after} if after else {}))
        seen += [r["data"]["price"] for r in page["rows"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == [price for price, _ in expected]

    # Search: the limited editions, best match first.
    hits = api.get("shirts/search/", q="limited", count="true", limit="200")
    assert hits["count"] == ROWS // 1000
    assert all("limited" in r["data"]["name"] for r in hits["rows"])
    assert api.get("shirts/rows/", sku="SKU-054321")["rows"][0]["data"]["stock"] == 54321 % 50

    # Another tenant, with a table of the same name, sees none of it.
    other = Api(make_project())
    other.post("", {"name": "shirts", "fields": [{"name": "name", "type": "text"}]})
    assert other.get("shirts/rows/", count="true") == {"rows": [], "next_cursor": None, "count": 0}
    assert other.get("shirts/search/", q="limited")["rows"] == []
    response = other.client.get(api.base + "shirts/rows/", headers=other.headers)
    assert response.status_code == 403  # its key is for its own project only
