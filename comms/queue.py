"""Workers' side of the comms queues (email_queue, webhook_deliveries): claim jobs, report back.

claim_due() takes the due jobs with SELECT ... FOR UPDATE SKIP LOCKED and marks
them `sending` in the same transaction, so two workers never claim the same job and
never wait for each other. A claim is a lease: a worker that dies leaves its jobs
`sending`, and once `lease` has passed since the claim they are due again (delivery
is at least once; receivers should ignore duplicates). mark_sent() and mark_failed()
report the outcome; a failure is retried after an exponential backoff until the
job's max_attempts, and then the job is `dead`.

Row level security decides whose jobs a worker sees: inside a tenant context only
that tenant's, outside any context none (fail closed), and all tenants' only for a
platform login that bypasses row level security.
"""

import datetime
from typing import TypeVar

from django.db import router, transaction
from django.db.models import F, Q, QuerySet

from comms.models import DEAD, FAILED, PENDING, SENDING, SENT, WAITING, QueueJob
from hzm.db.expressions import Now

Job = TypeVar("Job", bound=QueueJob)

DEFAULT_LEASE = datetime.timedelta(minutes=10)
BACKOFF_BASE = datetime.timedelta(minutes=1)
BACKOFF_CAP = datetime.timedelta(hours=6)
MAX_ERROR_LENGTH = 2000
LEASE_EXPIRED = "the worker's lease ran out during the last attempt"


def backoff_delay(
    attempts: int,
    base: datetime.timedelta = BACKOFF_BASE,
    cap: datetime.timedelta = BACKOFF_CAP,
) -> datetime.timedelta:
    """How long to wait after the `attempts`-th failed attempt: base * 2^(attempts - 1), capped."""
    if attempts < 1:
        raise ValueError(f"backoff after {attempts} attempts: there must have been one")
    return min(base * 2 ** min(attempts - 1, 32), cap)


def claim_due(
    model: type[Job],
    limit: int,
    worker: str,
    *,
    lease: datetime.timedelta = DEFAULT_LEASE,
    using: str | None = None,
) -> list[Job]:
    """Claim up to `limit` due jobs of `model` for `worker`: mark them sending and return them.

    Due: waiting (pending, or failed and to be retried) with next_attempt_at passed,
    oldest first; or claimed longer than `lease` ago by a worker that never reported
    back. Such an abandoned job that has used its last attempt is marked dead instead.
    """
    if limit < 1:
        raise ValueError(f"claim_due: limit must be at least 1, got {limit}")
    using = using or router.db_for_write(model)
    jobs = model._base_manager.db_manager(using)
    abandoned = Q(status=SENDING, locked_at__lt=Now() - lease)
    with transaction.atomic(using=using):
        jobs.filter(abandoned, attempts__gte=F("max_attempts")).update(
            status=DEAD, locked_at=None, locked_by=None, last_error=LEASE_EXPIRED
        )
        due = Q(status__in=WAITING, next_attempt_at__lte=Now()) | abandoned
        ids = list(
            jobs.filter(due)
            .order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        jobs.filter(pk__in=ids).update(
            status=SENDING,
            attempts=F("attempts") + 1,
            locked_at=Now(),
            locked_by=worker,
            last_attempt_at=Now(),
        )
        return list(jobs.filter(pk__in=ids).order_by("next_attempt_at", "pk"))


def _report(job: QueueJob, **values: object) -> bool:
    """Update `job` if its claim (worker and claim time) still stands, and refresh it.

    False, changing nothing (the instance neither), when the claim was taken over.
    """
    manager = type(job)._base_manager.db_manager(job._state.db)
    claim = {"status": SENDING, "locked_by": job.locked_by, "locked_at": job.locked_at}
    if not manager.filter(pk=job.pk, **claim).update(locked_at=None, locked_by=None, **values):
        return False
    job.refresh_from_db()
    return True


def mark_sent(job: QueueJob, **fields: object) -> bool:
    """Record that `job` went out (plus any of its model's own columns, e.g. response_code).

    Returns False, changing nothing, when the job is no longer this worker's claim
    (its lease ran out and another worker took it).
    """
    return _report(job, status=SENT, sent_at=Now(), last_error=None, **fields)


def mark_failed(job: QueueJob, error: str, **fields: object) -> bool:
    """Record a failed attempt: retry after backoff_delay(), or give up (dead) at max_attempts.

    Returns False, changing nothing, when the job is no longer this worker's claim.
    """
    values: dict[str, object] = {"last_error": error[:MAX_ERROR_LENGTH], **fields}
    if job.attempts >= job.max_attempts:
        values["status"] = DEAD
    else:
        values["status"] = FAILED
        values["next_attempt_at"] = Now() + backoff_delay(job.attempts)
    return _report(job, **values)


def requeue(jobs: QuerySet) -> int:
    """Put the failed and dead ones of `jobs` back in the queue now, attempts counted afresh."""
    return jobs.filter(status__in=(FAILED, DEAD)).update(
        status=PENDING, attempts=0, next_attempt_at=Now(), locked_at=None, locked_by=None
    )
