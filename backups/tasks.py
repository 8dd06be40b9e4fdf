"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError

from drportal.enqueue import enqueue

from .models import BackupRun, Restore, Target, Verification
from .services import backup

logger = logging.getLogger(__name__)

# A second backup of a target waits for the first: retry every BACKUP_WAIT_RETRY_SECONDS
# (30 s by default) up to this many times (an hour at the default).
WAIT_MAX_RETRIES = 120


@shared_task(bind=True, max_retries=WAIT_MAX_RETRIES, acks_late=True)
def run_backup(self, run_id: int) -> str:
    try:
        run = BackupRun.objects.select_related("target").get(pk=run_id)
    except BackupRun.DoesNotExist:
        logger.warning("backup run %s no longer exists", run_id)
        return "missing"
    try:
        run = backup.execute(run, worker=self.request.hostname or None)
    except backup.AnotherRunActive as exc:
        if self.request.retries >= self.max_retries:
            backup.refuse(run, f"{exc}; gave up waiting")
            return run.status
        raise self.retry(exc=exc, countdown=settings.BACKUP_WAIT_RETRY_SECONDS) from None
    if run.status in BackupRun.WITH_ARTIFACT:  # a partial run's landed copies are checked too
        # Checked on behalf of whoever started the backup: the schedule, a person, or a command.
        queue_verification_after_backup(run, trigger=run.trigger, user=run.triggered_by, command_user=run.command_user)
    return run.status


# --- every enqueue of the app's jobs: here, through drportal.enqueue's one policy --------------
# On commit, one quick try, and the row says so when the broker cannot take it (see drportal/enqueue.py).
# A target's jobs go where its queue's workers sit (near its data), never to whichever worker is
# free. Celery's retries keep the queue they were delivered on, so a waiting backup stays there.


def enqueue_backup(run: BackupRun) -> None:
    """Hand a queued run to the workers of its target's queue."""
    enqueue(run_backup, (run.pk,), queue=run.queue or run.target.queue, on_failure=run.give_up)


def enqueue_verification(verification: Verification, on_failure: Callable[[str], None] | None = None) -> None:
    """Hand a check or restore test to the workers of its target's queue (they can reach its copies and
    restore its data: a monthly restore test or a drill's runs there, never on whichever worker is free).

    ``on_failure`` (default: the row's ``give_up``) is told when the broker cannot take it."""
    enqueue(
        verify_backup,
        (verification.pk,),
        queue=verification.run.target.queue,
        on_failure=on_failure or verification.give_up,
    )


def enqueue_restore(record: Restore) -> None:
    """A restore goes to its target's queue (a restore to a moment: the workers on the database host, as the
    cluster's OS user); one without a target or run to the shared queue."""
    if record.target_id:
        queue = record.target.queue
    elif record.run_id:
        queue = record.run.target.queue
    else:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
    enqueue(run_restore, (record.pk,), queue=queue, on_failure=record.give_up)


def queue_verification_after_backup(
    run: BackupRun, *, trigger: str, user=None, command_user: str = ""
) -> Verification | None:
    """Every backup is proven straight away: hand an integrity check of its copies to the workers.

    Returns None (and removes the row) when the broker cannot take the job, so a check that will
    never run is not left looking queued, nor counted as a failed check of a good backup; the
    caller says so (the backup command prints how to verify by hand). Inside a transaction the
    job is sent at commit, and the verification is returned.
    """
    from .services import verify

    verification = verify.start_verification(
        run, kind=Verification.Kind.INTEGRITY, trigger=trigger, user=user, command_user=command_user
    )
    refused = []

    def forget(reason: str) -> None:
        refused.append(reason)
        verification.delete()

    enqueue(verify_backup, (verification.pk,), queue=run.target.queue, on_failure=forget)
    return None if refused else verification


@shared_task(bind=True)
def backup_target(self, target_name: str, backup_type: str = "") -> int | None:
    """Beat's entry point: make the scheduled run of one target (pgbackrest: of that type) and send it
    to the target's queue.

    Idempotent per beat message: a worker killed between making the run and sending it leaves
    the message unacknowledged; its redelivery (BROKER_VISIBILITY_TIMEOUT) finds the run by the
    message id and sends it, instead of leaving it queued forever and making a second one.
    """
    target = Target.objects.filter(name=target_name, enabled=True).first()
    if target is None:
        logger.warning("scheduled backup: target %s is missing or disabled", target_name)
        return None
    sent_as = self.request.id or ""
    run = BackupRun.objects.filter(sent_as=sent_as).first() if sent_as else None
    if run is None:
        try:
            run = BackupRun.enqueue(target, trigger=BackupRun.Trigger.SCHEDULE, sent_as=sent_as)
        except IntegrityError:  # another delivery of the same message made it a moment ago
            return BackupRun.objects.get(sent_as=sent_as).pk
        if backup_type and target.engine == "pgbackrest":
            from .services import pgbackrest

            pgbackrest.request_type(run, backup_type)
    if run.status == BackupRun.Status.QUEUED:
        enqueue_backup(run)  # a second message for a run already sent is a no-op for the worker
    return run.pk


@shared_task
def reap_stale_jobs() -> int:
    """Fail backups and restores whose worker died, cleaning up what they left (spools, and in locations)."""
    from .services import orphans, restore

    reaped = backup.reap_stale_runs() + restore.reap_stale_restores()
    # After the runs: a run just found dead no longer protects what it left.
    return reaped + len(orphans.reap().removed)


@shared_task(bind=True, acks_late=True)
def verify_backup(self, verification_id: int) -> str:
    from .services import verify

    verification = Verification.objects.select_related("run__target").filter(pk=verification_id).first()
    if verification is None:
        return "missing"
    return verify.verify(verification, worker=self.request.hostname or "").status


@shared_task(acks_late=True)
def run_restore(restore_id: int) -> str:
    from .services import restore

    record = Restore.objects.select_related("target", "triggered_by").filter(pk=restore_id).first()
    if record is None:
        return "missing"
    if record.is_to_a_moment:
        from .services import pgbackrest

        return pgbackrest.run_requested(record).status
    return restore.execute(record).status


@shared_task
def watch_queues() -> dict[str, bool]:
    """Every minute: alert on queues with targets and no live worker; fail runs that waited too long."""
    from .services import queues

    return queues.watch()


@shared_task
def evaluate_objectives() -> dict[str, str]:
    from .services import rpo

    return {objective.name: objective.state for objective in rpo.evaluate()}


@shared_task
def prune_expired() -> int:
    from .services import retention

    return sum(1 for decision in retention.prune() if decision.action == "delete" and not decision.error)


@shared_task
def monthly_restore_tests() -> list[int]:
    """The plan's monthly "restore backup to test environment": every enabled target's newest backup."""
    from .services import verify

    queued = []
    for target in Target.objects.filter(enabled=True):
        run = target.runs.with_artifact().order_by("-started_at").first()
        if run is None:
            continue
        verification = verify.start_verification(
            run, kind=Verification.Kind.RESTORE_TEST, trigger=BackupRun.Trigger.SCHEDULE
        )
        enqueue_verification(verification)
        queued.append(verification.pk)
    return queued
