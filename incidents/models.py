"""Incident response: severities, scenarios, incidents and their timeline, communication and alerts."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
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
        if self.kind == self.Kind.WEBHOOK and not self.webhook_url.startswith(("https://", "http://")):
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
        NOTE = "note"
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
