"""The portal's own health: worker heartbeats and probes of the plan's health-check URLs."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Heartbeat(models.Model):
    """A worker's "I am alive", written every few seconds by a bootstep in each worker."""

    name = models.CharField(max_length=200, unique=True, help_text="worker@host")
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%H:%M:%S}"


class Probe(models.Model):
    """An HTTP health check from the plan ("Health Check URLs")."""

    class State(models.TextChoices):
        UNKNOWN = "unknown"
        UP = "up"
        DOWN = "down"

    name = models.CharField(max_length=63, unique=True)
    url = models.URLField(max_length=500)
    expected_status = models.PositiveSmallIntegerField(default=200)
    json_field = models.CharField(
        max_length=100, blank=True, help_text="A field of the JSON answer that must be true, e.g. redis."
    )
    interval = models.DurationField(default=timedelta(minutes=1))
    timeout = models.DurationField(default=timedelta(seconds=10))
    component = models.ForeignKey(
        "incidents.StatusComponent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="probes",
        help_text="Status-page component this probe speaks for.",
    )
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.UNKNOWN, db_index=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_check_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(interval__gte=timedelta(seconds=5)), name="probe_interval_min_5s"),
            models.CheckConstraint(condition=Q(timeout__gt=timedelta(0)), name="probe_timeout_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class ProbeResult(models.Model):
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="results")
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["probe", "-at"], name="probe_result_recent")]

    def __str__(self) -> str:
        return f"{self.probe_id} {'ok' if self.ok else 'failed'} at {self.at:%H:%M:%S}"


class ProbeChange(models.Model):
    probe = models.ForeignKey(Probe, on_delete=models.CASCADE, related_name="changes")
    at = models.DateTimeField()
    from_state = models.CharField(max_length=10, choices=Probe.State.choices)
    to_state = models.CharField(max_length=10, choices=Probe.State.choices)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.probe}: {self.from_state} → {self.to_state}"
