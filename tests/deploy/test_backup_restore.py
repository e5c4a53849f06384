"""`manage.py backup` and `restore`: every tenant's rows, verified, never into a full database."""

import json
import re

import pytest

from hzm.deploy.backup import (
    backup_filename,
    latest_backup,
    read_manifest,
    state_hash,
)
from hzm.progress import size
from tests.deploy.conftest import ROLE, query, url_as

TENANT_TABLES = ("core.users", "core.projects", "core.table_metadata", "app.generic_data")


def two_tenants(database: str) -> None:
    """Rows of two tenants in several tenant tables (as the superuser: RLS does not apply)."""
    query(
        database,
        """
        INSERT INTO cfg.currencies (code) VALUES ('USD') ON CONFLICT DO NOTHING;
        INSERT INTO cfg.languages (code) VALUES ('en') ON CONFLICT DO NOTHING;
        INSERT INTO core.tenants (name, slug) VALUES ('Acme', 'acme'), ('Globex', 'globex');
        INSERT INTO core.users (tenant_id, email, password_hash)
          SELECT t.id, t.slug || n || '@example.com', 'x'
          FROM core.tenants t, generate_series(1, 3) n;
        INSERT INTO core.projects (tenant_id, user_id, name, api_key)
          SELECT u.tenant_id, u.id, 'p' || u.id, 'k' || u.id FROM core.users u;
        INSERT INTO core.table_metadata (tenant_id, project_id, table_name, physical_table_name)
          SELECT p.tenant_id, p.id, 't' || p.id, 'pt' || p.id FROM core.projects p;
        INSERT INTO app.generic_data (tenant_id, project_id, table_id, data)
          SELECT m.tenant_id, m.project_id, m.id, jsonb_build_object('n', n)
          FROM core.table_metadata m, generate_series(1, 4) n;
        """,
    )


def per_tenant(database: str) -> dict[str, list[tuple]]:
    return {
        table: query(database, f"SELECT tenant_id, count(*) FROM {table} GROUP BY 1 ORDER BY 1")
        for table in TENANT_TABLES
    }


@pytest.fixture
def source(databases) -> str:
    database = databases.clone()
    two_tenants(database)
    return database


def test_names_and_sidecar(run, source, backup_dir):
    out = run("backup", dbname=source).stdout
    [dump] = backup_dir.glob("*.dump")
    assert re.fullmatch(rf"{source}-\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}\.dump", dump.name)
    assert f"backup: {dump}" in out
    _, manifest = read_manifest(dump)
    applied: dict[str, list[str]] = {}
    for app, name in query(source, "SELECT app, name FROM django_migrations ORDER BY 1, 2"):
        applied.setdefault(app, []).append(name)
    assert manifest["applied_migrations"] == applied
    assert manifest["migration_state"] == state_hash(applied) == dump.stem[-8:]
    assert manifest["row_counts"]["core.users"] == 6
    assert manifest["row_counts"]["app.generic_data"] == 24
    assert manifest["security"]["core.users"]["rls"] == [True, True]
    assert "trg_users_audit" in manifest["security"]["core.users"]["triggers"]
    assert ROLE in manifest["roles"]["grantees"]
    assert manifest["server_version"].startswith(query(source, "SHOW server_version")[0][0][:2])
    assert latest_backup(backup_dir, source) == dump


def test_backup_and_restore_report_progress_and_are_quiet_at_verbosity_0(
    run, source, databases, backup_dir
):
    every_poll = {"HZM_PROGRESS_INTERVAL": "0"}
    out = run("backup", dbname=source, env=every_poll).stdout
    [dump] = backup_dir.glob("*.dump")
    dumped = [line for line in out.splitlines() if line.startswith("pg_dump: ")]
    assert dumped[-1].startswith(f"pg_dump: {size(dump.stat().st_size)}, "), out
    assert dumped[-1].endswith("/s (written)"), out

    target = databases.reserve()
    # What restore's verification finds is other tests' business: here, its progress.
    args = ("restore", str(dump), "--target-db", target, "--create")
    out = run(*args, dbname=source, env=every_poll, check=False).stdout
    whole = size(dump.stat().st_size)
    restored = [line for line in out.splitlines() if line.startswith("pg_restore: ")]
    assert restored[-1].startswith(f"pg_restore: {whole} of {whole} (100%), "), out
    assert restored[-1].endswith("/s (read; verifying)"), out

    assert run("backup", "-v", "0", dbname=source).stdout == ""
    quiet = databases.reserve()
    args = ("restore", str(dump), "--target-db", quiet, "--create", "-v", "0")
    assert run(*args, dbname=source, check=False).stdout == ""


def test_naming_is_pure():
    from datetime import UTC, datetime

    when = datetime(2026, 11, 27, 5, 15, tzinfo=UTC)
    assert backup_filename("hzm", when, "1a2b3c4d") == "hzm-20261127T051500Z-1a2b3c4d.dump"
    assert state_hash({"b": ["2", "1"], "a": ["1"]}) == state_hash({"a": ["1"], "b": ["1", "2"]})
    assert state_hash({"a": ["1"]}) != state_hash({"a": ["1", "2"]})


def test_every_tenants_rows_come_back_verified(run, source, databases, backup_dir):
    run("backup", dbname=source)
    [dump] = backup_dir.glob("*.dump")
    target = databases.reserve()

    out = run("restore", str(dump), "--target-db", target, "--create", dbname=source).stdout

    assert f"restore: {target} verified" in out
    expected = per_tenant(source)
    assert all(len(rows) == 2 for rows in expected.values()), expected  # both tenants
    assert per_tenant(target) == expected
    assert query(
        target,
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE oid = 'core.users'::regclass",
    ) == [(True, True)]


def test_restore_refuses_a_database_that_is_not_empty(run, source, backup_dir):
    run("backup", dbname=source)
    [dump] = backup_dir.glob("*.dump")
    result = run("restore", str(dump), dbname=source, check=False)
    assert result.returncode != 0
    assert f"database '{source}' is not empty" in result.stderr
    assert "Restore only into an empty database" in result.stderr


def test_restore_reports_what_does_not_match(run, source, databases, backup_dir):
    run("backup", dbname=source)
    [dump] = backup_dir.glob("*.dump")
    sidecar = dump.with_suffix(".json")
    manifest = json.loads(sidecar.read_text())
    manifest["row_counts"]["core.users"] += 1
    manifest["security"]["core.users"]["triggers"].append("trg_users_missing")
    sidecar.write_text(json.dumps(manifest))
    target = databases.reserve()

    result = run(
        "restore", str(dump), "--target-db", target, "--create", dbname=source, check=False
    )

    assert result.returncode != 0
    assert "row count of core.users: backup has 7, restored database has 6" in result.stderr
    assert "security of core.users" in result.stderr
    assert "does not match the backup (2 problem(s) above)" in result.stderr


def test_a_damaged_dump_is_refused(run, source, backup_dir, databases):
    run("backup", dbname=source)
    [dump] = backup_dir.glob("*.dump")
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    result = run(
        "restore",
        str(dump),
        "--target-db",
        databases.reserve(),
        "--create",
        dbname=source,
        check=False,
    )
    assert result.returncode != 0
    assert "SHA-256 differs from the sidecar's" in result.stderr


def test_a_role_that_cannot_see_every_row_is_refused_with_the_reason(run, source, backup_dir):
    dumper = f"{ROLE}_backup"
    query(source, f"CREATE ROLE {dumper} LOGIN NOBYPASSRLS; GRANT pg_read_all_data TO {dumper}")
    env = {"MIGRATION_DATABASE_URL": url_as(source, dumper)}

    refused = run("backup", dbname=source, env=env, check=False)
    assert refused.returncode != 0
    assert f"role '{dumper}' cannot read every row of" in refused.stderr
    assert "app.generic_data" in refused.stderr  # the first of the tenant tables
    assert "BYPASSRLS" in refused.stderr
    assert list(backup_dir.glob("*.dump")) == []

    query(source, f"ALTER ROLE {dumper} BYPASSRLS")
    run("backup", dbname=source, env=env)
    [dump] = backup_dir.glob("*.dump")
    assert read_manifest(dump)[1]["role"] == dumper
    assert read_manifest(dump)[1]["row_counts"]["core.users"] == 6
