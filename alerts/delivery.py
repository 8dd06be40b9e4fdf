"""Delivering the outbox: claim one attempt, send it outside any transaction, record the outcome.

Called by the Celery task ``alerts.tasks.deliver`` (and by ``deliver_due()`` for a synchronous
pass). Idempotent: the claim is a conditional UPDATE, so a row delivered twice by the broker (a
redelivery, the sweep, two workers) is sent once per attempt.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from .channels import DeliveryError, Destination, transport
from .models import Notification
from .signals import delivery_attempted

logger = logging.getLogger(__name__)

# The sweep leaves a just-written row to the task its emitter queued for this long before
# queuing it again (a duplicate would be a no-op, but need not be sent at all).
SWEEP_GRACE = timedelta(seconds=30)


def destination(notification: Notification) -> Destination:
    """Where it goes, read now: a secret (a webhook URL) is never copied into the notification."""
    if notification.recipient:
        return Destination([notification.recipient])
    if notification.channel == "settings:email":
        return Destination(list(settings.ALERT_EMAIL_TO))
    if notification.channel == "settings:webhook":
        return Destination([], settings.ALERT_WEBHOOK_URL)
    if notification.via is None:
        raise DeliveryError(f"channel {notification.channel} no longer exists")
    return Destination(notification.via.recipients, notification.via.webhook_url)


def deliver(notification_id: int, now: datetime | None = None) -> Notification | None:
    """Make the next attempt of one notification if it is due and nobody else holds it.

    Returns the notification with its outcome, or None when there was nothing to do (delivered,
    given up, not due yet, or claimed by another worker).
    """
    now = now or timezone.now()
    notification = Notification.objects.select_related("via").filter(pk=notification_id).first()
    if notification is None or not notification.claim(now):
        return None
    try:
        transport(notification.kind).send(destination(notification), notification.subject, notification.body)
    except Exception as exc:  # every transport fails its own way; all are recorded the same
        error = str(exc) or type(exc).__name__
        notification.attempt_failed(error, now)
        logger.warning(
            "alert %s via %s: attempt %d failed (%s), %s",
            notification.event,
            notification.channel,
            notification.attempts,
            error,
            "gave up"
            if notification.status == Notification.Status.FAILED
            else f"next at {notification.next_attempt_at}",
        )
    else:
        notification.succeeded(now)
    delivery_attempted.send(sender=Notification, notification=notification)
    return notification


def due_ids(now: datetime | None = None, grace: timedelta = SWEEP_GRACE) -> list[int]:
    """Notifications the sweep should queue: due for a while, so not just handed to a worker."""
    now = now or timezone.now()
    return list(Notification.objects.due(now - grace).order_by("next_attempt_at").values_list("pk", flat=True))


def deliver_due(now: datetime | None = None) -> list[Notification]:
    """Deliver every due notification here and now (tests, and a worker-less install's command)."""
    now = now or timezone.now()
    done = []
    for pk in Notification.objects.due(now).order_by("next_attempt_at").values_list("pk", flat=True):
        outcome = deliver(pk, now)
        if outcome is not None:
            done.append(outcome)
    return done
