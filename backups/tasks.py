"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from .models import BackupRun, Target
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
        from .services import verify

        # Checked on behalf of whoever started the backup: the schedule, a person, or a command.
        verify.queue_after_backup(run, trigger=run.trigger, user=run.triggered_by, command_user=run.command_user)
    return run.status


@shared_task
def backup_target(target_name: str, backup_type: str = "") -> int | None:
    """Beat's entry point: queue and run a scheduled backup of one target (pgbackrest: of that type)."""
    target = Target.objects.filter(name=target_name, enabled=True).first()
    if target is None:
        logger.warning("scheduled backup: target %s is missing or disabled", target_name)
        return None
    run = backup.start_backup(target, trigger=BackupRun.Trigger.SCHEDULE)
    if backup_type and target.engine == "pgbackrest":
        from .services import pgbackrest

        pgbackrest.request_type(run, backup_type)
    run_backup.delay(run.pk)
    return run.pk


@shared_task
def reap_stale_jobs() -> int:
    """Fail backups and restores whose worker died, cleaning up what they left (spools, and in locations)."""
    from .services import orphans, restore

    reaped = backup.reap_stale_runs() + restore.reap_stale_restores()
    # After the runs: a run just found dead no longer protects what it left.
    return reaped + len(orphans.reap().removed)


@shared_task(acks_late=True)
def verify_backup(verification_id: int) -> str:
    from .models import Verification
    from .services import verify

    verification = Verification.objects.select_related("run__target").filter(pk=verification_id).first()
    if verification is None:
        return "missing"
    return verify.verify(verification).status


@shared_task(acks_late=True)
def run_restore(restore_id: int) -> str:
    from .models import Restore
    from .services import restore

    record = Restore.objects.filter(pk=restore_id).first()
    if record is None:
        return "missing"
    return restore.execute(record).status


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
    from .models import Verification
    from .services import verify

    queued = []
    for target in Target.objects.filter(enabled=True):
        run = target.runs.with_artifact().order_by("-started_at").first()
        if run is None:
            continue
        verification = verify.start_verification(
            run, kind=Verification.Kind.RESTORE_TEST, trigger=BackupRun.Trigger.SCHEDULE
        )
        verify_backup.delay(verification.pk)
        queued.append(verification.pk)
    return queued
