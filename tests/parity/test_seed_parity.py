"""`migrate` builds the catalog the seed SQL builds, apart from deliberate, listed differences.

The seed (001 + 004 with the fixes of `seed_sql.FIXES`) is loaded into a scratch
database on the test database's server; both catalogs are snapshotted with
`catalog.snapshot()` and compared section by section. A failure lists every
difference as "<section> <object>: <field> <seed> vs <project>".
"""

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.parity.catalog import diff, snapshot
from tests.parity.seed_sql import (
    FIXES,
    JSONB_TO_TEXT_SQL,
    Fix,
    SeedFixError,
    apply_fixes,
    fixed_seed_sql,
    seed_sql,
)
from tests.support import manage, server_params

SEED_DATABASE = "hzm_seed_parity"
MUTANT_DATABASE = "hzm_seed_parity_mutant"
MIGRATED_DATABASE = "hzm_seed_parity_migrated"

# The migrations that build the seed's 001 and 004 (and, through their dependencies,
# the foundation). Later migrations harden the schema on purpose (tenant isolation,
# issue 3) and are tested on their own; the parity is with this state.
SEED_LEVEL_MIGRATION = ("generic_data", "0001_add_generic_data")

# The constraints the seed names itself: the project must keep these names, whereas
# names PostgreSQL invents (users_pkey, users_email_key) are compared by columns only.
SEED_NAMED_CONSTRAINTS = (
    "core.projects.unique_project_name_per_tenant",
    "core.table_metadata.unique_table_per_project",
    "app.generic_data.unique_generic_data_per_table",
)


@dataclass(frozen=True)
class DeliberateDifference:
    """A way the project differs from the seed on purpose, applied to the seed snapshot."""

    why: str
    apply: Callable[[dict[str, Any]], int]  # returns how many objects it changed


def _force_rls_where_policies(seed: dict[str, Any]) -> int:
    tables = {policy["table"] for policy in seed["policies"].values()}
    for table in tables:
        seed["tables"][table]["force row security"] = True
    return len(tables)


DELIBERATE_DIFFERENCES: tuple[DeliberateDifference, ...] = (
    DeliberateDifference(
        "every table with a tenant policy also has FORCE ROW LEVEL SECURITY: the table "
        "owner (the role migrate and the seed run as) otherwise bypasses the policies",
        _force_rls_where_policies,
    ),
    # Not differences, so deliberately absent here:
    # - extensions: the project installs the seed's uuid-ossp, pgcrypto, citext and
    #   pg_trgm (plpgsql comes with every database), so the lists compare equal;
    # - functions: the project may add functions beyond the seed's; that is a rule of
    #   the comparison (see compare), not a change to the seed's functions,
    #   which must exist in the project with the same signature, attributes and body.
)


def expected_catalog(seed: dict[str, Any]) -> dict[str, Any]:
    """The seed snapshot with the deliberate differences applied and named constraints kept."""
    expected = copy.deepcopy(seed)
    for difference in DELIBERATE_DIFFERENCES:
        # A difference that changes nothing no longer describes the seed: fail, not skip.
        if not difference.apply(expected):
            raise AssertionError(f"deliberate difference {difference.why!r} changed nothing")
    missing = [name for name in SEED_NAMED_CONSTRAINTS if name not in seed["named constraints"]]
    if missing:
        raise AssertionError(f"the seed has no constraint named {', '.join(missing)}")
    expected["named constraints"] = _named_constraints(seed)
    return expected


def compare(seed: dict[str, Any], project: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The differences of the project from the seed, and the functions it adds (allowed)."""
    expected = expected_catalog(seed)
    actual = copy.deepcopy(project)
    actual["named constraints"] = _named_constraints(project)
    extra_functions = sorted(actual["functions"].keys() - expected["functions"].keys())
    for name in extra_functions:
        del actual["functions"][name]
    return diff(expected, actual), extra_functions


def _named_constraints(snap: dict[str, Any]) -> dict[str, Any]:
    return {
        name: definition
        for name, definition in snap["named constraints"].items()
        if name in SEED_NAMED_CONSTRAINTS
    }


@contextmanager
def scratch_database(name: str, script: str) -> Iterator[psycopg.Connection]:
    """A fresh database `name` with `script` run in it, dropped on exit."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    with psycopg.connect(**server_params("postgres"), autocommit=True) as admin:
        # A database left behind by an interrupted run would make CREATE fail.
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(**server_params(name), autocommit=True) as conn:
                conn.execute(script)  # no parameters: sent as one multi-statement script
                yield conn
        finally:
            admin.execute(drop)


@pytest.fixture(scope="module")
def seed_catalog(django_db_setup: None) -> dict[str, Any]:
    """The snapshot of a scratch database built by the fixed seed SQL."""
    # django_db_setup first: the server (possibly the embedded one) is up and reachable.
    with scratch_database(SEED_DATABASE, fixed_seed_sql()) as conn:
        return snapshot(conn.cursor())


@pytest.fixture(scope="module")
def migrated_catalog(django_db_setup: None) -> dict[str, Any]:
    """The snapshot of a scratch database that `manage.py migrate` brought to the seed's level."""
    with scratch_database(MIGRATED_DATABASE, "SELECT 1") as conn:
        manage("migrate", *SEED_LEVEL_MIGRATION, dbname=MIGRATED_DATABASE)
        return snapshot(conn.cursor())


def test_migrations_build_the_seed_catalog(
    seed_catalog: dict[str, Any], migrated_catalog: dict[str, Any]
) -> None:
    project = migrated_catalog
    differences, extra_functions = compare(seed_catalog, project)
    if extra_functions:
        print("functions the project adds beyond the seed (allowed):", *extra_functions, sep="\n  ")
    if differences:
        pytest.fail(
            f"{len(differences)} differences between the seed (first) and the migrated "
            "database (second):\n" + "\n".join(differences),
            pytrace=False,
        )


# --- The comparison itself: it must be able to fail -----------------------------------

# Each change below touches one section of the snapshot; the expected line is how
# compare() must name it. The extra function is allowed, and the last change only
# reflows a function body, which must not count.
MUTATIONS = """
ALTER TABLE core.users ALTER COLUMN email TYPE varchar(255);
ALTER TABLE core.files ALTER COLUMN id SET DEFAULT uuid_generate_v4();
ALTER TABLE core.user_2fa DROP CONSTRAINT user_2fa_user_id_key;
ALTER TABLE core.projects RENAME CONSTRAINT unique_project_name_per_tenant TO projects_tenant_name;
ALTER TABLE core.projects DROP CONSTRAINT projects_user_id_fkey,
  ADD FOREIGN KEY (user_id) REFERENCES core.users(id) ON DELETE RESTRICT DEFERRABLE;
ALTER TABLE cfg.currencies ADD CHECK (decimal_digits >= 0);
DROP INDEX core.idx_users_active;
CREATE INDEX idx_users_name ON core.users (name);
DROP TRIGGER trg_users_audit ON core.users;
ALTER POLICY rls_files_tenant ON core.files USING (true);
ALTER TABLE core.files NO FORCE ROW LEVEL SECURITY;
ALTER TABLE cfg.languages ENABLE ROW LEVEL SECURITY;
CREATE OR REPLACE FUNCTION app.current_tenant()
RETURNS int LANGUAGE sql STABLE AS $$ SELECT 0 $$;
ALTER FUNCTION app.set_context(int, int) SECURITY DEFINER;
CREATE FUNCTION app.extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
DROP EXTENSION pg_trgm;
CREATE OR REPLACE FUNCTION app.current_user_id()
RETURNS int LANGUAGE sql STABLE AS $$
    SELECT   nullif(current_setting('app.user_id', true), '')::int   $$;
"""

EXPECTED_MUTATION_DIFF = [
    "checks cfg.currencies: unexpected ['CHECK ((decimal_digits >= 0))']",
    "columns core.files.id: default gen_random_uuid() vs uuid_generate_v4()",
    "columns core.users.email: type citext vs character varying(255)",
    "extensions: missing pg_trgm",
    "foreign keys core.projects (user_id) -> core.users (id): deferrable False vs True",
    "foreign keys core.projects (user_id) -> core.users (id): on delete CASCADE vs RESTRICT",
    "functions app.current_tenant(): body "
    "SELECT nullif(current_setting('app.tenant_id', true), '')::int vs SELECT 0",
    "functions app.set_context(integer, integer): security definer False vs True",
    "indexes core.idx_users_active: missing (expected {'table': 'core.users', 'definition': "
    "'CREATE INDEX idx_users_active ON core.users USING btree (tenant_id) WHERE "
    "((is_active = true) AND (is_deleted = false))', 'unique': False, 'primary': False})",
    "indexes core.idx_users_name: unexpected {'table': 'core.users', 'definition': "
    "'CREATE INDEX idx_users_name ON core.users USING btree (name)', 'unique': False, "
    "'primary': False}",
    "keys core.user_2fa unique (user_id): missing (expected UNIQUE (user_id))",
    "named constraints core.projects.unique_project_name_per_tenant: "
    "missing (expected UNIQUE (tenant_id, name))",
    "policies core.files.rls_files_tenant: using (tenant_id = app.current_tenant()) vs true",
    "tables cfg.languages: row security False vs True",
    "tables core.files: force row security True vs False",
    "triggers core.users.trg_users_audit: missing (expected {'table': 'core.users', "
    "'definition': 'CREATE TRIGGER trg_users_audit AFTER INSERT OR DELETE OR UPDATE ON "
    "core.users FOR EACH ROW EXECUTE FUNCTION ops.log_audit()', 'enabled': 'origin'})",
]


def test_the_comparison_passes_on_equal_catalogs_and_names_each_change(
    seed_catalog: dict[str, Any],
) -> None:
    with scratch_database(MUTANT_DATABASE, fixed_seed_sql()) as conn:
        # Two builds of the same SQL snapshot identically: nothing depends on OIDs or order.
        assert diff(seed_catalog, snapshot(conn.cursor())) == []
        # With the deliberate differences made, the seed itself is a conforming project.
        for table in sorted({policy["table"] for policy in seed_catalog["policies"].values()}):
            conn.execute(
                sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(
                    sql.Identifier(*table.split("."))
                )
            )
        assert compare(seed_catalog, snapshot(conn.cursor())) == ([], [])
        conn.execute(MUTATIONS)
        mutant = snapshot(conn.cursor())
    assert compare(seed_catalog, mutant) == (EXPECTED_MUTATION_DIFF, ["app.extra()"])


def test_snapshot_restores_the_search_path(django_db_setup: None) -> None:
    with scratch_database(MUTANT_DATABASE, "SET search_path = core, public") as conn:
        snapshot(conn.cursor())
        assert conn.execute("SHOW search_path").fetchone() == ("core, public",)


def test_deliberate_differences_force_rls_on_every_policy_table(
    seed_catalog: dict[str, Any],
) -> None:
    expected = expected_catalog(seed_catalog)
    forced = {name for name, table in expected["tables"].items() if table["force row security"]}
    assert forced == {policy["table"] for policy in seed_catalog["policies"].values()}
    assert forced == {
        "app.generic_data",
        "core.api_keys",
        "core.files",
        "core.projects",
        "core.table_metadata",
        "core.user_2fa",
        "core.user_sessions",
        "core.users",
    }
    assert sorted(expected["named constraints"]) == sorted(SEED_NAMED_CONSTRAINTS)


def test_compare_allows_and_lists_extra_functions(seed_catalog: dict[str, Any]) -> None:
    project = expected_catalog(seed_catalog)
    project["functions"]["app.f()"] = {"body": "SELECT 1"}
    project["named constraints"]["core.users.users_pkey"] = "PRIMARY KEY (id)"
    assert compare(seed_catalog, project) == ([], ["app.f()"])


# --- The fixed seed SQL ---------------------------------------------------------------


def test_every_fix_is_applied() -> None:
    original, fixed = seed_sql(), fixed_seed_sql()
    for fix in FIXES:
        assert fix.new in fixed, fix.description
        if fix.old not in fix.new:
            assert fix.old not in fixed, fix.description
    assert "uuid_generate_v4" not in fixed
    assert "BIGSERIAL" not in fixed
    assert "(jsonb_to_text" not in fixed
    assert fixed.count("GENERATED BY DEFAULT AS IDENTITY") == original.count(
        "GENERATED BY DEFAULT AS IDENTITY"
    ) + original.count("BIGSERIAL")
    assert fixed.count(" integer GENERATED BY DEFAULT AS IDENTITY") == 7
    assert fixed.count(" bigint GENERATED BY DEFAULT AS IDENTITY") == 3
    # The function exists before the generated column that calls it.
    assert fixed.index(JSONB_TO_TEXT_SQL) < fixed.index("app.jsonb_to_text(data)")


def test_a_fix_whose_text_is_gone_raises() -> None:
    fixes = (Fix("rename a", "a", "b"), Fix("drop the serial", "BIGSERIAL", "bigint"))
    with pytest.raises(SeedFixError, match="'drop the serial': text 'BIGSERIAL' not found"):
        apply_fixes("SELECT a", fixes)


def test_fixes_apply_in_order_to_every_occurrence() -> None:
    fixes = (Fix("a to b", "a", "b"), Fix("bb to c", "bb", "c"))
    assert apply_fixes("a a aa", fixes) == "b b c"


# --- diff() ---------------------------------------------------------------------------


def test_diff_of_equal_snapshots_is_empty() -> None:
    snap = {"columns": {"core.users.email": {"type": "citext"}}, "extensions": ["citext"]}
    assert diff(snap, copy.deepcopy(snap)) == []


def test_diff_names_section_object_and_field() -> None:
    expected = {
        "columns": {
            "core.users.email": {"type": "citext", "not null": True, "default": None},
            "core.users.name": {"type": "text"},
        },
        "keys": {"core.users primary key (id)": "PRIMARY KEY (id)"},
        "checks": {"cfg.currencies": ["CHECK (a)", "CHECK (b)"]},
        "extensions": ["citext", "pg_trgm"],
    }
    actual = {
        "columns": {
            "core.users.email": {"type": "character varying(255)", "not null": True, "default": ""},
            "core.users.username": {"type": "text"},
        },
        "keys": {"core.users primary key (id)": "PRIMARY KEY (id) DEFERRABLE"},
        "checks": {"cfg.currencies": ["CHECK (b)", "CHECK (c)"]},
        "extensions": ["citext", "plpgsql"],
    }
    assert diff(expected, actual) == [
        "checks cfg.currencies: missing CHECK (a)",
        "checks cfg.currencies: unexpected CHECK (c)",
        "columns core.users.email: default None vs ''",
        "columns core.users.email: type citext vs character varying(255)",
        "columns core.users.name: missing (expected {'type': 'text'})",
        "columns core.users.username: unexpected {'type': 'text'}",
        "extensions: missing pg_trgm",
        "extensions: unexpected plpgsql",
        "keys core.users primary key (id): PRIMARY KEY (id) vs PRIMARY KEY (id) DEFERRABLE",
    ]


def test_diff_reports_a_reordered_list_as_a_whole() -> None:
    assert diff({"t": {"o": {"roles": ["a", "b"]}}}, {"t": {"o": {"roles": ["b", "a"]}}}) == [
        "t o: roles ['a', 'b'] vs ['b', 'a']"
    ]
