"""Concurrency: tenants writing at once on their own connections, and lost updates refused.

Threads get their own database connection from Django; each closes it when done. The
tests commit for real (transactional tests), and `committed_rows` removes the rows.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import connections, models, transaction

from core.models import Project
from generic_data.models import GenericData
from hzm.db.columns import StaleObjectError, Versioned
from ops.models import AuditLog
from tests.security.conftest import (
    TENANT_MODELS,
    TenantWorld,
    as_tenant,
    assert_superuser,
    is_read_only,
    make_world,
    table_name,
)
from tests.support import fetchall, fetchone

ROWS_PER_TENANT = 50
TIMEOUT = 30  # seconds; a thread waiting longer than this has deadlocked


def in_threads(*targets: Callable[[], Any]) -> list[Any]:
    """Run each target in its own thread (and connection); return results, re-raise errors."""
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(index: int, target: Callable[[], Any]) -> None:
        try:
            results[index] = target()
        except BaseException as error:  # handed to the test's thread below
            errors.append(error)
        finally:
            connections.close_all()  # this thread's connections only

    threads = [threading.Thread(target=run, args=item) for item in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


@dataclass
class Read:
    other_committed: int  # rows the other tenant had committed before this read began
    data_tenants: list[int]
    audit_tenants: set[int]


@dataclass
class Writer:
    """One tenant inserting rows, each in its own transaction, and reading after each."""

    world: TenantWorld
    committed: dict[int, int]  # tenant id -> rows committed so far, shared by the writers
    lock: threading.Lock
    start: threading.Barrier
    reads: list[Read] = field(default_factory=list)
    backend_pid: int = 0

    def __call__(self, other: TenantWorld) -> None:
        world = self.world
        self.start.wait(TIMEOUT)
        for n in range(ROWS_PER_TENANT):
            with as_tenant(world.id, world.user.pk):
                GenericData.objects.create(
                    tenant=world.tenant,
                    project=world.project,
                    table=world.table,
                    data={"n": n, "writer": world.id},
                )
            with self.lock:
                self.committed[world.id] += 1
                other_committed = self.committed[other.id]
            with as_tenant(world.id, world.user.pk):
                self.reads.append(
                    Read(
                        other_committed,
                        list(GenericData.all_objects.values_list("tenant_id", flat=True)),
                        set(AuditLog.objects.values_list("tenant_id", flat=True)),
                    )
                )
                self.backend_pid = fetchone("SELECT pg_backend_pid()")[0]


@pytest.mark.django_db(transaction=True)
def test_two_tenants_writing_at_once_never_read_each_others_rows(committed_rows):
    a, b = make_world(), make_world()  # committed: the threads' connections see them
    before = {w.id: GenericData.all_objects.filter(tenant_id=w.id).count() for w in (a, b)}
    committed, lock, start = {a.id: 0, b.id: 0}, threading.Lock(), threading.Barrier(2)
    writer_a = Writer(a, committed, lock, start)
    writer_b = Writer(b, committed, lock, start)

    in_threads(lambda: writer_a(b), lambda: writer_b(a))

    main_pid = fetchone("SELECT pg_backend_pid()")[0]
    assert len({writer_a.backend_pid, writer_b.backend_pid, main_pid}) == 3
    for writer in (writer_a, writer_b):
        own = writer.world.id
        assert len(writer.reads) == ROWS_PER_TENANT
        for n, read in enumerate(writer.reads):
            assert read.data_tenants == [own] * (before[own] + n + 1)  # all its rows, only its
            assert read.audit_tenants == {own}
        # The reads really overlapped the other tenant's committed writes.
        assert max(read.other_committed for read in writer.reads) > 0

    assert_superuser()
    counts = dict(
        fetchall(
            "SELECT tenant_id, count(*) FROM app.generic_data WHERE tenant_id IN (%s, %s) "
            "GROUP BY tenant_id",
            [a.id, b.id],
        )
    )
    assert counts == {w.id: before[w.id] + ROWS_PER_TENANT for w in (a, b)}


# --- Optimistic concurrency -----------------------------------------------------------------


def versioned_params() -> list[Any]:
    return [
        pytest.param(model, id=table_name(model))
        for model in TENANT_MODELS
        if issubclass(model, Versioned)
    ]


def stale_message(model: type[models.Model], pk: Any, mine: int, theirs: int) -> str:
    return (
        f"{table_name(model)} row {pk} was changed by someone else: this copy has version "
        f"{mine}, the database has version {theirs}; reload it and apply the change again"
    )


@contextmanager
def as_writer(model: type[models.Model], world: TenantWorld) -> Iterator[None]:
    """The runtime role in the tenant's context, or the owner where the runtime role only reads."""
    # The billing service writes subscriptions, platform staff flag overrides: the
    # runtime role may not (READ_ONLY_TENANT_TABLES), so their versions are tried as the
    # owner, in a savepoint that a refused save rolls back alone.
    if is_read_only(model):
        with transaction.atomic():
            assert_superuser()
            yield
    else:
        with as_tenant(world.id, world.user.pk):
            yield


@pytest.mark.parametrize("model", versioned_params())
@pytest.mark.django_db
def test_a_stale_copy_is_refused_and_a_fresh_one_bumps_the_version(model, world_a):
    pk = world_a.row(model).pk
    with as_writer(model, world_a):
        first, second = model._base_manager.get(pk=pk), model._base_manager.get(pk=pk)
        assert first.version == second.version == 1

        first.save()
        assert first.version == 2
        first.save()  # a copy that saved last is current: it may save again
        assert first.version == 3
    # Like any error in save(), this one dooms the transaction it happens in.
    with pytest.raises(StaleObjectError) as error, as_writer(model, world_a):
        second.save()

    assert str(error.value) == stale_message(model, pk, 1, 3)
    assert_superuser()
    assert model._base_manager.get(pk=pk).version == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_of_one_row_cannot_lose_an_update(committed_rows):
    world = make_world()
    pk = world.project.pk
    both_loaded, first_saved = threading.Barrier(2), threading.Event()
    hold = 0.3  # seconds the first writer keeps its transaction (and the row lock) open

    def first_writer() -> None:
        with as_tenant(world.id, world.user.pk):
            project = Project.objects.get(pk=pk)
            both_loaded.wait(TIMEOUT)
            project.name = "First"
            project.save()
            first_saved.set()
            time.sleep(hold)  # the second writer's UPDATE now waits for this commit

    def second_writer() -> tuple[StaleObjectError | None, float]:
        started = time.monotonic()
        try:
            with as_tenant(world.id, world.user.pk):
                project = Project.objects.get(pk=pk)
                both_loaded.wait(TIMEOUT)
                assert first_saved.wait(TIMEOUT)
                project.name = "Second"
                started = time.monotonic()
                project.save()
        except StaleObjectError as error:
            return error, time.monotonic() - started
        return None, time.monotonic() - started

    _, (error, waited) = in_threads(first_writer, second_writer)

    assert waited >= hold / 2  # the second UPDATE did wait for the first transaction
    assert error is not None, "the second save overwrote the first one"
    assert str(error) == stale_message(Project, pk, 1, 2)
    assert Project.objects.values_list("name", "version").get(pk=pk) == ("First", 2)
