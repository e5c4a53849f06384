"""The lock table: what each statement locks, checked on paper and against pg_locks."""

import pytest

from hzm.deploy import locks
from hzm.deploy.locks import StatementLock, classify
from tests.deploy.conftest import connect

USERS = '"core"."users"'


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            'CREATE INDEX "idx_users_tenant" ON "core"."users" ("tenant_id");',
            StatementLock("CREATE INDEX", "SHARE", (USERS,), scans=True),
        ),
        (
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "x" ON "core"."users" ("email");',
            StatementLock(
                "CREATE INDEX CONCURRENTLY",
                "SHARE UPDATE EXCLUSIVE",
                (USERS,),
                scans=True,
                transactional=False,
            ),
        ),
        (
            'ALTER TABLE "core"."users" ADD COLUMN "x" uuid DEFAULT gen_random_uuid() NOT NULL;',
            StatementLock("ALTER TABLE ADD COLUMN", "ACCESS EXCLUSIVE", (USERS,), rewrites=True),
        ),
        (
            'ALTER TABLE "core"."users" ADD COLUMN "x" integer DEFAULT 0 NOT NULL;',
            StatementLock("ALTER TABLE ADD COLUMN", "ACCESS EXCLUSIVE", (USERS,)),
        ),
        (
            'ALTER TABLE "core"."users" ADD COLUMN "x" integer NOT NULL;',
            StatementLock(
                "ALTER TABLE ADD COLUMN",
                "ACCESS EXCLUSIVE",
                (USERS,),
                note="NOT NULL without a default fails on a table with rows",
            ),
        ),
        (
            'ALTER TABLE "core"."users" ADD CONSTRAINT "fk" FOREIGN KEY ("tenant_id") '
            'REFERENCES "core"."tenants" ("id") NOT VALID',
            StatementLock(
                "ALTER TABLE ADD FOREIGN KEY",
                "SHARE ROW EXCLUSIVE",
                (USERS, '"core"."tenants"'),
            ),
        ),
        (
            'ALTER TABLE "core"."users" VALIDATE CONSTRAINT "fk"',
            StatementLock(
                "ALTER TABLE VALIDATE CONSTRAINT", "SHARE UPDATE EXCLUSIVE", (USERS,), scans=True
            ),
        ),
        (
            'ALTER TABLE "core"."users" ALTER COLUMN "name" TYPE varchar(200)',
            StatementLock(
                "ALTER TABLE ALTER COLUMN TYPE",
                "ACCESS EXCLUSIVE",
                (USERS,),
                rewrites=True,
                note="no rewrite only when the types are binary-compatible (e.g. to a longer "
                "varchar or to text); indexes on the column are rebuilt",
            ),
        ),
        (
            'CREATE TRIGGER "trg_users_touch" BEFORE UPDATE ON "core"."users" FOR EACH ROW '
            'EXECUTE FUNCTION "app"."touch_row"();',
            StatementLock("CREATE TRIGGER", "SHARE ROW EXCLUSIVE", (USERS,)),
        ),
        (
            'CREATE POLICY "rls_users_tenant" ON "core"."users" USING (true)',
            StatementLock("CREATE POLICY", "ACCESS EXCLUSIVE", (USERS,)),
        ),
        (
            'GRANT SELECT ON "core"."users" TO "hzm_app"',
            StatementLock("GRANT", None, (), note="catalog only"),
        ),
        (
            'CREATE TABLE "core"."x" ("id" integer NOT NULL PRIMARY KEY, '
            '"user_id" integer REFERENCES "core"."users" ("id"))',
            StatementLock(
                "CREATE TABLE",
                "SHARE ROW EXCLUSIVE",
                (USERS,),
                note="a new table; the lock is on the tables its foreign keys reference",
                created='"core"."x"',
            ),
        ),
        (
            'DROP INDEX CONCURRENTLY IF EXISTS "core"."idx_x"',
            StatementLock(
                "DROP INDEX CONCURRENTLY",
                "SHARE UPDATE EXCLUSIVE",
                ('"core"."idx_x"',),
                transactional=False,
                note="lock on the index's table",
            ),
        ),
        ("SELECT 1", None),
        ("-- a comment\nSET lock_timeout = '1s';", None),
    ],
)
def test_classify(statement, expected):
    assert classify(statement) == expected


def test_describe_says_what_the_application_feels():
    lock = classify('ALTER TABLE "t" ALTER COLUMN "c" SET NOT NULL')
    assert lock.describe() == (
        "ACCESS EXCLUSIVE: blocks reads and writes; no rewrite; scans the table while locked "
        "(no scan when a valid CHECK (column IS NOT NULL) exists)"
    )
    assert classify('CREATE INDEX CONCURRENTLY "i" ON "t" ("c")').describe() == (
        "SHARE UPDATE EXCLUSIVE: blocks other schema changes and VACUUM, not reads or writes; "
        "no rewrite; scans the table while locked; cannot run inside a transaction"
    )


def test_several_subcommands_take_the_strongest_lock():
    lock = classify('ALTER TABLE "t" VALIDATE CONSTRAINT "c", ADD COLUMN "x" integer')
    assert lock.lock == "ACCESS EXCLUSIVE"
    assert locks.strongest(["SHARE", None, "ROW EXCLUSIVE"]) == "SHARE"
    assert locks.strongest([None]) is None


# Checked on a live server: the strongest lock a statement holds on its table, inside a
# transaction, is the one the table says.
LIVE = [
    'CREATE INDEX "i" ON "lt_a" ("x")',
    'ALTER TABLE "lt_a" ADD COLUMN "y" integer',
    'ALTER TABLE "lt_a" ALTER COLUMN "x" SET DEFAULT 1',
    'ALTER TABLE "lt_a" ADD CONSTRAINT "c" CHECK ("x" IS NOT NULL) NOT VALID',
    'ALTER TABLE "lt_b" ADD CONSTRAINT "f" FOREIGN KEY ("a_id") REFERENCES "lt_a" ("id")',
    'ALTER TABLE "lt_a" VALIDATE CONSTRAINT "lt_a_x_check"',
    'ALTER TABLE "lt_a" ENABLE ROW LEVEL SECURITY',
    'CREATE POLICY "p" ON "lt_a" USING (true)',
    'CREATE TRIGGER "tr" BEFORE UPDATE ON "lt_a" FOR EACH ROW '
    "EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    'ALTER TABLE "lt_a" DISABLE TRIGGER ALL',
    "COMMENT ON TABLE \"lt_a\" IS 'x'",
    'UPDATE "lt_a" SET "x" = 1',
    'ALTER TABLE "lt_a" ALTER COLUMN "t" TYPE varchar(10)',
    'ALTER TABLE "lt_a" DROP COLUMN "t"',
]
PG_LOCK_MODES = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}


def test_the_table_matches_pg_locks(databases):
    database = databases.empty()
    with connect(database) as conn:
        conn.execute(
            "CREATE TABLE lt_a (id int PRIMARY KEY, x int CHECK (x > 0), t text);"
            "CREATE TABLE lt_b (id int PRIMARY KEY, a_id int)"
        )
        mismatches = []
        for statement in LIVE:
            expected = classify(statement)
            with conn.transaction(force_rollback=True):
                conn.execute(statement)
                held = conn.execute(
                    "SELECT relation::regclass::text, mode FROM pg_locks "
                    "WHERE pid = pg_backend_pid() AND locktype = 'relation' "
                    "AND relation::regclass::text = ANY(%s)",
                    [[table.strip('"') for table in expected.tables]],
                ).fetchall()
            for table in expected.tables:
                modes = [PG_LOCK_MODES[m] for t, m in held if t == table.strip('"')]
                if locks.strongest(modes) != expected.lock:
                    mismatches.append(f"{statement}: {table} {modes} vs {expected.lock}")
    assert mismatches == []
