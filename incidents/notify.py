"""Sending alerts: Django's mail and Slack-compatible webhooks, each attempt recorded.

A failed delivery never raises into the caller (an alert about a failed backup
must not fail anything else); it is stored as a failed Notification with the
error, filterable in the admin.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail

from .models import Notification, NotificationChannel

logger = logging.getLogger(__name__)


@dataclass
class Channel:
    name: str
    kind: str
    recipients: list[str]
    webhook_url: str


def channels_for(event: str) -> list[Channel]:
    found = [
        Channel(c.name, c.kind, c.recipients, c.webhook_url)
        for c in NotificationChannel.objects.filter(enabled=True)
        if c.wants(event)
    ]
    if settings.ALERT_EMAIL_TO:
        found.append(Channel("settings:email", "email", list(settings.ALERT_EMAIL_TO), ""))
    if settings.ALERT_WEBHOOK_URL:
        found.append(Channel("settings:webhook", "webhook", [], settings.ALERT_WEBHOOK_URL))
    return found


def _post_webhook(url: str, subject: str, body: str) -> None:
    payload = json.dumps({"text": f"*{subject}*\n{body}"}).encode()
    request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        # The URL is a secret (Slack embeds the token in it): name only the failure.
        raise RuntimeError(f"webhook unreachable: {reason}") from None
    if not 200 <= status < 300:
        raise RuntimeError(f"webhook answered HTTP {status}")


def send(event: str, subject: str, body: str, *, object_ref: str = "") -> list[Notification]:
    """Send one alert on every channel that wants this event; returns the records."""
    records = []
    for channel in channels_for(event):
        error = ""
        try:
            if channel.kind == "email":
                send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, channel.recipients, fail_silently=False)
            else:
                _post_webhook(channel.webhook_url, subject, body)
        except Exception as exc:  # every transport has its own errors; all are recorded the same way
            error = str(exc) or type(exc).__name__
            logger.warning("alert %s via %s failed: %s", event, channel.name, error)
        records.append(record(event, channel.name, channel.kind, subject, body, error, object_ref))
    return records


def email(event: str, channel: str, address: str, subject: str, body: str, object_ref: str) -> Notification:
    """Email one person (a stakeholder, a commander) outside the channels; the attempt is recorded the same way."""
    error = ""
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except Exception as exc:  # every transport fails its own way; all are recorded the same
        error = str(exc) or type(exc).__name__
        logger.warning("%s email to %s failed: %s", event, address, error)
    return record(event, channel, "email", subject, body, error, object_ref)


def record(event: str, channel: str, kind: str, subject: str, body: str, error: str, object_ref: str) -> Notification:
    """Store one delivery attempt: sent, or failed with its error."""
    return Notification.objects.create(
        event=event,
        channel=channel[:80],
        kind=kind,
        subject=subject[:300],
        body=body,
        status=Notification.Status.FAILED if error else Notification.Status.SENT,
        error=error,
        object_ref=object_ref,
    )
