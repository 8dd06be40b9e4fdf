"""Celery tasks of the outbox, and every enqueue of a delivery (one policy: never raise into the emitter)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

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
    """Hand deliveries to the workers; if the broker cannot take them, the rows say so and wait for the sweep."""
    for pk in ids:
        try:
            deliver.apply_async((pk,), countdown=countdown or None, retry=False)
        except Exception as exc:  # kombu raises transport-specific errors; the emitter must never see them
            logger.warning("delivery of notification %s not queued: %s", pk, type(exc).__name__)
            Notification.objects.filter(pk=pk, status=Notification.Status.PENDING).update(
                last_error=f"not queued ({type(exc).__name__}: the broker is unreachable); "
                "the sweep sends it when the broker is back"
            )
