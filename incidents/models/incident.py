"""Incident response: severities, scenarios, incidents and their timeline, communication and alerts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from backups.fields import EncryptedTextField
from backups.models import validate_name

EVENTS = [
    ("backup_failed", "a backup failed"),
    ("backup_recovered", "a target's backups succeed again"),
    ("verification_failed", "a verification failed"),
    ("objective_late", "an RPO objective is late"),
    ("objective_breached", "an RPO objective is breached (and reminders while it stays so)"),
    ("objective_ok", "an RPO objective is met again"),
    ("status_update", "an incident status update (stakeholders)"),
    ("incident_report_overdue", "a post-incident report is overdue"),
    ("drill_overdue", "a drill is overdue"),
    ("finding_overdue", "a drill finding is overdue"),
    ("review_overdue", "a plan review is overdue"),
    ("probe_down", "a health probe fails"),
    ("probe_up", "a health probe recovers"),
    ("queue_unserved", "a queue with targets has no live worker"),
    ("queue_served", "a queue has a live worker again"),
]


class NotificationChannel(models.Model):
    """Where alerts go: an email list or a Slack-compatible incoming webhook."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook", "webhook (Slack-compatible)"

    name = models.CharField(max_length=63, unique=True, validators=[validate_name])
    kind = models.CharField(max_length=10, choices=Kind.choices)
    email_to = models.TextField(blank=True, help_text="Comma-separated addresses (email channels).")
    webhook_url = EncryptedTextField(
        blank=True, help_text="Incoming-webhook URL (webhook channels). It is a secret: encrypted, never shown."
    )
    events = models.JSONField(default=list, blank=True, help_text="Events to send; empty: all of them.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL and not self.recipients:
            raise ValidationError({"email_to": "An email channel needs at least one address."})
        # A disabled webhook channel may wait for its URL (the plan's ${SLACK_WEBHOOK_URL:-} left unset).
        needs_url = self.enabled or self.webhook_url
        if self.kind == self.Kind.WEBHOOK and needs_url and not self.webhook_url.startswith(("https://", "http://")):
            raise ValidationError({"webhook_url": "A webhook channel needs an http(s) URL."})
        unknown = set(self.events) - {key for key, _ in EVENTS}
        if unknown:
            raise ValidationError({"events": f"Unknown event(s): {', '.join(sorted(unknown))}"})

    @property
    def recipients(self) -> list[str]:
        return [a.strip() for a in self.email_to.split(",") if a.strip()]

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)


class Notification(models.Model):
    """One alert sent (or not) on one channel: failures are data, with the error kept."""

    class Status(models.TextChoices):
        SENT = "sent"
        FAILED = "failed"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    event = models.CharField(max_length=40, db_index=True)
    channel = models.CharField(max_length=80, help_text="Channel name, or settings:email / settings:webhook.")
    kind = models.CharField(max_length=10)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    error = models.TextField(blank=True)
    object_ref = models.CharField(max_length=100, blank=True, help_text="What it is about, e.g. backuprun:42.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} via {self.channel}: {self.status}"


# --- The plan's incident-response configuration ------------------------------------------

# An ongoing customer-facing incident is never "operational" on the status page: the mildest is degraded.
PUBLIC_IMPACTS = [("major", "major outage"), ("partial", "partial outage"), ("degraded", "degraded performance")]


class Severity(models.Model):
    """P1–P4: how bad, how fast to respond, how fast to recover."""

    key = models.CharField(max_length=10, unique=True, help_text="P1, P2, P3, P4")
    name = models.CharField(max_length=40, help_text="Critical, High, Medium, Low")
    description = models.TextField(blank=True)
    examples = models.TextField(blank=True)
    response_time = models.DurationField(
        null=True, blank=True, help_text="How soon someone must respond; empty means immediately."
    )
    target_rto = models.DurationField(help_text="Target recovery time for incidents of this severity.")
    report_due = models.DurationField(
        default=timedelta(hours=24), help_text="Post-incident report due this long after resolution."
    )
    color = models.CharField(max_length=7, default="#7a7a7a", help_text="Badge colour, e.g. #c0392b.")
    order = models.PositiveSmallIntegerField(default=0)
    public_impact = models.CharField(
        max_length=10,
        choices=PUBLIC_IMPACTS,
        default="major",
        help_text="What an open customer-facing incident of this severity shows on the status page's banner "
        "(as a component state would): major outage is red, partial orange, degraded yellow.",
    )

    class Meta:
        ordering = ["order", "key"]
        verbose_name_plural = "severities"

    def __str__(self) -> str:
        return f"{self.key} – {self.name}"

    @property
    def response_time_display(self) -> str:
        if not self.response_time:
            return "immediate"
        hours = self.response_time.total_seconds() / 3600
        return f"< {hours:g} h"


class Scenario(models.Model):
    """A recovery scenario: a runbook with ordered steps and its targets."""

    key = models.CharField(max_length=63, unique=True, validators=[validate_name])
    number = models.PositiveSmallIntegerField(default=0, help_text="Its number in the plan (Scenario 1, 2...).")
    title = models.CharField(max_length=200)
    severity = models.ForeignKey(Severity, on_delete=models.PROTECT, related_name="scenarios")
    target_rto = models.DurationField(null=True, blank=True, help_text="Empty: immediate.")
    target_rpo = models.DurationField(null=True, blank=True)
    impact = models.TextField(blank=True)
    description = models.TextField(blank=True)
    estimated_recovery = models.CharField(max_length=100, blank=True, help_text="e.g. 30-60 minutes")
    targets = models.ManyToManyField(
        "backups.Target",
        blank=True,
        related_name="scenarios",
        help_text="The backed-up data this scenario puts at risk: an incident's data-loss window is measured "
        "from the newest verified copy of these. Empty: it risks no backed-up data (the window stays unknown).",
    )

    class Meta:
        ordering = ["number", "key"]

    def __str__(self) -> str:
        return f"Scenario {self.number}: {self.title}" if self.number else self.title


class ScenarioStep(models.Model):
    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveSmallIntegerField()
    text = models.TextField()
    command = models.TextField(blank=True, help_text="A command to copy, if the step has one.")
    expected_duration = models.DurationField(null=True, blank=True)

    class Meta:
        ordering = ["scenario", "order"]
        constraints = [models.UniqueConstraint(fields=["scenario", "order"], name="one_step_per_position")]

    def __str__(self) -> str:
        return f"{self.order}. {self.text[:60]}"

    def clean(self) -> None:
        # Same check as the plan loader: a typo would otherwise reach responders as a literal "{locaton}".
        from .runbook import PLACEHOLDERS, unknown_placeholders

        unknown = unknown_placeholders(self.command)
        if unknown:
            known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
            raise ValidationError({"command": f"Unknown placeholder(s) {', '.join(unknown)} (known: {known})."})


class ChecklistItemTemplate(models.Model):
    """The plan's incident response checklist; copied onto each incident when it opens."""

    key = models.CharField(max_length=63, unique=True, validators=[validate_name])
    text = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField()
    requires_evidence = models.BooleanField(
        default=False, help_text="May only be ticked with evidence (a linked restore or verification, or a note)."
    )

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.text


class ResponseRole(models.Model):
    """Incident Commander, Technical Lead, Communications Lead, Database Administrator..."""

    name = models.CharField(max_length=80, unique=True)
    responsibilities = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    """A person to call: the plan's emergency contacts."""

    key = models.CharField(
        max_length=63, blank=True, help_text="Its key in the plan ([contacts.KEY]); empty for contacts added here."
    )
    name = models.CharField(max_length=120)
    title = models.CharField(max_length=120, blank=True, help_text="e.g. CTO / Technical Lead")
    phone = models.CharField(max_length=40, blank=True)
    email = models.EmailField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The portal user this contact is, if any.",
    )
    default_role = models.ForeignKey(ResponseRole, null=True, blank=True, on_delete=models.SET_NULL)
    stakeholder = models.BooleanField(default=False, help_text="Receives stakeholder emails on status updates.")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="one_contact_per_plan_key")]

    def __str__(self) -> str:
        return f"{self.name} ({self.title})" if self.title else self.name


class ServiceProvider(models.Model):
    name = models.CharField(max_length=120, unique=True)
    service = models.CharField(max_length=120)
    support_url = models.URLField(blank=True)
    contact = models.CharField(max_length=120, blank=True, help_text="Phone or support email.")
    status_url = models.URLField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# --- Incidents ------------------------------------------------------------------------------


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
                from .runbook import render

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
        if created and restore is not None and restore.run_id:
            self.close_restore_proposals(TimelineEntry.Proposal.CONFIRMED, "confirmed", run_id=restore.run_id)
        if created and restore is not None and restore.status == "succeeded":
            self.job_finished(restore=restore)
        return job

    def job_event(self, text: str) -> None:
        self.log(TimelineEntry.Kind.SYSTEM, text)

    def job_finished(self, *, restore=None) -> None:
        """A linked restore succeeded: that is evidence of recovery (row counts matched the backup)."""
        if restore is None or restore.status != "succeeded":
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
        lapse = f" Unconfirmed, it expires after {expires} or when the incident is resolved." if expires else ""
        return TimelineEntry.objects.create(
            incident=self,
            kind=TimelineEntry.Kind.SYSTEM,
            text=f"Restore of {target.name} as of before {before:%Y-%m-%d %H:%M} UTC proposed: backup run #{run.pk} "
            f"(started {run.started_at:%Y-%m-%d %H:%M} UTC).{lapse}",
            author=user,
            proposed_run=run,
            proposal_state=TimelineEntry.Proposal.AWAITING,
        )

    def close_restore_proposals(self, state: str, why: str, *, run_id: int | None = None, before=None) -> int:
        """Close this incident's awaiting proposals (of ``run_id`` / logged before ``before``), saying why."""
        awaiting = self.timeline.filter(proposal_state=TimelineEntry.Proposal.AWAITING)
        if run_id is not None:
            awaiting = awaiting.filter(proposed_run_id=run_id)
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
    if restore is not None and restore.status != "succeeded":
        raise ValidationError(f"Restore #{restore.pk} has not succeeded ({restore.status}); it is no evidence.")
    if verification is not None and verification.status != "passed":
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

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
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

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="jobs")
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


# --- Communication ------------------------------------------------------------------------


class StatusComponent(models.Model):
    """A component shown on the public status page (API, dashboard, WhatsApp...)."""

    class State(models.TextChoices):
        OPERATIONAL = "operational"
        DEGRADED = "degraded", "degraded performance"
        PARTIAL = "partial", "partial outage"
        MAJOR = "major", "major outage"
        MAINTENANCE = "maintenance", "under maintenance"

    name = models.CharField(max_length=80, unique=True)
    description = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=15, choices=State.choices, default=State.OPERATIONAL)
    order = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class StatusUpdate(models.Model):
    """A public status-page update, also sent to stakeholders; what went out is recorded."""

    class Phase(models.TextChoices):
        INVESTIGATING = "investigating"
        IDENTIFIED = "identified"
        MONITORING = "monitoring"
        RESOLVED = "resolved"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="status_updates")
    at = models.DateTimeField(default=timezone.now)
    phase = models.CharField(max_length=15, choices=Phase.choices, default=Phase.INVESTIGATING)
    message = models.TextField(help_text="Public: customers read this.")
    component_states = models.JSONField(default=dict, blank=True, help_text="Component name → state at this update.")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.get_phase_display()}: {self.message[:60]}"


class PortalSwitch(models.Model):
    """Portal-wide switches flipped during a security incident (one row per switch)."""

    name = models.CharField(max_length=40, unique=True)
    on = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.name}: {'on' if self.on else 'off'}"
