"""The portal's own health: worker heartbeats and probes of the plan's health-check URLs."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Heartbeat(models.Model):
    """A worker's or beat's "I am alive", written every few seconds.

    Workers say where they run and what they serve (host, queues, the ``env:`` names of
    targets' sources they can see, never the values). The row named ``beat`` is also the
    scheduler lease: ``holder`` is the one beat allowed to schedule; other beats write a
    ``standby-beat`` row of their own and idle.
    """

    class Kind(models.TextChoices):
        WORKER = "worker"
        BEAT = "beat"
        STANDBY_BEAT = "standby-beat", "standby beat"

    name = models.CharField(max_length=200, unique=True, help_text="worker@host")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.WORKER, db_index=True)
    seen_at = models.DateTimeField()
    host = models.CharField(max_length=200, blank=True, help_text="The machine it runs on.")
    queues = models.JSONField(default=list, blank=True, help_text="Queues this worker consumes.")
    env_names = models.JSONField(
        default=list, blank=True, help_text="env: names of targets' sources set on this worker (names only)."
    )
    holder = models.CharField(
        max_length=200, blank=True, help_text="Beat: host:pid of the beat that holds the scheduler lease."
    )

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%H:%M:%S}"


# Catches typos (1000 for 10): a probe checked every minute and waiting longer than this
# before "down" would keep quiet through an outage of well over an hour.
MAX_FAILURES_BEFORE_DOWN = 100


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
    failures_before_down = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_FAILURES_BEFORE_DOWN)],
        help_text="Failed checks in a row before the probe counts as down and alerts; one success brings it back up.",
    )
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
    consecutive_failures = models.PositiveIntegerField(
        default=0, editable=False, help_text="Failed checks in a row up to the last one; 0 after a success."
    )
    next_check_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(interval__gte=timedelta(seconds=5)), name="probe_interval_min_5s"),
            models.CheckConstraint(condition=Q(timeout__gt=timedelta(0)), name="probe_timeout_positive"),
            models.CheckConstraint(
                condition=Q(failures_before_down__gte=1, failures_before_down__lte=MAX_FAILURES_BEFORE_DOWN),
                name="probe_failures_before_down_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # In words, on the fields: otherwise the form shows the database constraints' names.
        errors = {}
        if self.interval is not None and self.interval < timedelta(seconds=5):
            errors["interval"] = "Check at most every 5 seconds (e.g. 0:01:00 for once a minute)."
        if self.timeout is not None and self.timeout <= timedelta(0):
            errors["timeout"] = "The timeout must be longer than zero (e.g. 0:00:10)."
        if errors:
            raise ValidationError(errors)

    def record(self, *, ok: bool, error: str, at: datetime) -> str:
        """Apply one check's result to this row (locked by the caller) and save it; returns the state before.

        Up on the first success, so a recovery is announced at once; down only after
        ``failures_before_down`` failures in a row, so one blip pages nobody. The very first
        result sets the state either way: a new probe is not left "unknown" while failing.
        """
        previous = self.state
        self.last_checked_at, self.next_check_at, self.last_error = at, at + self.interval, error
        if ok:
            self.last_ok_at, self.consecutive_failures = at, 0
            state = self.State.UP
        else:
            self.consecutive_failures += 1
            failing_long_enough = self.consecutive_failures >= self.failures_before_down
            state = self.State.DOWN if failing_long_enough or previous == self.State.UNKNOWN else previous
        if state != previous:
            self.state, self.state_changed_at = state, at
            ProbeChange.objects.create(probe=self, at=at, from_state=previous, to_state=state, error=error)
        self.save()
        return previous


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


class PlanManaged(models.Model):
    """A row ``applyplan`` created or updated from the plan file, and which of its fields the file sets.

    Those fields are the plan's: an edit anywhere else (the admin, a command, a view) is refused
    with "managed by <file>: change it there and run applyplan" (``drportal.plan``), instead of being
    silently undone by the next apply. A row the plan file no longer lists is released at the next apply.
    """

    content_type = models.ForeignKey("contenttypes.ContentType", on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    fields = models.JSONField(default=list, help_text="The fields (and relations) the plan file sets.")
    file = models.CharField(max_length=500, help_text="The plan file that manages it, as applyplan was given it.")
    applied_at = models.DateTimeField(help_text="When applyplan last applied it.")

    class Meta:
        verbose_name = "plan-managed object"
        constraints = [
            models.UniqueConstraint(fields=["content_type", "object_id"], name="one_plan_record_per_object"),
        ]

    def __str__(self) -> str:
        return f"{self.content_type.app_label}.{self.content_type.model} #{self.object_id} ({self.file})"
