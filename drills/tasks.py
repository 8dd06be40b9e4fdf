"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

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


def enqueue_drill(drill: Drill, user_id: int | None = None) -> None:
    """Hand an automated drill to the workers (drportal.enqueue's policy: on commit, one quick try).

    When the broker cannot take it the drill stays scheduled (the hourly task tries again) and its
    ``error`` says why, for the admin to show.
    """

    def note(reason: str) -> None:
        Drill.objects.filter(pk=drill.pk, status=Drill.Status.SCHEDULED).update(error=reason)

    args = (drill.pk,) if user_id is None else (drill.pk, user_id)
    enqueue(perform_automated_drill, args, queue=settings.CELERY_TASK_DEFAULT_QUEUE, on_failure=note)


@shared_task(acks_late=True)
def perform_automated_drill(drill_id: int, user_id: int | None = None) -> str:
    from django.contrib.auth import get_user_model

    from .services import automated

    drill = Drill.objects.select_related("activity__target").filter(pk=drill_id).first()
    if drill is None:
        logger.warning("drill %s no longer exists", drill_id)
        return "missing"
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    # start() inside perform() claims the drill, so a second delivery of this task does nothing.
    return automated.perform(drill, user=user).status
