"""Celery tasks for incidents: thin, they call the services."""

from __future__ import annotations

from celery import shared_task

from .services import reminders, security


@shared_task
def remind_overdue_reports() -> int:
    """Beat, every 15 minutes: remind once per ALERT_REMINDER_SECONDS while a report is overdue.

    The same beat entry (registered in incidents.apps) closes restore proposals left
    unconfirmed for longer than security.RESTORE_PROPOSAL_TTL, so none stays "awaiting confirmation" forever.
    """
    security.expire_restore_proposals()
    return reminders.remind_overdue_reports()
