"""hzm.db.snapshot: a pg_dump script into a snapshot template and back, and its header."""

import pytest

from hzm.db import snapshot

ROLE = "hzm_snapshot_1a2b3c4d_app"
MIGRATIONS_SQL = [
    (
        "hzm.0002_runtime_role",
        [
            "--",
            "-- Ensure the runtime role exists (settings.HZM_APP_ROLE)",
            "--",
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{ROLE}')"
            f' THEN CREATE ROLE "{ROLE}" NOLOGIN; END IF; END $$;',
            f'GRANT USAGE ON SCHEMA "app" TO "{ROLE}";',
            f'GRANT USAGE ON SCHEMA "app" TO "{ROLE}_comms";',
        ],
    ),
    (
        "core.0007_index",
        [
            'CREATE INDEX CONCURRENTLY "idx_a" ON "core"."users" ("a");',
            'CREATE UNIQUE INDEX CONCURRENTLY "idx_b" ON "core"."users" ("b");',
            'ALTER POLICY "rls_owner_read" ON "ops"."audit_logs" TO CURRENT_USER;',
            f"SELECT '{ROLE}x', 'x{ROLE}';",
        ],
    ),
]

TEMPLATE = """-- migration hzm.0002_runtime_role
--
-- Ensure the runtime role exists (settings.HZM_APP_ROLE)
--
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role}}') \
THEN CREATE ROLE "{{runtime_role}}" NOLOGIN; END IF; END $$;
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role}}";
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role_comms}}";

-- migration core.0007_index
CREATE INDEX "idx_a" ON "core"."users" ("a");
CREATE UNIQUE INDEX "idx_b" ON "core"."users" ("b");
ALTER POLICY "rls_owner_read" ON "ops"."audit_logs" TO CURRENT_USER;
SELECT 'hzm_snapshot_1a2b3c4d_appx', 'xhzm_snapshot_1a2b3c4d_app';
"""


def test_the_migrations_sql_becomes_a_template():
    # Only the whole name is replaced, in quotes or not; what cannot run in a transaction
    # runs plain (on an empty table the same index).
    assert snapshot.template_from_sql(MIGRATIONS_SQL, ROLE, "owner_x") == TEMPLATE


def test_a_template_is_rendered_for_a_runtime_role():
    rendered = snapshot.render(TEMPLATE, "hzm_app")
    assert "rolname = 'hzm_app') THEN CREATE ROLE \"hzm_app\" NOLOGIN" in rendered
    assert 'GRANT USAGE ON SCHEMA "app" TO "hzm_app_comms";' in rendered
    assert "{{" not in rendered
    with pytest.raises(ValueError, match="HZM_APP_ROLE 'Bad' is not a valid name"):
        snapshot.render(TEMPLATE, "Bad")


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (f"{snapshot.NOT_SQL}:\n-- Raw Python operation", "not SQL \\(RunPython\\)"),
        ('GRANT "hzm_app" TO "owner_x";', "names the role it runs as \\('owner_x'\\)"),
        ("SELECT '{{x}}';", "contains '{{'"),
    ],
)
def test_sql_it_cannot_follow_is_refused(statement, message):
    with pytest.raises(ValueError, match=message):
        snapshot.template_from_sql([("app.0001_x", [statement])], ROLE, "owner_x")


FACTS = {"postgresql": "15", "django": "5.2.19", "source hzm/db/sql.py": "0123abcd"}
MIGRATIONS = {"hzm.0001_foundation": "aaaa", "core.0001_initial_schema": "bbbb"}


def test_the_header_round_trips():
    text = snapshot.format_header(FACTS, MIGRATIONS) + TEMPLATE
    assert text.startswith("-- hzm schema snapshot 1\n")
    assert "-- migration core.0001_initial_schema bbbb\n-- end of header\n-- migration" in text
    assert snapshot.parse(text) == (FACTS, MIGRATIONS, TEMPLATE)
    with pytest.raises(ValueError, match="not a schema snapshot of format 1"):
        snapshot.parse(TEMPLATE)


def test_stale_reasons_name_what_changed():
    same = (FACTS, MIGRATIONS)
    assert snapshot.stale_reasons(same, same) == []
    later = {**MIGRATIONS, "core.0002_more": "cccc"}
    assert snapshot.stale_reasons(same, (FACTS, later)) == ["not in the snapshot: core.0002_more"]
    assert snapshot.stale_reasons((FACTS, later), same) == [
        "in the snapshot but no longer in the history: core.0002_more"
    ]
    edited = {**MIGRATIONS, "hzm.0001_foundation": "ffff"}
    assert snapshot.stale_reasons(same, (FACTS, edited)) == [
        "changed since the snapshot: hzm.0001_foundation"
    ]
    newer = {**FACTS, "postgresql": "16", "source hzm/db/sql.py": "9999"}
    assert snapshot.stale_reasons(same, (newer, MIGRATIONS)) == [
        "postgresql: 15 in the snapshot, 16 now",
        "source hzm/db/sql.py: 0123abcd in the snapshot, 9999 now",
    ]
    reordered = dict(reversed(MIGRATIONS.items()))
    assert snapshot.stale_reasons(same, (FACTS, reordered)) == [
        "the migrations are applied in another order now"
    ]
