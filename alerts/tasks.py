"""Celery tasks of the outbox, and every enqueue of a delivery (one policy: never raise into the emitter)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from drportal.enqueue import send

from . import delivery
from .models import Notification

logger = logging.getLogger(__name__)

# A retry due within this long is queued with a countdown; a later one is left to the beat sweep
# (every minute), so no worker holds hour-long ETA messages (Redis would redeliver them anyway).
COUNTDOWN_LIMIT_SECONDS = 60


@shared_task(acks_late=True, ignore_result=True)
def deliver(notification_id: int) -> str:
    """Make the next attempt of one notification (a no-op if it is not due or already claimed)."""
    notification = delivery.deliver(notification_id)
    if notification is None:
        return "nothing to do"
    if notification.status == Notification.Status.RETRYING:
        delay = (notification.next_attempt_at - timezone.now()).total_seconds()
        if delay <= COUNTDOWN_LIMIT_SECONDS:
            enqueue_deliveries([notification.pk], countdown=max(delay, 0))
    return notification.status


@shared_task(ignore_result=True)
def sweep() -> int:
    """Beat, every minute: queue every due notification again (a lost message, a dead worker, a retry)."""
    ids = delivery.due_ids()
    enqueue_deliveries(ids)
    return len(ids)


def enqueue_deliveries(ids: list[int], countdown: float = 0) -> None:
    """Hand deliveries to the workers (the core's one enqueue policy); if the broker cannot take them,
    the rows say so and wait for the sweep."""
    failure: list[str] = []
    for position, pk in enumerate(ids):
        if not send(
            deliver,
            (pk,),
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
            on_failure=failure.append,
            countdown=countdown or None,
        ):
            # One unreachable broker is enough to know: the rest wait for the sweep instead of each
            # waiting out the connect timeout again.
            Notification.objects.filter(pk__in=ids[position:], status=Notification.Status.PENDING).update(
                last_error=f"not queued ({failure[0]}); the sweep sends it when the broker is back"
            )
            return
