"""RPO objectives, their state changes and the pings that feed them."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from drportal.validators import validate_name  # also imported from here by migrations: keep this name

from .targets import Target


def new_ping_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


class Objective(models.Model):
    """A recovery point objective: how old the newest good copy of some data may be."""

    class State(models.TextChoices):
        UNKNOWN = "unknown"
        OK = "ok"
        LATE = "late"
        BREACHED = "breached"

    name = models.CharField(max_length=63, unique=True, validators=[validate_name])
    description = models.TextField(blank=True)
    rpo = models.DurationField(help_text="Target RPO: the newest good copy may be at most this old.")
    grace = models.DurationField(
        null=True, blank=True, help_text="How long past the RPO counts as late before breached (default 10%)."
    )
    targets = models.ManyToManyField(
        Target, blank=True, related_name="objectives", help_text="Every one of these must have a fresh verified copy."
    )
    ping = models.BooleanField(
        default=False, help_text="Fed by pings from outside (WAL archiving, log shipping) instead of targets."
    )
    ping_token = models.CharField(max_length=64, unique=True, default=new_ping_token, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.UNKNOWN, db_index=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_good_at = models.DateTimeField(null=True, blank=True, help_text="Recovery point of the newest good copy.")
    exposure_seconds = models.FloatField(null=True, blank=True, help_text="Data-loss window if disaster struck now.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="Starts the first-backup grace period (FIRST_ALERT_GRACE_SECONDS).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(rpo__gt=timedelta(0)), name="objective_rpo_positive")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # In words, on the field: otherwise the form shows the database constraint's name.
        if self.rpo is not None and self.rpo <= timedelta(0):
            raise ValidationError({"rpo": "The RPO must be longer than zero (e.g. 1:00:00 for one hour)."})
        if self.grace is not None and self.grace < timedelta(0):
            raise ValidationError({"grace": "The grace period cannot be negative."})

    @property
    def effective_grace(self) -> timedelta:
        return self.grace if self.grace is not None else self.rpo / 10

    @property
    def first_backup_grace_ends_at(self):
        return self.created_at + timedelta(seconds=settings.FIRST_ALERT_GRACE_SECONDS)

    def waiting_for_first_copy(self, exposure: timedelta | None, now) -> bool:
        """No good copy yet, but the objective is new: its first backup (or ping) may simply not have come yet.

        Still not safe (/health fails on it), but not an alarm: no breach alert and no reminders
        until the grace period from the objective's creation is over.
        """
        grace = settings.FIRST_ALERT_GRACE_SECONDS  # 0: no grace at all
        return bool(grace) and exposure is None and now < self.first_backup_grace_ends_at

    def state_for(self, exposure: timedelta | None, now=None) -> str:
        """The state to store; with ``now``, an objective waiting for its first copy stays unknown, not breached."""
        if exposure is None:
            if now is not None and self.waiting_for_first_copy(exposure, now):
                return self.State.UNKNOWN
            return self.State.BREACHED
        if exposure <= self.rpo:
            return self.State.OK
        if exposure <= self.rpo + self.effective_grace:
            return self.State.LATE
        return self.State.BREACHED


class ObjectiveChange(models.Model):
    """A state change of an objective: the history of breaches."""

    objective = models.ForeignKey(Objective, on_delete=models.CASCADE, related_name="changes")
    at = models.DateTimeField(db_index=True)
    from_state = models.CharField(max_length=10, choices=Objective.State.choices)
    to_state = models.CharField(max_length=10, choices=Objective.State.choices)
    exposure_seconds = models.FloatField(null=True, blank=True)
    last_good_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["objective", "-at"], name="objective_change_recent")]

    def __str__(self) -> str:
        return f"{self.objective}: {self.from_state} → {self.to_state} at {self.at:%Y-%m-%d %H:%M}"


class Ping(models.Model):
    """A report from an external feed (WAL archiver, log shipper) that its data is safe up to now."""

    objective = models.ForeignKey(Objective, on_delete=models.CASCADE, related_name="pings")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    body = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["objective", "-received_at"], name="ping_recent")]

    def __str__(self) -> str:
        return f"ping of {self.objective_id} at {self.received_at:%Y-%m-%d %H:%M:%S}"
