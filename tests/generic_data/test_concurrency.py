"""Unique fields hold under concurrent writers: the database decides, not a prior check.

Each writer is a thread with its own connection and transaction, as two requests
would be. The data they share is committed (transaction=True), and each test waits
for a state of the database (a writer blocked on a lock), never for a duration.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from generic_data import services
from generic_data.models import GenericData
from hzm.db.columns import purge
from hzm.db.context import tenant_context
from tests.generic_data.conftest import as_tenant, make_project
from tests.support import fetchone

pytestmark = pytest.mark.django_db(transaction=True)

SKU = [{"name": "sku", "type": "text", "unique": True}]
WAIT = 30  # seconds before a stuck test gives up (it fails; it does not measure anything)


def in_thread(work: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = work()
        except Exception as error:  # handed to the test, which asserts on it
            results[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def wait_until_blocked(statement_start: str) -> None:
    """Until a backend of this database waits on a lock while running `statement_start`."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        (waiting,) = fetchone(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [statement_start + "%"],
        )
        if waiting:
            return
        time.sleep(0.02)
    pytest.fail(f"no writer ever waited on a lock in {statement_start!r}")


@pytest.fixture
def table():
    # No record limit: writers do not meet at its advisory lock, only at the unique key.
    project = make_project(max_records=None)
    with as_tenant(project):
        services.define_table(project.pk, "items", SKU)
    return project


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
def test_a_second_writer_of_a_value_waits_for_the_first_and_then_fails_or_succeeds(
    table, first_commits
):
    project = table
    inserted, release = threading.Event(), threading.Event()

    def first() -> str:
        with as_tenant(project):
            services.create_rows(project.pk, "items", [{"sku": "X"}])
            inserted.set()
            assert release.wait(WAIT)
            if not first_commits:
                raise RuntimeError("rolled back")
        return "committed"

    def second() -> list[int]:
        assert inserted.wait(WAIT)
        with as_tenant(project):
            return services.create_rows(project.pk, "items", [{"sku": "X"}])

    results: dict[str, Any] = {}
    threads = [in_thread(first, results, "first"), in_thread(second, results, "second")]
    # The second writer is inside its INSERT, waiting for the first's transaction: the
    # first's value is not committed, so no check could have seen it.
    wait_until_blocked("INSERT INTO app.generic_data")
    release.set()
    for thread in threads:
        thread.join(WAIT)
    if first_commits:
        assert results["first"] == "committed"
        assert isinstance(results["second"], services.Conflict)
        assert "field 'sku': value 'X' is already used" in str(results["second"])
    else:
        assert str(results["first"]) == "rolled back"
        assert isinstance(results["second"], list)
    assert fetchone("SELECT count(*) FROM app.generic_data WHERE data->>'sku' = 'X'") == (1,)


def test_of_many_simultaneous_writers_of_a_value_exactly_one_wins():
    project = make_project(max_records=1000)  # the service's normal path, limit included
    with as_tenant(project):
        services.define_table(project.pk, "items", SKU)
    start = threading.Barrier(6)

    def writer() -> list[int]:
        start.wait(WAIT)
        with as_tenant(project):
            return services.create_rows(project.pk, "items", [{"sku": "X"}])

    results: dict[str, Any] = {}
    threads = [in_thread(writer, results, f"w{n}") for n in range(6)]
    for thread in threads:
        thread.join(WAIT)
    outcomes = sorted(type(result).__name__ for result in results.values())
    assert outcomes == ["Conflict"] * 5 + ["list"]
    assert fetchone("SELECT count(*) FROM app.generic_data") == (1,)


def test_two_updates_to_one_value_cannot_both_win(table):
    project = table
    with as_tenant(project):
        a, b = services.create_rows(project.pk, "items", [{"sku": "A"}, {"sku": "B"}])
    updated, release = threading.Event(), threading.Event()

    def first() -> str:
        with as_tenant(project):
            services.update_row(project.pk, "items", a, {"sku": "Z"})
            updated.set()
            assert release.wait(WAIT)
        return "committed"

    def second() -> Any:
        assert updated.wait(WAIT)
        with as_tenant(project):
            return services.update_row(project.pk, "items", b, {"sku": "Z"})

    results: dict[str, Any] = {}
    threads = [in_thread(first, results, "first"), in_thread(second, results, "second")]
    wait_until_blocked("UPDATE app.generic_data")
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert results["first"] == "committed"
    assert isinstance(results["second"], services.Conflict)
    assert fetchone("SELECT data->>'sku' FROM app.generic_data WHERE id = %s", [b]) == ("B",)


# --- The record limit (generic_data/migrations/0005): per tenant, in the database ------------


def test_two_writers_of_one_tenant_cannot_both_take_its_last_record():
    project = make_project(max_records=1)
    with as_tenant(project):
        services.define_table(project.pk, "a", [{"name": "n", "type": "integer"}])
        services.define_table(project.pk, "b", [{"name": "n", "type": "integer"}])
    inserted, release = threading.Event(), threading.Event()

    def first() -> str:
        with as_tenant(project):
            services.create_rows(project.pk, "a", [{"n": 1}])
            inserted.set()
            assert release.wait(WAIT)
        return "committed"

    def second() -> list[int]:
        assert inserted.wait(WAIT)
        with as_tenant(project):  # another table: only the tenant's lock makes it wait
            return services.create_rows(project.pk, "b", [{"n": 1}])

    results: dict[str, Any] = {}
    threads = [in_thread(first, results, "first"), in_thread(second, results, "second")]
    wait_until_blocked("INSERT INTO app.generic_data")
    release.set()
    for thread in threads:
        thread.join(WAIT)
    assert results["first"] == "committed"
    assert isinstance(results["second"], services.LimitExceeded)
    assert "max_records (1)" in str(results["second"])
    assert fetchone("SELECT count(*) FROM app.generic_data") == (1,)


def test_a_tenant_holding_any_advisory_lock_does_not_hold_up_another_tenants_inserts():
    """The old limit check took pg_advisory_xact_lock(hashtext('app.generic_data records'),
    tenant): any tenant's code could take that key at session level and block the others."""
    victim = make_project(max_records=100)
    attacker = make_project()
    with as_tenant(victim):
        services.define_table(victim.pk, "a", [{"name": "n", "type": "integer"}])
    holding, release = threading.Event(), threading.Event()

    def hold_the_key() -> str:
        with as_tenant(attacker), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(hashtext('app.generic_data records'), %s)",
                [victim.tenant_id],
            )
            holding.set()
            assert release.wait(WAIT)
            cursor.execute("SELECT pg_advisory_unlock_all()")
        return "released"

    results: dict[str, Any] = {}
    thread = in_thread(hold_the_key, results, "attacker")
    assert holding.wait(WAIT)
    try:
        with tenant_context(victim.tenant_id, victim.user_id, lock_timeout="2s"):
            ids = services.create_rows(victim.pk, "a", [{"n": 1}])
    finally:
        release.set()
        thread.join(WAIT)
    assert len(ids) == 1
    assert results["attacker"] == "released"


def test_the_record_counts_follow_inserts_soft_deletes_restores_and_purges():
    project = make_project(max_records=None)
    with as_tenant(project):
        table = services.define_table(project.pk, "a", [{"name": "n", "type": "integer"}])
        ids = services.create_rows(project.pk, "a", [{"n": i} for i in range(5)])
        services.delete_row(project.pk, "a", ids[0])

    def counted() -> int:
        query = "SELECT live_records FROM app.record_counts WHERE table_id = %s"
        return fetchone(query, [table.id])[0]

    assert counted() == 4
    # As the owner: a restore, then purges of a live and of a soft-deleted row.
    GenericData.all_objects.filter(pk=ids[0]).update(is_deleted=False)
    assert counted() == 5
    purge(GenericData.all_objects.filter(pk=ids[1]))
    assert counted() == 4
    GenericData.all_objects.filter(pk=ids[2]).delete()  # soft
    purge(GenericData.all_objects.filter(pk=ids[2]))
    assert counted() == 3
