"""Transports: how one notification reaches its destination. Adding a channel kind is one class here.

A transport raises ``DeliveryError`` (or any exception) on failure; the message is stored on the
Notification as ``last_error``, so it must never contain a secret (a webhook URL carries its token).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail


class DeliveryError(Exception):
    """A delivery attempt failed; the message is safe to store and show."""


@dataclass(frozen=True)
class Destination:
    """Where one notification goes, read at delivery time (secrets are never copied into the row)."""

    recipients: list[str]
    webhook_url: str = ""


class Transport:
    kind: str = ""

    def send(self, destination: Destination, subject: str, body: str) -> None:
        raise NotImplementedError


class EmailTransport(Transport):
    """Django's mail (SMTP when EMAIL_HOST is set)."""

    kind = "email"

    def send(self, destination: Destination, subject: str, body: str) -> None:
        if not destination.recipients:
            raise DeliveryError("no email address to send to")
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, destination.recipients, fail_silently=False)


class WebhookTransport(Transport):
    """A Slack-compatible incoming webhook: POST {"text": ...} as JSON."""

    kind = "webhook"

    def send(self, destination: Destination, subject: str, body: str) -> None:
        if not destination.webhook_url:
            raise DeliveryError("webhook URL is not set")
        payload = json.dumps({"text": f"*{subject}*\n{body}"}).encode()
        request = urllib.request.Request(
            destination.webhook_url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            # The URL is a secret (Slack embeds the token in it): name only the failure.
            raise DeliveryError(f"webhook unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"webhook answered HTTP {status}")


TRANSPORTS: dict[str, Transport] = {t.kind: t for t in (EmailTransport(), WebhookTransport())}


def transport(kind: str) -> Transport:
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise DeliveryError(f"no transport for channel kind {kind!r}") from None
