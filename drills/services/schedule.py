"""The testing schedule workflow: occurrences generated ahead, overdue flagged, reminders sent.

Run by beat every hour (``drills.tasks.housekeeping``) and safe to run at any time
and from several workers at once: occurrences are unique per activity and due time
in the database, and each reminder is claimed with a conditional UPDATE before it is
sent, so two workers never send the same one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

import alerts
from drportal import humanize

from ..models import Drill, Finding, PlanDocument, TestActivity

logger = logging.getLogger(__name__)


def _link(viewname: str, pk: int) -> str:
    return settings.PORTAL_URL + reverse(viewname, args=[pk])


def targets_for(activity: TestActivity) -> tuple[timedelta | None, timedelta | None]:
    """The RTO and RPO a drill of this activity is measured against."""
    rto = rpo = None
    if activity.scenario_id:
        rto, rpo = activity.scenario.target_rto, activity.scenario.target_rpo
        if rto is None:
            rto = activity.scenario.severity.target_rto
    if activity.automation == TestActivity.Automation.RESTORE_TEST and activity.target_id:
        rpos = [o.rpo for o in activity.target.objectives.filter(enabled=True)]
        rpo = rpo or (min(rpos) if rpos else None)
    return rto, rpo


def create_occurrence(activity: TestActivity, due_at: datetime) -> tuple[Drill, bool]:
    """The drill of ``activity`` due at ``due_at``, created if it does not exist yet."""
    existing = Drill.objects.filter(activity=activity, due_at=due_at).first()
    if existing:
        return existing, False
    rto, rpo = targets_for(activity)
    try:
        with transaction.atomic():
            return Drill.objects.create(activity=activity, due_at=due_at, target_rto=rto, target_rpo=rpo), True
    except IntegrityError:
        # Another worker made it between our read and our insert.
        return Drill.objects.get(activity=activity, due_at=due_at), False


def ensure_next_occurrence(activity: TestActivity, now: datetime | None = None) -> Drill | None:
    """Make sure the activity has an open drill due in the future; returns the one created, if any."""
    now = now or timezone.now()
    if not activity.enabled:
        return None
    if activity.drills.filter(status__in=Drill.OPEN_STATUSES, due_at__gte=now).exists():
        return None
    latest = activity.drills.order_by("-due_at").values_list("due_at", flat=True).first()
    # After the newest drill (an early-done one counts: its successor is next), and never in the past.
    after = max(latest, now - timedelta(microseconds=1)) if latest else now - timedelta(microseconds=1)
    drill, created = create_occurrence(activity, activity.occurrence_after(after))
    if created:
        logger.info("scheduled %s for %s", activity.key, drill.due_at.isoformat())
    return drill if created else None


def ensure_next_occurrences(now: datetime | None = None) -> list[Drill]:
    """Every enabled activity gets its next occurrence; idempotent."""
    now = now or timezone.now()
    created = []
    for activity in TestActivity.objects.filter(enabled=True).select_related("scenario__severity", "target"):
        drill = ensure_next_occurrence(activity, now)
        if drill:
            created.append(drill)
    return created


@dataclass
class Reminders:
    drills: list[int] = field(default_factory=list)
    findings: list[int] = field(default_factory=list)
    documents: list[int] = field(default_factory=list)


def _claim(model, pk: int, now: datetime, due_filter: Q) -> bool:
    """Take the right to send one reminder now: first when overdue, then once per ALERT_REMINDER_SECONDS."""
    since = now - timedelta(seconds=settings.ALERT_REMINDER_SECONDS)
    with transaction.atomic():
        model.objects.filter(due_filter, pk=pk, overdue_since__isnull=True).update(overdue_since=now)
        return bool(
            model.objects.filter(due_filter, pk=pk)
            .filter(Q(reminded_at__isnull=True) | Q(reminded_at__lte=since))
            .update(reminded_at=now)
        )


def remind_overdue(now: datetime | None = None) -> Reminders:
    """Flag what is past due and send the reminders that are due; returns what was reminded."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    sent = Reminders()

    open_drill = Q(status__in=Drill.OPEN_STATUSES, due_at__lt=now)
    for drill in Drill.objects.filter(open_drill).select_related("activity"):
        if _claim(Drill, drill.pk, now, open_drill):
            alerts.emit(
                "drill_overdue",
                f"[DR Portal] Drill overdue: {drill.activity.name} (due {drill.due_at:%Y-%m-%d})",
                f'The {drill.activity.cadence_display} drill "{drill.activity.name}" was due '
                f"{drill.due_at:%Y-%m-%d %H:%M} UTC and is {humanize.duration(now - drill.due_at)} overdue.\n\n"
                f"{_link('admin:drills_drill_change', drill.pk)}",
                object_ref=f"drill:{drill.pk}",
            )
            sent.drills.append(drill.pk)

    open_finding = Q(status__in=Finding.OPEN_STATUSES, due_at__lt=now)
    for finding in Finding.objects.filter(open_finding).select_related("drill__activity", "owner", "owner_contact"):
        if _claim(Finding, finding.pk, now, open_finding):
            alerts.emit(
                "finding_overdue",
                f"[DR Portal] Drill finding overdue: {finding.title}",
                f'Finding "{finding.title}" from {finding.drill} (owner: {finding.owner_display}) was due '
                f"{finding.due_at:%Y-%m-%d} and is still {finding.get_status_display()}.\n\n"
                f"{_link('admin:drills_finding_change', finding.pk)}",
                object_ref=f"finding:{finding.pk}",
            )
            sent.findings.append(finding.pk)

    due_review = Q(next_review_at__lt=today) & ~Q(status=PlanDocument.Status.RETIRED)
    # A document just applied (a fresh install of a plan last reviewed long ago) is shown overdue on the
    # dashboard, but not alerted about until the first grace is over: no alert storm at install.
    grace = settings.FIRST_ALERT_GRACE_SECONDS
    settled = Q(created_at__lte=now - timedelta(seconds=grace)) if grace else Q()
    for document in PlanDocument.objects.filter(due_review & settled):
        if _claim(PlanDocument, document.pk, now, due_review):
            alerts.emit(
                "review_overdue",
                f"[DR Portal] Plan review overdue: {document.title}",
                f'The {document.get_review_cadence_display()} review of "{document.title}" v{document.version} '
                f"(owner: {document.owner}) was due {document.next_review_at:%Y-%m-%d}.\n\n"
                f"{_link('admin:drills_plandocument_change', document.pk)}",
                object_ref=f"plandocument:{document.pk}",
            )
            sent.documents.append(document.pk)

    # Whatever is no longer past due (done, skipped, rescheduled, reviewed) stops being flagged.
    Drill.objects.filter(overdue_since__isnull=False).exclude(open_drill).update(overdue_since=None, reminded_at=None)
    Finding.objects.filter(overdue_since__isnull=False).exclude(open_finding).update(
        overdue_since=None, reminded_at=None
    )
    PlanDocument.objects.filter(overdue_since__isnull=False).exclude(due_review).update(
        overdue_since=None, reminded_at=None
    )
    return sent


def housekeeping(now: datetime | None = None) -> dict:
    """What beat runs: next occurrences, then overdue flags and reminders."""
    now = now or timezone.now()
    created = ensure_next_occurrences(now)
    sent = remind_overdue(now)
    return {
        "created": [d.pk for d in created],
        "reminded_drills": sent.drills,
        "reminded_findings": sent.findings,
        "reminded_documents": sent.documents,
    }


def due_automated_drills(now: datetime | None = None):
    """Scheduled drills the portal performs itself that are due now."""
    now = now or timezone.now()
    return Drill.objects.filter(status=Drill.Status.SCHEDULED, due_at__lte=now, activity__enabled=True).exclude(
        activity__automation=""
    )


def complete(drill: Drill, result: str, *, user=None, now: datetime | None = None, **fields) -> Drill:
    """Record a drill's outcome ("mark done") and schedule the activity's next occurrence."""
    drill.complete(result, user=user, **fields)
    ensure_next_occurrence(drill.activity, now)
    return drill


def skip(drill: Drill, reason: str, *, user=None, now: datetime | None = None) -> Drill:
    drill.skip(reason, user=user)
    ensure_next_occurrence(drill.activity, now)
    return drill
