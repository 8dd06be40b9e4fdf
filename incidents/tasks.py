"""Celery tasks for incidents: thin, they call the services."""

from __future__ import annotations

from celery import shared_task

from .services import reminders


@shared_task
def remind_overdue_reports() -> int:
    """Beat, every 15 minutes: remind once per ALERT_REMINDER_SECONDS while a report is overdue."""
    return reminders.remind_overdue_reports()
