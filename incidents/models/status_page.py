"""The public status page: its components and the updates posted on it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


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

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="status_updates")
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
