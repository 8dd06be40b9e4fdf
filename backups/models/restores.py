"""Restores: a run (or a moment, for pgBackRest) brought back into something new, or in place."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from drportal.fields import EncryptedTextField

from ..leases import this_process
from .jobs import LeasedJob, TriggeredJob
from .locations import Location
from .runs import BackupRun
from .targets import Target


class RecoveryKind(models.TextChoices):
    TIME = "time", "to a time"
    LSN = "lsn", "to an LSN"
    LATEST = "latest", "to the end of the archived WAL"


class Restore(LeasedJob, TriggeredJob):
    """One restore: where from, where to, what was kept for rollback, and how it ended."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    RecoveryKind = RecoveryKind

    run = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores")
    source = models.CharField(max_length=1000, help_text="Run id, artifact path or s3:// URL restored from.")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    destination = EncryptedTextField(blank=True, help_text="Where it was restored to; empty = the target's source.")
    destination_display = models.CharField(max_length=1000, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    bytes_done = models.BigIntegerField(default=0, help_text="Encrypted bytes restored so far.")
    bytes_total = models.BigIntegerField(default=0)
    format = models.CharField(max_length=40, blank=True)
    scratch_name = models.CharField(
        max_length=1100,  # as long as a destination (1000) plus an S3 restore's token
        blank=True,
        help_text="The new database, file, folder or S3 prefix restored into.",
    )
    rollback_name = models.CharField(
        max_length=1100, blank=True, help_text="Where the previous data was kept; rename it back to roll back."
    )
    swapped_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the restored copy replaced the live data; empty = the live data was never touched.",
    )
    tables = models.JSONField(default=list, blank=True)
    log = models.TextField(blank=True, help_text="What was done, step by step, including how to roll back.")
    error = models.TextField(blank=True)
    # A restore to a moment (pgbackrest targets): what it restores to, into which data directory and port.
    # The worker re-checks the request with these before it touches anything (services/pgbackrest).
    target = models.ForeignKey(
        Target,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="restores",
        help_text="The target restored to a moment (empty for a restore of one run's artifact).",
    )
    recovery_kind = models.CharField(
        max_length=10,
        choices=RecoveryKind.choices,
        blank=True,
        help_text="Restore to a moment: to a time, to an LSN, or to the end of the archived WAL.",
    )
    recovery_target = models.CharField(
        max_length=100, blank=True, help_text="The moment (ISO 8601, with its time zone) or the LSN restored to."
    )
    port = models.PositiveIntegerField(
        null=True, blank=True, help_text="Port of the restored cluster; empty when asked for: a free one."
    )
    keep_running = models.BooleanField(
        default=False,
        help_text="Leave the restored cluster running for a switch-over (else checked, stopped and removed).",
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(recovery_kind="") | Q(target__isnull=False), name="restore_to_a_moment_names_its_target"
            )
        ]

    def __str__(self) -> str:
        return f"restore #{self.pk} from {self.source}: {self.status}"

    @property
    def is_to_a_moment(self) -> bool:
        return bool(self.recovery_kind)

    def mark_swapped(self, at, rollback_name: str) -> None:
        """Record the one moment live data changed, before anything else can fail."""
        self.swapped_at, self.rollback_name = at, rollback_name
        Restore.objects.filter(pk=self.pk).update(swapped_at=at, rollback_name=rollback_name)

    def start(self, worker: str = "") -> bool:
        lease = {"lease_owner": this_process(), **self._renewal()}
        now = lease["heartbeat_at"]
        started = Restore.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.RUNNING, started_at=now, **lease
        )
        if started:
            from ..signals import restore_started

            self.status, self.started_at = self.Status.RUNNING, now
            for name, value in lease.items():
                setattr(self, name, value)
            restore_started.send(sender=Restore, restore=self)
        return bool(started)

    def report_progress(self, done: int) -> None:
        """Bytes restored so far; raises ``LeaseLost`` if this process no longer holds the restore."""
        self.write_held(bytes_done=done, **self._renewal())

    def note(self, line: str) -> None:
        """A step done (itself progress); raises ``LeaseLost`` if no longer held."""
        self.write_held(log=f"{self.log}{timezone.now():%H:%M:%S} {line}\n", **self._renewal())

    def _announce_finish(self) -> None:
        from ..signals import restore_finished

        restore_finished.send(sender=Restore, restore=self)
