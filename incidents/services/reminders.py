"""Reminders for overdue post-incident reports (queued for email and webhook through alerts)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

import alerts
from drportal import humanize

from ..models import Incident

logger = logging.getLogger(__name__)


def overdue(now: datetime | None = None):
    now = now or timezone.now()
    return Incident.objects.filter(report_due_at__lt=now, report_submitted_at__isnull=True)


def remind_overdue_reports(now: datetime | None = None) -> int:
    """Send "incident_report_overdue" for each overdue report not reminded within the interval."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ALERT_REMINDER_SECONDS)
    sent = 0
    for incident in overdue(now).filter(Q(report_reminded_at__isnull=True) | Q(report_reminded_at__lt=cutoff)):
        # Claimed with a conditional UPDATE: two beat runs (or two workers) never both remind.
        claimed = (
            Incident.objects.filter(pk=incident.pk)
            .filter(Q(report_reminded_at__isnull=True) | Q(report_reminded_at__lt=cutoff))
            .update(report_reminded_at=now)
        )
        if not claimed:
            continue
        late = now - incident.report_due_at
        url = settings.PORTAL_URL + reverse("admin:incidents_incident_change", args=[incident.pk])
        subject = f"[DR Portal] Post-incident report for #{incident.pk} {incident.title} is overdue"
        body = (
            f"The report for incident #{incident.pk} ({incident.severity}) was due "
            f"{incident.report_due_at:%Y-%m-%d %H:%M} UTC ({humanize.duration(late)} ago).\n\n{url}"
        )
        ref = f"incident:{incident.pk}"
        alerts.emit("incident_report_overdue", subject, body, object_ref=ref)
        # The commander owns the report: they hear it themselves, not only through the team's channel.
        address = incident.commander_email()
        if address:
            alerts.email("incident_report_overdue", f"commander:{address}", address, subject, body, ref)
        sent += 1
    return sent
