"""Alert channels and the notifications sent on them (moving to the alerts app)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
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
