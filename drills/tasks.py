"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from drportal.enqueue import enqueue

from .models import Drill

logger = logging.getLogger(__name__)


@shared_task
def housekeeping() -> dict:
    """Hourly: next occurrences exist, overdue drills, findings and reviews are flagged and reminded."""
    from .services import schedule

    return schedule.housekeeping()


@shared_task
def run_due_automated_drills() -> list[int]:
    """Queue every automated drill that is due (the monthly Backup Verification restore test)."""
    from .services import schedule

    queued = []
    for drill in schedule.due_automated_drills():
        enqueue_drill(drill)
        queued.append(drill.pk)
    return queued


# A waiting drill looks again this often for its restore tests (on their targets' queues), for up
# to DRILL_WAIT_MAX_RETRIES times (4 hours); past that the hourly task performs it once they finish.
DRILL_WAIT_SECONDS = 15
DRILL_WAIT_MAX_RETRIES = 960


def enqueue_drill(drill: Drill, user_id: int | None = None) -> None:
    """Hand an automated drill to the workers (drportal.enqueue's policy: on commit, one quick try).

    Its restore tests go first, each to **its target's queue**: a target's data and copies may be
    reachable only from the workers of that queue (a database in a private network), so the drill
    never restores one in whatever process runs the drill. The drill itself then goes to the
    shared queue, waits for them and records their outcome.

    When the broker cannot take them the drill stays scheduled (the hourly task tries again), its
    ``error`` says why, for the admin to show, and the restore tests that were not sent are removed
    (a restore test that will never run must not pass for a recent one).
    """
    from django.contrib.auth import get_user_model

    from backups.tasks import enqueue_verification

    from .services import automated

    def note(reason: str) -> None:
        Drill.objects.filter(pk=drill.pk, status=Drill.Status.SCHEDULED).update(error=reason)

    def forget(verification):
        def refused(reason: str) -> None:
            verification.delete()
            note(f"restore test of {verification.run.target.name}: {reason}")

        return refused

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    since = timezone.now()
    for verification in automated.start_restore_tests(drill, user=user, now=since):
        enqueue_verification(verification, on_failure=forget(verification))
    args = (drill.pk, user_id, since.isoformat())
    enqueue(perform_automated_drill, args, queue=settings.CELERY_TASK_DEFAULT_QUEUE, on_failure=note)


@shared_task(bind=True, acks_late=True, max_retries=DRILL_WAIT_MAX_RETRIES)
def perform_automated_drill(self, drill_id: int, user_id: int | None = None, since: str | None = None) -> str:
    from django.contrib.auth import get_user_model

    from .services import automated

    drill = Drill.objects.select_related("activity__target").filter(pk=drill_id).first()
    if drill is None:
        logger.warning("drill %s no longer exists", drill_id)
        return "missing"
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    # start() inside perform() claims the drill, so a second delivery of this task does nothing.
    drill = automated.perform(drill, user=user, since=datetime.fromisoformat(since) if since else None)
    if drill.status == Drill.Status.SCHEDULED and self.request.retries < self.max_retries and not self.request.is_eager:
        raise self.retry(countdown=DRILL_WAIT_SECONDS)  # its restore tests are still running on their queues
    return drill.status
