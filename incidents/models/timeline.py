"""An incident's timeline and the backup jobs linked to it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TimelineEntry(models.Model):
    class Kind(models.TextChoices):
        # What a commander writes (ENTRY_KINDS); the others are written by the incident's own changes and jobs.
        NOTE = "note"
        DECISION = "decision"
        ACTION = "action"
        STATUS = "status", "status change"
        SEVERITY = "severity", "severity change"
        ROLE = "role", "role change"
        CHECKLIST = "checklist", "checklist"
        STEP = "step", "runbook step"
        COMMUNICATION = "communication"
        SYSTEM = "system", "system event"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=15, choices=Kind.choices, default=Kind.NOTE)
    text = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pinned = models.BooleanField(default=False)

    class Proposal(models.TextChoices):
        AWAITING = "awaiting", "awaiting confirmation"
        CONFIRMED = "confirmed", "confirmed"
        EXPIRED = "expired", "expired unconfirmed"
        CLOSED = "closed", "closed unconfirmed (incident resolved)"

    # Set on the restore helper's proposals only: which run, and whether it went ahead (never "awaiting" forever).
    proposed_run = models.ForeignKey(
        "backups.BackupRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposal_state = models.CharField(max_length=10, choices=Proposal.choices, blank=True, db_index=True)

    # The kinds a person may pick when adding to the timeline.
    ENTRY_KINDS = ("note", "decision", "action", "communication")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.at:%H:%M} {self.text[:60]}"


class IncidentJob(models.Model):
    """A backup, verification or restore linked to an incident: its events go on the timeline."""

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="jobs")
    run = models.ForeignKey("backups.BackupRun", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    verification = models.ForeignKey(
        "backups.Verification", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    restore = models.ForeignKey("backups.Restore", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    linked_at = models.DateTimeField(default=timezone.now)
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-linked_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(run__isnull=False, verification__isnull=True, restore__isnull=True)
                    | Q(run__isnull=True, verification__isnull=False, restore__isnull=True)
                    | Q(run__isnull=True, verification__isnull=True, restore__isnull=False)
                ),
                name="incident_job_links_exactly_one",
            )
        ]

    def __str__(self) -> str:
        if self.run_id:
            return f"backup run #{self.run_id}"
        if self.verification_id:
            return f"verification #{self.verification_id}"
        return f"restore #{self.restore_id}"
