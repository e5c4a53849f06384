"""The generic-data tenants and rows the benchmarks measure on (bench/search.py's kind of
data, for bench/context.py): tenants with a user, a project and a table `items` defined
through the service, and rows generated in the database.

The rows are bulk setup only, never the path being measured: generated with INSERT ...
SELECT generate_series as the owner with triggers off and the GIN indexes rebuilt
afterwards, then VACUUM ANALYZE. Once part of bench/generic_data.py, which bench/search.py,
bench/writes.py and bench/context.py replaced.
"""

import time
from typing import Any

import psycopg
from django.db import connection, transaction

from bench.scratch import say
from tests.support import server_params

VOCABULARY = 2000  # words word0..word1999, six per title
FIELDS = [
    {"name": "title", "type": "text"},
    {"name": "sku", "type": "text", "unique": True},
    {"name": "price", "type": "decimal", "min": 0},
    {"name": "status", "type": "choice", "options": ["new", "active", "sold", "archived", "draft"]},
    {"name": "qty", "type": "integer"},
    {"name": "day", "type": "date"},
]
STATUSES = ["new", "active", "sold", "archived", "draft"]
G = "app.generic_data"

# The rows of the query benchmarks, generated in the database (bulk setup only).
LOAD_SQL = """
INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
SELECT s.tenant_id, s.project_id, s.table_id, jsonb_build_object(
  'title', (SELECT string_agg('word' || (abs(hashtext(n || '-' || k)) %% {vocabulary}), ' ')
            FROM generate_series(1, 6) AS k)
           || CASE WHEN n %% 10 = 0 THEN ' cotton' ELSE '' END,
  'sku', 'SKU-' || s.tenant_id || '-' || n,
  'price', (abs(hashtext(n::text)) %% 100000) / 100.0,
  'status', (ARRAY['new', 'active', 'sold', 'archived', 'draft'])[1 + n %% 5],
  'qty', n %% 97,
  'day', (date '2020-01-01' + n %% 1500)::text)
FROM unnest(%s::int[], %s::int[], %s::int[]) AS s(tenant_id, project_id, table_id),
     generate_series(%s::int, %s::int) AS n
"""
GIN_INDEXES = {
    "idx_generic_data_search": "CREATE INDEX idx_generic_data_search ON app.generic_data "
    "USING gin (to_tsvector('english'::regconfig, search_text))",
    "idx_generic_data_jsonb": "CREATE INDEX idx_generic_data_jsonb ON app.generic_data "
    "USING gin (data)",
}


def sql(statement: str, params: list[Any] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def make_tenants(
    count: int, first: int = 1, fields: list[dict[str, Any]] = FIELDS
) -> list[dict[str, int]]:
    """Tenants with a user, a project and a table 'items' (`fields`) defined through the
    service."""
    from core.models import Project, Tenant, User
    from generic_data import services
    from hzm.db.context import tenant_context
    from tests.factories import ensure_tenant_defaults

    ensure_tenant_defaults()
    made = []
    for n in range(first, first + count):
        tenant = Tenant.objects.create(
            name=f"Bench {n}", slug=f"bench-{n}", max_records=None, max_tables_per_project=None
        )
        user = User.objects.create(tenant=tenant, email=f"bench{n}@example.com", password="!")
        project = Project.objects.create(
            tenant=tenant, user=user, name=f"Bench {n}", api_key=f"bench-{n}"
        )
        with tenant_context(tenant.pk, user.pk):
            table = services.define_table(project.pk, "items", fields)
        made.append(
            {"tenant": tenant.pk, "user": user.pk, "project": project.pk, "table": table.id}
        )
    return made


def rows_for(tag: str, count: int) -> list[dict[str, Any]]:
    """Rows as a client sends them (strings for decimals and dates)."""
    return [
        {
            "title": f"word{n % VOCABULARY} word{(n * 7) % VOCABULARY} cotton shirt {tag}",
            "sku": f"{tag}-{n}",
            "price": f"{n % 1000}.99",
            "status": STATUSES[n % 5],
            "qty": n % 97,
            "day": f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
        }
        for n in range(count)
    ]


def load_rows(tenants: list[dict[str, int]], first: int, last: int) -> None:
    """Rows first..last of every tenant's table, as the owner with triggers off and the GIN
    indexes rebuilt afterwards (bulk setup only), then VACUUM ANALYZE."""
    say(f"loading rows {first:,}..{last:,} for {len(tenants)} tenants")
    started = time.perf_counter()
    with transaction.atomic():
        sql("SET LOCAL session_replication_role = replica")
        for name in GIN_INDEXES:
            sql(f"DROP INDEX app.{name}")
        per_statement = max(1, 200_000 // max(1, last - first + 1))
        for start in range(0, len(tenants), per_statement):
            group = tenants[start : start + per_statement]
            sql(
                LOAD_SQL.format(vocabulary=VOCABULARY),
                [
                    [t["tenant"] for t in group],
                    [t["project"] for t in group],
                    [t["table"] for t in group],
                    first,
                    last,
                ],
            )
        sql("SET LOCAL maintenance_work_mem = '256MB'")
        for statement in GIN_INDEXES.values():
            sql(statement)
    connection.close()
    with psycopg.connect(**server_params(connection.settings_dict["NAME"]), autocommit=True) as c:
        c.execute(f"VACUUM ANALYZE {G}")
    say(f"loaded in {time.perf_counter() - started:.0f} s")
