"""What is due: drills, findings and plan reviews in the next days, and everything overdue.

Shared by the admin's "Upcoming" page and the dashboard.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.urls import reverse
from django.utils import timezone

from ..models import Drill, Finding, PlanDocument


def upcoming_items(now: datetime | None = None, *, days: int = 30) -> list[dict]:
    """Entries with when, kind, title, detail, url and overdue, soonest first."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    horizon = now + timedelta(days=days)
    entries = []
    for drill in Drill.objects.filter(status__in=Drill.OPEN_STATUSES, due_at__lt=horizon).select_related("activity"):
        entries.append(
            {
                "when": drill.due_at.date(),
                "kind": "drill",
                "title": drill.activity.name,
                "detail": f"{drill.activity.cadence_display}; {drill.get_status_display()}"
                + ("; performed by the portal" if drill.activity.automated else ""),
                "url": reverse("admin:drills_drill_change", args=[drill.pk]),
                "overdue": drill.is_overdue(now),
            }
        )
    for finding in Finding.objects.filter(status__in=Finding.OPEN_STATUSES, due_at__lt=horizon).select_related(
        "owner", "owner_contact"
    ):
        entries.append(
            {
                "when": finding.due_at.date(),
                "kind": "finding",
                "title": finding.title,
                "detail": f"owner: {finding.owner_display}",
                "url": reverse("admin:drills_finding_change", args=[finding.pk]),
                "overdue": finding.is_overdue(now),
            }
        )
    for document in PlanDocument.objects.exclude(status=PlanDocument.Status.RETIRED).filter(
        next_review_at__lt=horizon.date()
    ):
        entries.append(
            {
                "when": document.next_review_at,
                "kind": "review",
                "title": f"Review: {document.title} v{document.version}",
                "detail": f"{document.get_review_cadence_display()}; owner {document.owner}",
                "url": reverse("admin:drills_plandocument_change", args=[document.pk]),
                "overdue": document.is_review_overdue(today),
            }
        )
    entries.sort(key=lambda e: (e["when"], e["kind"], e["title"]))
    return entries
