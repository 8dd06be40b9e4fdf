"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging

from celery import shared_task

from .models import BackupRun, Target
from .services import backup

logger = logging.getLogger(__name__)

# A second backup of a target waits for the first: retry every 30 s for up to an hour.
WAIT_RETRY_SECONDS = 30
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
        raise self.retry(countdown=WAIT_RETRY_SECONDS) from None
    return run.status


@shared_task
def backup_target(target_name: str) -> int | None:
    """Beat's entry point: queue and run a scheduled backup of one target."""
    target = Target.objects.filter(name=target_name, enabled=True).first()
    if target is None:
        logger.warning("scheduled backup: target %s is missing or disabled", target_name)
        return None
    run = backup.start_backup(target, trigger=BackupRun.Trigger.SCHEDULE)
    run_backup.delay(run.pk)
    return run.pk


@shared_task
def reap_stale_runs() -> int:
    return backup.reap_stale_runs()
