"""Alerts: channels, an event registry each app extends, and notifications sent through an outbox.

``alerts.emit()`` and ``alerts.email()`` only write rows (in the caller's transaction) and ask for
delivery once it commits; a Celery task delivers with retries and backoff (``alerts.delivery``).
"""

from __future__ import annotations


def emit(event: str, subject: str, body: str, *, object_ref: str = ""):
    """Queue one alert on every channel that wants ``event``; returns the pending Notifications."""
    # Imported here, not at the top: this package is an INSTALLED_APPS entry, loaded before models are ready.
    from .outbox import emit as _emit

    return _emit(event, subject, body, object_ref=object_ref)


def email(event: str, channel: str, address: str, subject: str, body: str, object_ref: str = ""):
    """Queue an email to one person (a stakeholder, a commander) outside the channels."""
    from .outbox import email as _email

    return _email(event, channel, address, subject, body, object_ref)
