"""Incidents: their lifecycle, and what is copied onto each (runbook steps, checklist, role holders)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .catalog import ChecklistItemTemplate, Contact, ResponseRole, Scenario, Severity
from .timeline import IncidentJob, TimelineEntry


class Incident(models.Model):
    class Status(models.TextChoices):
        DETECTED = "detected"
        INVESTIGATING = "investigating"
        RECOVERING = "recovering"
        MONITORING = "monitoring"
        RESOLVED = "resolved"
        CLOSED = "closed"

    OPEN_STATUSES = ("detected", "investigating", "recovering", "monitoring")

    title = models.CharField(max_length=200)
    severity = models.ForeignKey(Severity, on_delete=models.PROTECT, related_name="incidents")
    scenario = models.ForeignKey(Scenario, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.DETECTED, db_index=True)
    impact_started_at = models.DateTimeField(help_text="When users were first affected (drives RTO and RPO).")
    detected_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True, help_text="When recovery was verified.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_without_recovery = models.TextField(
        "resolved without recovery",
        blank=True,
        help_text="Resolving needs recovery verified, or this: why it was resolved without it "
        "(e.g. false alarm, no data was affected).",
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    follow_up_actions = models.TextField(blank=True)
    customer_facing = models.BooleanField(default=False, help_text="Shown on the public status page.")
    public_title = models.CharField(max_length=200, blank=True, help_text="Title on the status page (default: title).")
    report_due_at = models.DateTimeField(null=True, blank=True)
    report_submitted_at = models.DateTimeField(null=True, blank=True)
    report_reminded_at = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-detected_at"]
        indexes = [models.Index(fields=["status", "-detected_at"], name="incident_status_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(recovered_at__isnull=True) | Q(recovered_at__gte=F("impact_started_at")),
                name="recovered_after_impact",
            )
        ]
        permissions = [
            ("restore_via_incident", "Can start a restore from an incident"),
            ("force_logout", "Can end every portal session"),
            ("toggle_read_only", "Can switch the portal to read-only"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    # --- measures shown everywhere (admin list, incident page, report) ---------------------
    @property
    def target_rto(self) -> timedelta:
        """The RTO the clock runs against: the scenario's when it sets one, else the severity's."""
        if self.scenario_id and self.scenario.target_rto is not None:
            return self.scenario.target_rto
        return self.severity.target_rto

    @property
    def rto_stopped_at(self):
        """When the RTO clock stopped: recovery verified or resolution, whichever came first; None: running."""
        return min((t for t in (self.recovered_at, self.resolved_at) if t), default=None)

    @property
    def rto_stopped_by(self) -> str:
        if self.recovered_at and self.recovered_at == self.rto_stopped_at:
            return "recovery verified"
        if self.resolved_at:
            return "resolved without verified recovery" if not self.recovered_at else "resolved"
        return ""

    @property
    def time_since_impact(self) -> timedelta:
        """The RTO clock: impact start → recovery verified or resolution (or now, while neither happened)."""
        return (self.rto_stopped_at or timezone.now()) - self.impact_started_at

    @property
    def rto_state(self) -> str:
        """met / breached (stopped in or over target), or running: on track / at risk / breached."""
        elapsed, target = self.time_since_impact, self.target_rto
        if self.rto_stopped_at:
            return "met" if elapsed <= target else "breached"
        if elapsed > target:
            return "breached"
        return "at risk" if elapsed >= target * 0.75 else "on track"

    # --- state changes: each writes the timeline ------------------------------------------
    def log(self, kind: str, text: str, *, user=None, at=None, pinned: bool = False) -> TimelineEntry:
        """Add one timeline entry (every change below goes through here)."""
        return TimelineEntry.objects.create(
            incident=self, kind=kind, text=text, author=user, at=at or timezone.now(), pinned=pinned
        )

    @classmethod
    def open(cls, *, user=None, incident: Incident | None = None, **fields) -> Incident:
        """Open an incident (from fields, or an unsaved one a form built) and snapshot its runbook.

        The scenario's steps and the response checklist are copied onto the incident, so editing
        the runbook later never rewrites what this incident's responders saw and ticked.
        """
        incident = incident or cls(**fields)
        if incident.pk:
            raise ValueError("this incident is already open")
        now = timezone.now()
        incident.detected_at = incident.detected_at or now
        incident.impact_started_at = incident.impact_started_at or incident.detected_at
        incident.opened_by = incident.opened_by or user
        with transaction.atomic():
            incident.save()
            if incident.scenario_id:
                from ..runbook import render

                # Commands as responders must type them: the scenario's own target and location names.
                targets = list(incident.scenario.targets.prefetch_related("locations"))
                IncidentStep.objects.bulk_create(
                    IncidentStep(
                        incident=incident,
                        order=step.order,
                        text=step.text,
                        command=render(step.command, targets),
                        expected_duration=step.expected_duration,
                    )
                    for step in incident.scenario.steps.all()
                )
            IncidentChecklistItem.objects.bulk_create(
                IncidentChecklistItem(
                    incident=incident,
                    order=item.order,
                    key=item.key,
                    text=item.text,
                    requires_evidence=item.requires_evidence,
                )
                for item in ChecklistItemTemplate.objects.all()
            )
            scenario = f", scenario {incident.scenario}" if incident.scenario_id else ""
            incident.log(
                TimelineEntry.Kind.STATUS,
                f"Incident opened as {incident.severity}{scenario} "
                f"(impact since {incident.impact_started_at:%Y-%m-%d %H:%M} UTC).",
                user=user,
            )
        return incident

    # Which timestamp each status sets the first time it is reached.
    STATUS_TIMESTAMPS = {"investigating": "acknowledged_at", "resolved": "resolved_at", "closed": "closed_at"}

    def resolution_problem(self, without_recovery: str = "") -> str:
        """Why this incident may not be resolved now ("" when it may): recovery verified, or a stated reason."""
        if self.recovered_at or without_recovery.strip():
            return ""
        return (
            f"Incident #{self.pk} cannot be resolved yet: recovery is not verified. Tick “Recovery verified” "
            "with its evidence (or link a successful restore), or say why it is resolved without recovery."
        )

    def change_status(self, new: str, user=None, *, without_recovery: str = "") -> bool:
        """Move to another status, setting its timestamp; resolving sets when the report is due.

        Resolving (or closing an open incident) stops the RTO clock and needs recovery verified or
        ``without_recovery``, a reason, which is kept on the incident and its timeline. Every way of
        resolving (the admin form, a "Resolved" status update, the resolve page, code) comes through here.
        """
        if new not in self.Status.values:
            raise ValidationError(f"Unknown status {new!r}.")
        if new == self.status:
            return False
        old, now = self.status, timezone.now()
        fields = ["status"]
        without_recovery = (without_recovery or "").strip()
        resolving = new in ("resolved", "closed") and not self.resolved_at
        if resolving:
            problem = self.resolution_problem(without_recovery)
            if problem:
                raise ValidationError(problem)
            if not self.recovered_at and without_recovery != self.resolved_without_recovery:
                self.resolved_without_recovery = without_recovery
                fields.append("resolved_without_recovery")
        self.status = new
        if new in self.OPEN_STATUSES:
            # Reopened: it is no longer resolved or closed, no report is due (or submitted) yet, and the RTO clock
            # runs again; a new resolution needs recovery verified or a new reason, and its report a new submission.
            for name in ("resolved_at", "closed_at", "report_due_at", "report_submitted_at"):
                if getattr(self, name):
                    setattr(self, name, None)
                    fields.append(name)
            if self.resolved_without_recovery:
                self.resolved_without_recovery = ""
                fields.append("resolved_without_recovery")
        if new in ("investigating", "recovering", "monitoring", "resolved", "closed") and not self.acknowledged_at:
            self.acknowledged_at = now
            fields.append("acknowledged_at")
        if new in ("resolved", "closed") and not self.resolved_at:
            self.resolved_at = now
            self.report_due_at = now + self.severity.report_due
            fields += ["resolved_at", "report_due_at"]
        if new == "closed" and not self.closed_at:
            self.closed_at = now
            fields.append("closed_at")
        with transaction.atomic():
            self.save(update_fields=fields)
            text = f"Status: {old} → {new}."
            if "report_due_at" in fields and self.report_due_at:
                text += f" Post-incident report due {self.report_due_at:%Y-%m-%d %H:%M} UTC."
            if resolving:
                text += (
                    f" RTO clock stopped at {self.rto_stopped_at:%Y-%m-%d %H:%M} UTC ({self.rto_stopped_by})."
                    if self.recovered_at
                    else f" Resolved without verified recovery: {without_recovery}"
                )
            self.log(TimelineEntry.Kind.STATUS, text, user=user)
            if resolving:
                self.close_restore_proposals(TimelineEntry.Proposal.CLOSED, f"the incident was {new}")
        return True

    def change_severity(self, new: Severity, user=None) -> bool:
        if new.pk == self.severity_id:
            return False
        old = self.severity
        with transaction.atomic():
            self.severity = new
            fields = ["severity"]
            if self.resolved_at and not self.report_submitted_at:
                self.report_due_at = self.resolved_at + new.report_due
                fields.append("report_due_at")
            self.save(update_fields=fields)
            self.log(TimelineEntry.Kind.SEVERITY, f"Severity: {old} → {new}.", user=user)
        return True

    def assign_role(
        self, role: ResponseRole, *, contact: Contact | None = None, person=None, by=None
    ) -> RoleAssignment:
        """Hand a role to a contact or a portal user; the current holder's assignment ends now."""
        if contact is None and person is None:
            raise ValidationError("Name a contact or a portal user to hold the role.")
        now = timezone.now()
        with transaction.atomic():
            current = (
                RoleAssignment.objects.select_for_update(of=("self",))
                .filter(incident=self, role=role, ended_at__isnull=True)
                .order_by("pk")
                .first()
            )
            if current and current.contact_id == (contact and contact.pk) and current.user_id == (person and person.pk):
                return current
            if current:
                current.ended_at = now
                current.save(update_fields=["ended_at"])
            assignment = RoleAssignment.objects.create(
                incident=self, role=role, contact=contact, user=person, started_at=now, assigned_by=by
            )
            was = f" (was {current.holder})" if current else ""
            self.log(TimelineEntry.Kind.ROLE, f"{role}: {assignment.holder}{was}.", user=by)
        return assignment

    def commander_email(self) -> str:
        """The current Incident Commander's address (their contact's, else their user's); "" when none."""
        holder = (
            self.role_assignments.filter(role__name=COMMANDER_ROLE, ended_at__isnull=True)
            .select_related("contact", "user")
            .first()
        )
        if holder is None:
            return ""
        if holder.contact_id and holder.contact.email:
            return holder.contact.email
        contact_user = holder.contact.user if holder.contact_id else None
        user = holder.user or contact_user
        return user.email if user else ""

    def current_roles(self) -> list[RoleAssignment]:
        return list(self.role_assignments.filter(ended_at__isnull=True).select_related("role", "contact", "user"))

    def tick_checklist(
        self,
        item: IncidentChecklistItem,
        user=None,
        *,
        evidence_note: str = "",
        evidence_restore=None,
        evidence_verification=None,
    ) -> IncidentChecklistItem:
        """Tick a checklist item with who and when; evidence is required where the item says so."""
        if item.incident_id != self.pk:
            raise ValidationError("That checklist item belongs to another incident.")
        if item.done_at:
            return item
        evidence_note = (evidence_note or "").strip()
        check_evidence(item, evidence_note, evidence_restore, evidence_verification)
        now = timezone.now()
        with transaction.atomic():
            item.done_at, item.done_by = now, user
            item.evidence_note = evidence_note
            item.evidence_restore, item.evidence_verification = evidence_restore, evidence_verification
            item.save()
            text = f"Checklist ✓ {item.text}"
            evidence = item.evidence_display
            if evidence:
                text += f" (evidence: {evidence})"
            self.log(TimelineEntry.Kind.CHECKLIST, text + ".", user=user)
            if item.key == RECOVERY_VERIFIED and not self.recovered_at:
                finished = [e.finished_at for e in (evidence_restore, evidence_verification) if e and e.finished_at]
                self.mark_recovered(max(finished) if finished else now)
        return item

    def untick_checklist(self, item: IncidentChecklistItem, user=None) -> None:
        if not item.done_at:
            return
        with transaction.atomic():
            item.done_at = item.done_by = None
            item.save(update_fields=["done_at", "done_by"])
            self.log(TimelineEntry.Kind.CHECKLIST, f"Checklist ✗ {item.text} (unticked).", user=user)

    def mark_recovered(self, at) -> None:
        # Recovery cannot precede the impact (a database constraint says so too).
        self.recovered_at = max(at, self.impact_started_at)
        self.save(update_fields=["recovered_at"])

    def complete_step(self, step: IncidentStep, user=None) -> IncidentStep:
        if step.incident_id != self.pk:
            raise ValidationError("That runbook step belongs to another incident.")
        if step.done_at:
            return step
        with transaction.atomic():
            step.done_at, step.done_by = timezone.now(), user
            step.save(update_fields=["done_at", "done_by"])
            self.log(TimelineEntry.Kind.STEP, f"Runbook step {step.order} done: {step.text.splitlines()[0]}", user=user)
        return step

    def add_note(self, text: str, user=None, *, pinned: bool = False, kind: str = "note") -> TimelineEntry:
        """A person's timeline entry: a note, decision, action or communication (the others are automatic)."""
        text = text.strip()
        if not text:
            raise ValidationError("A timeline entry needs some text.")
        if kind not in TimelineEntry.ENTRY_KINDS:
            raise ValidationError(
                f"Unknown timeline entry kind {kind!r} (one of: {', '.join(TimelineEntry.ENTRY_KINDS)})."
            )
        return self.log(kind, text, user=user, pinned=pinned)

    def link_job(self, *, run=None, verification=None, restore=None, user=None) -> IncidentJob:
        """Link a backup run, verification or restore: its events then go on this timeline."""
        lookup = {"run": run, "verification": verification, "restore": restore}
        if sum(v is not None for v in lookup.values()) != 1:
            raise ValidationError("Link exactly one backup run, verification or restore.")
        with transaction.atomic():
            job, created = IncidentJob.objects.get_or_create(incident=self, **lookup, defaults={"linked_by": user})
            if created:
                obj = run or verification or restore
                self.log(TimelineEntry.Kind.SYSTEM, f"Linked {job} ({obj.status}).", user=user)
        if created and restore is not None and restore.target_id:
            # A restore to a moment confirms the target's proposal even if the time was edited (another backup set).
            self.close_restore_proposals(TimelineEntry.Proposal.CONFIRMED, "confirmed", target_id=restore.target_id)
        elif created and restore is not None and restore.run_id:
            self.close_restore_proposals(TimelineEntry.Proposal.CONFIRMED, "confirmed", run_id=restore.run_id)
        if created and restore is not None and restore.status == restore.Status.SUCCEEDED:
            self.job_finished(restore=restore)
        return job

    def job_event(self, text: str) -> None:
        self.log(TimelineEntry.Kind.SYSTEM, text)

    def job_finished(self, *, restore=None) -> None:
        """A linked restore succeeded: that is evidence of recovery (row counts matched the backup)."""
        if restore is None or restore.status != restore.Status.SUCCEEDED:
            return
        item = self.checklist.filter(key=RECOVERY_VERIFIED, done_at__isnull=True).first()
        if item is not None:
            self.tick_checklist(item, restore.triggered_by, evidence_restore=restore)
        elif not self.recovered_at:
            self.mark_recovered(restore.finished_at or timezone.now())

    # What a post-incident report must say before it may be marked submitted.
    REPORT_FIELDS = (("summary", "summary"), ("root_cause", "root cause"))

    def report_problem(self) -> str:
        """Why the report may not be marked submitted now ("" when it may): resolved, summary and root cause."""
        if not self.resolved_at:
            return f"Incident #{self.pk} is not resolved yet: its post-incident report is submitted after resolution."
        missing = [label for name, label in self.REPORT_FIELDS if not (getattr(self, name) or "").strip()]
        if missing:
            return f"The post-incident report needs its {', '.join(missing)} before it is marked submitted."
        return ""

    def submit_report(self, user=None) -> None:
        """Mark the post-incident report submitted: only for a resolved incident whose report is written."""
        if self.report_submitted_at:
            return
        problem = self.report_problem()
        if problem:
            raise ValidationError(problem)
        self.report_submitted_at = timezone.now()
        self.save(update_fields=["report_submitted_at"])
        self.log(TimelineEntry.Kind.NOTE, "Post-incident report submitted.", user=user)

    # --- restore proposals (the restore helper's "awaiting confirmation" entries) ------------------
    def propose_restore(self, target, run, before, user=None, *, expires: str = "") -> TimelineEntry:
        """Log a proposed restore; it stays "awaiting confirmation" until confirmed, expired or resolved."""
        what = (
            f"Restore of {target.name} as of before {before:%Y-%m-%d %H:%M} UTC proposed: backup run #{run.pk} "
            f"(started {run.started_at:%Y-%m-%d %H:%M} UTC)."
        )
        return self._proposal(what, run, user, expires)

    def propose_restore_to_moment(self, target, moment, label, run, user=None, *, expires: str = "") -> TimelineEntry:
        """Log a proposed restore of ``target`` to ``moment`` (point in time, from backup set ``label``)."""
        source = f"backup set {label}" + (f" (backup run #{run.pk})" if run is not None else "")
        what = (
            f"Restore of {target.name} to {moment:%Y-%m-%d %H:%M:%S} UTC (point in time) proposed: "
            f"{source} plus the WAL archived up to that moment."
        )
        return self._proposal(what, run, user, expires)

    def _proposal(self, what: str, run, user, expires: str) -> TimelineEntry:
        lapse = f" Unconfirmed, it expires after {expires} or when the incident is resolved." if expires else ""
        return TimelineEntry.objects.create(
            incident=self,
            kind=TimelineEntry.Kind.SYSTEM,
            text=what + lapse,
            author=user,
            proposed_run=run,
            proposal_state=TimelineEntry.Proposal.AWAITING,
        )

    def close_restore_proposals(
        self, state: str, why: str, *, run_id: int | None = None, target_id: int | None = None, before=None
    ) -> int:
        """Close this incident's awaiting proposals (of ``run_id`` / of ``target_id``'s runs / logged before
        ``before``), saying why."""
        awaiting = self.timeline.filter(proposal_state=TimelineEntry.Proposal.AWAITING)
        if run_id is not None:
            awaiting = awaiting.filter(proposed_run_id=run_id)
        if target_id is not None:
            awaiting = awaiting.filter(proposed_run__target_id=target_id)
        if before is not None:
            awaiting = awaiting.filter(at__lt=before)
        closed = 0
        with transaction.atomic():
            for entry in awaiting.select_for_update():
                entry.proposal_state = state
                entry.save(update_fields=["proposal_state"])
                if state != TimelineEntry.Proposal.CONFIRMED:
                    run = f"backup run #{entry.proposed_run_id}" if entry.proposed_run_id else "a deleted run"
                    self.log(
                        TimelineEntry.Kind.SYSTEM,
                        f"Restore proposal of {entry.at:%H:%M} UTC ({run}) never confirmed: {why}.",
                    )
                closed += 1
        return closed


# The checklist item that records recovery verified (RTO stops here); it needs evidence.
RECOVERY_VERIFIED = "recovery-verified"
# The checklist item a published status update ticks.
STATUS_PAGE_UPDATED = "status-page-updated"
# The response role whose holder owns the incident (and gets its report reminders).
COMMANDER_ROLE = "Incident Commander"


def check_evidence(item, note: str, restore, verification) -> None:
    """Refuse ticking an evidence-requiring item without a successful restore/verification or a note."""
    if restore is not None and restore.status != restore.Status.SUCCEEDED:
        raise ValidationError(f"Restore #{restore.pk} has not succeeded ({restore.status}); it is no evidence.")
    if verification is not None and verification.status != verification.Status.PASSED:
        raise ValidationError(
            f"Verification #{verification.pk} has not passed ({verification.status}); it is no evidence."
        )
    if item.requires_evidence and not (note or restore or verification):
        raise ValidationError(
            f"“{item.text}” can only be ticked with evidence: link a successful restore or verification, "
            "or write a note saying how recovery was checked."
        )


class IncidentStep(models.Model):
    """A runbook step copied from the scenario when the incident opened."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    text = models.TextField()
    command = models.TextField(blank=True)
    expected_duration = models.DurationField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident", "order"]

    def __str__(self) -> str:
        return f"{self.order}. {self.text[:60]}"


class IncidentChecklistItem(models.Model):
    """A response checklist item copied onto the incident; ticked with who and when."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="checklist")
    order = models.PositiveSmallIntegerField()
    key = models.CharField(max_length=63)
    text = models.CharField(max_length=200)
    requires_evidence = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence_note = models.TextField(blank=True)
    evidence_restore = models.ForeignKey(
        "backups.Restore", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence_verification = models.ForeignKey(
        "backups.Verification", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident", "order"]
        constraints = [models.UniqueConstraint(fields=["incident", "key"], name="one_checklist_item_per_key")]

    def __str__(self) -> str:
        return self.text

    @property
    def evidence_display(self) -> str:
        parts = []
        if self.evidence_restore_id:
            parts.append(f"restore #{self.evidence_restore_id} succeeded")
        if self.evidence_verification_id:
            parts.append(f"verification #{self.evidence_verification_id} passed")
        if self.evidence_note:
            parts.append(self.evidence_note)
        return "; ".join(parts)


class RoleAssignment(models.Model):
    """Who held a response role, from when to when (the hand-off history)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(ResponseRole, on_delete=models.PROTECT)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["incident", "role__order", "-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "role"], condition=Q(ended_at__isnull=True), name="one_current_holder_per_role"
            ),
            models.CheckConstraint(
                condition=Q(contact__isnull=False) | Q(user__isnull=False), name="assignment_names_someone"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.holder}"

    @property
    def holder(self) -> str:
        if self.contact_id:
            return str(self.contact)
        return self.user.get_full_name() or self.user.get_username() if self.user_id else "-"
