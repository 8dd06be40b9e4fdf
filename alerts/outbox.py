"""Writing alerts: one pending Notification per channel that wants the event, delivered later.

``emit()`` runs in the caller's transaction and never touches the network: the rows are the
outbox, and their delivery is asked for when the transaction commits (nothing is sent for an
alert whose transaction rolled back). If the broker cannot take the job, the row stays pending,
says so in ``last_error``, and the beat sweep sends it when the broker is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Channel, Notification

logger = logging.getLogger(__name__)

# Set by alerts' AppConfig.ready() to alerts.tasks.enqueue_deliveries: tasks own every enqueue,
# and this service module does not import them.
_enqueue: Callable[[list[int]], None] | None = None


def set_enqueuer(enqueue: Callable[[list[int]], None]) -> None:
    global _enqueue
    _enqueue = enqueue


@dataclass(frozen=True)
class Route:
    """One way an alert leaves: a channel row, or a settings channel (ALERT_EMAIL_TO, ALERT_WEBHOOK_URL)."""

    name: str
    kind: str
    via: Channel | None = None


def routes_for(event: str) -> list[Route]:
    found = [Route(c.name, c.kind, c) for c in Channel.objects.filter(enabled=True) if c.wants(event)]
    if settings.ALERT_EMAIL_TO:
        found.append(Route("settings:email", Channel.Kind.EMAIL))
    if settings.ALERT_WEBHOOK_URL:
        found.append(Route("settings:webhook", Channel.Kind.WEBHOOK))
    return found


def emit(event: str, subject: str, body: str, *, object_ref: str = "") -> list[Notification]:
    """Queue one alert on every channel that wants ``event``; returns the pending Notifications."""
    now = timezone.now()
    records = [
        _write(event, route.name, route.kind, subject, body, object_ref, now, via=route.via)
        for route in routes_for(event)
    ]
    _deliver_on_commit(records)
    return records


def email(event: str, channel: str, address: str, subject: str, body: str, object_ref: str = "") -> Notification:
    """Queue an email to one person (a stakeholder, a commander) outside the channels."""
    record = _write(event, channel, Channel.Kind.EMAIL, subject, body, object_ref, timezone.now(), recipient=address)
    _deliver_on_commit([record])
    return record


def _write(event, channel, kind, subject, body, object_ref, now, *, via=None, recipient="") -> Notification:
    return Notification.objects.create(
        created_at=now,
        event=event,
        channel=channel[:80],
        via=via,
        recipient=recipient,
        kind=kind,
        subject=subject[:300],
        body=body,
        status=Notification.Status.PENDING,
        next_attempt_at=now,
        object_ref=object_ref[:100],
    )


def _deliver_on_commit(records: list[Notification]) -> None:
    if not records:
        return
    if _enqueue is None:  # alerts' ready() has not run (a script without django.setup()): the sweep sends them
        logger.warning("alerts: no enqueuer registered; %d notification(s) wait for the sweep", len(records))
        return
    ids = [r.pk for r in records]
    transaction.on_commit(lambda: _enqueue(ids))
