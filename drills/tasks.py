"""Celery tasks: thin wrappers that call the services."""

from __future__ import annotations

import logging

from celery import shared_task

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
        perform_automated_drill.delay(drill.pk)
        queued.append(drill.pk)
    return queued


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
