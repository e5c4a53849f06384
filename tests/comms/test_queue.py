"""comms.queue: claims with SKIP LOCKED, leases, backoff, dead jobs, row level security."""

import datetime
import threading

import pytest
from django.db import connection, transaction

from comms.models import EmailQueue, WebhookDelivery
from comms.queue import (
    LEASE_EXPIRED,
    backoff_delay,
    claim_due,
    mark_failed,
    mark_sent,
    requeue,
)
from hzm.db.context import service_context, tenant_context
from hzm.db.operations import service_role
from tests.factories import UserFactory
from tests.factories_platform import EmailQueueFactory, WebhookDeliveryFactory
from tests.platform_support import as_role, query
from tests.support import fetchone, run

MINUTE = datetime.timedelta(minutes=1)


def db_now() -> datetime.datetime:
    return query("SELECT now()")[0][0]


# --- Backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "minutes"), [(1, 1), (2, 2), (3, 4), (4, 8), (9, 256), (10, 360), (80, 360)]
)
def test_backoff_doubles_from_a_minute_up_to_six_hours(attempts, minutes):
    assert backoff_delay(attempts) == minutes * MINUTE


def test_backoff_needs_an_attempt():
    with pytest.raises(ValueError, match="after 0 attempts"):
        backoff_delay(0)


# --- Claiming ----------------------------------------------------------------------------------


@pytest.mark.django_db
class TestClaim:
    def test_claims_due_jobs_oldest_first_up_to_the_limit(self):
        now = db_now()
        user = UserFactory()
        late, early, later = (
            EmailQueueFactory(user=user, next_attempt_at=now - offset * MINUTE)
            for offset in (1, 3, 2)
        )
        future = EmailQueueFactory(user=user, next_attempt_at=now + MINUTE)
        claimed = claim_due(EmailQueue, 2, "worker-1")
        assert claimed == [early, later]
        for job in claimed:
            assert (job.status, job.attempts, job.locked_by) == ("sending", 1, "worker-1")
            assert job.locked_at == job.last_attempt_at == now
        assert claim_due(EmailQueue, 5, "worker-2") == [late]
        future.refresh_from_db()
        assert future.status == "pending"

    def test_a_claimed_job_is_not_claimed_again_while_its_lease_runs(self):
        job = EmailQueueFactory()
        assert claim_due(EmailQueue, 1, "a") == [job]
        assert claim_due(EmailQueue, 1, "b") == []

    def test_an_abandoned_job_is_claimed_again_after_its_lease(self):
        job = EmailQueueFactory()
        claim_due(EmailQueue, 1, "crashed")
        run("UPDATE comms.email_queue SET locked_at = now() - interval '11 minutes'")
        [again] = claim_due(EmailQueue, 1, "b")
        assert (again.pk, again.locked_by, again.attempts) == (job.pk, "b", 2)

    def test_an_abandoned_job_on_its_last_attempt_is_dead(self):
        job = EmailQueueFactory(max_attempts=1)
        claim_due(EmailQueue, 1, "crashed")
        run("UPDATE comms.email_queue SET locked_at = now() - interval '11 minutes'")
        assert claim_due(EmailQueue, 1, "b") == []
        job.refresh_from_db()
        assert (job.status, job.locked_by, job.last_error) == ("dead", None, LEASE_EXPIRED)

    def test_the_limit_must_be_positive(self):
        with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
            claim_due(EmailQueue, 0, "w")

    def test_webhook_deliveries_are_a_queue_too(self):
        delivery = WebhookDeliveryFactory()
        assert claim_due(WebhookDelivery, 10, "w") == [delivery]

    def test_the_claim_query_uses_the_due_index(self):
        run("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            line
            for (line,) in query(
                "EXPLAIN SELECT id FROM comms.email_queue WHERE status IN ('pending', 'failed') "
                "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 10"
            )
        )
        assert "idx_email_queue_due" in plan


# --- Reporting back ------------------------------------------------------------------------------


@pytest.mark.django_db
class TestReport:
    def claimed(self, **values) -> EmailQueue:
        EmailQueueFactory(**values)
        [job] = claim_due(EmailQueue, 1, "w")
        return job

    def test_mark_sent(self):
        job = self.claimed()
        assert mark_sent(job)
        assert (job.status, job.locked_at, job.locked_by) == ("sent", None, None)
        assert job.sent_at == db_now()

    def test_a_failure_is_retried_after_the_backoff(self):
        job = self.claimed()
        assert mark_failed(job, "421 try again later")
        assert (job.status, job.attempts, job.last_error) == ("failed", 1, "421 try again later")
        assert job.next_attempt_at == db_now() + backoff_delay(1)
        assert job.locked_by is None
        assert claim_due(EmailQueue, 1, "w") == []  # not due before the backoff is over
        run("UPDATE comms.email_queue SET next_attempt_at = now()")
        [again] = claim_due(EmailQueue, 1, "w")
        assert again.attempts == 2

    def test_the_last_failure_makes_the_job_dead(self):
        job = self.claimed(max_attempts=2, attempts=1)
        assert job.attempts == 2
        assert mark_failed(job, "x" * 5000)
        assert (job.status, len(job.last_error)) == ("dead", 2000)
        run("UPDATE comms.email_queue SET next_attempt_at = now() - interval '1 day'")
        assert claim_due(EmailQueue, 1, "w") == []

    def test_a_worker_whose_claim_was_taken_over_changes_nothing(self):
        job = self.claimed()
        run("UPDATE comms.email_queue SET locked_at = now() - interval '11 minutes'")
        [taken] = claim_due(EmailQueue, 1, "other")
        assert not mark_sent(job)
        assert not mark_failed(job, "late")
        assert job.locked_by == "w"  # the instance still shows the claim it had
        taken.refresh_from_db()
        assert (taken.status, taken.locked_by) == ("sending", "other")

    def test_a_worker_that_claims_its_own_abandoned_job_again_holds_only_the_new_claim(self):
        old = self.claimed()
        run("UPDATE comms.email_queue SET locked_at = now() - interval '11 minutes'")
        old.refresh_from_db()
        [new] = claim_due(EmailQueue, 1, "w")
        assert not mark_failed(old, "from the first attempt")
        assert mark_sent(new)

    def test_a_delivery_records_its_response(self):
        WebhookDeliveryFactory()
        [delivery] = claim_due(WebhookDelivery, 1, "w")
        assert mark_failed(delivery, "HTTP 503", response_code=503, duration_ms=120)
        assert (delivery.status, delivery.response_code, delivery.duration_ms) == (
            "failed",
            503,
            120,
        )

    def test_requeue_puts_failed_and_dead_jobs_back_only(self):
        dead = EmailQueueFactory(status="dead", attempts=5)
        failed = EmailQueueFactory(status="failed", attempts=2)
        pending = EmailQueueFactory()
        assert requeue(EmailQueue.objects.all()) == 2
        for job in (dead, failed, pending):
            job.refresh_from_db()
        assert [(j.status, j.attempts) for j in (dead, failed, pending)] == [("pending", 0)] * 3


# --- Row level security ---------------------------------------------------------------------------


@pytest.mark.django_db
class TestWhoseJobs:
    def test_the_comms_service_claims_only_its_context_tenants_jobs(self):
        mine, theirs = EmailQueueFactory(), EmailQueueFactory()
        # As the README's worker does it: the service's role, the tenant's signed context.
        with service_context("comms", mine.tenant_id):
            assert fetchone("SELECT current_user::text")[0] == service_role("comms")
            claimed = claim_due(EmailQueue, 10, "comms-1")
            assert claimed == [mine]
            assert mark_sent(claimed[0])
        theirs.refresh_from_db()
        assert theirs.status == "pending"

    def test_without_a_tenant_context_a_service_worker_claims_nothing(self):
        EmailQueueFactory()
        with as_role(service_role("comms")):
            assert claim_due(EmailQueue, 10, "comms-1") == []

    def test_tenant_code_sees_its_own_queue_only(self):
        mine, theirs = EmailQueueFactory(), EmailQueueFactory()
        with tenant_context(mine.tenant_id):
            assert claim_due(EmailQueue, 10, "app") == [mine]
        theirs.refresh_from_db()
        assert theirs.status == "pending"


# --- Two workers at once -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_workers_claim_disjoint_jobs():
    """Worker A holds its claim's locks open while worker B claims: B skips A's rows."""
    user = UserFactory()
    jobs = {EmailQueueFactory(user=user).pk for _ in range(6)}
    claimed: dict[str, list[int]] = {}
    a_has_claimed, b_has_claimed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def worker(name: str, before_commit: threading.Event, after_claim: threading.Event) -> None:
        try:
            with transaction.atomic():
                claimed[name] = [job.pk for job in claim_due(EmailQueue, 3, name)]
                after_claim.set()
                before_commit.wait(timeout=10)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            after_claim.set()
        finally:
            connection.close()

    a = threading.Thread(target=worker, args=("a", b_has_claimed, a_has_claimed))
    a.start()
    assert a_has_claimed.wait(timeout=10)
    # A's transaction is still open, its three rows locked: B must not wait for them.
    go = threading.Event()
    go.set()  # B commits at once
    b = threading.Thread(target=worker, args=("b", go, b_has_claimed))
    b.start()
    assert b_has_claimed.wait(timeout=5), "worker B waited for worker A's locks"
    b.join(timeout=10)
    a.join(timeout=10)

    assert errors == []
    assert len(claimed["a"]) == len(claimed["b"]) == 3
    assert set(claimed["a"]).isdisjoint(claimed["b"])
    assert set(claimed["a"]) | set(claimed["b"]) == jobs
    statuses = EmailQueue.objects.filter(pk__in=jobs).values_list("locked_by", "status")
    assert sorted(statuses) == [("a", "sending")] * 3 + [("b", "sending")] * 3
