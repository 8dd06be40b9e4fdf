"""Backup runs and their copies (artifacts), and the queues the watcher follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from ..leases import this_process
from ..querysets import BackupRunQuerySet
from .jobs import LeasedJob, TriggeredJob
from .locations import Location
from .targets import Target


@dataclass(frozen=True)
class Progress:
    """A running job's phase in numbers (see ``BackupRun.estimate``)."""

    phase: str
    done: int
    total: int | None
    percent: int | None
    where: str = ""
    rate: float | None = None  # bytes per second in this phase so far
    seconds_left: float | None = None


class BackupRun(LeasedJob, TriggeredJob):
    """One backup of one target: its state, progress, checksum and error."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        # The artifact was made and landed in at least one location, and at least one other location
        # failed (named in ``error``). The landed copies are good backups: verified, restorable, RPO credit.
        PARTIAL = "partial", "partial (a location failed)"
        FAILED = "failed"

    # A finished run whose artifact is complete and was stored somewhere: what verify, restore and RPO accept.
    WITH_ARTIFACT = (Status.SUCCEEDED, Status.PARTIAL)

    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress report from the worker.")
    worker = models.CharField(max_length=200, blank=True)
    queue = models.CharField(max_length=100, blank=True, help_text="The Celery queue it was sent to (the target's).")
    sent_as = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Scheduled runs: the id of beat's message that made it, so a redelivered message "
        "(its worker died) reuses this run instead of making a second one.",
    )
    phase = models.CharField(
        max_length=80,
        blank=True,
        help_text="What it was doing at its last report: dump, copy:LOCATION or manifest:LOCATION.",
    )
    phase_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the current phase began: its throughput, and so its time left."
    )
    copied = models.JSONField(default=dict, blank=True, help_text="Encrypted bytes sent so far to each location.")
    bytes_in = models.BigIntegerField(default=0, help_text="Bytes read from the source so far.")
    bytes_out = models.BigIntegerField(default=0, help_text="Encrypted bytes written so far.")
    sha256 = models.CharField(max_length=64, blank=True)
    engine = models.CharField(max_length=20, blank=True)
    format = models.CharField(max_length=40, blank=True, help_text="What the decrypted, decompressed stream is.")
    compression = models.CharField(max_length=10, blank=True)
    compression_level = models.SmallIntegerField(null=True, blank=True)
    key_ids = models.JSONField(default=list, blank=True, help_text="Ids of the age recipients it is encrypted to.")
    recipients = models.JSONField(default=list, blank=True, help_text="age public keys it is encrypted to.")
    tables = models.JSONField(default=dict, blank=True, help_text="Row count of each table at backup time.")
    error = models.TextField(blank=True)

    objects = BackupRunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["target", "-queued_at"], name="run_target_recent")]
        constraints = [
            # The database itself guarantees one running backup per target.
            models.UniqueConstraint(
                fields=["target"], condition=Q(status="running"), name="one_running_backup_per_target"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["succeeded", "partial"]) | ~Q(sha256=""), name="stored_run_has_checksum"
            ),
            models.UniqueConstraint(fields=["sent_as"], condition=~Q(sent_as=""), name="one_run_per_beat_message"),
        ]
        permissions = [
            ("run_backup", "Can start a backup"),
            ("verify_backuprun", "Can verify a backup and run restore tests"),
            ("restore_backuprun", "Can restore a backup over live data"),
        ]

    def __str__(self) -> str:
        # No status: a name is shown in headings and the history, where a status would go stale.
        return f"#{self.pk} {self.target_id and self.target.name}"

    # --- state changes ---------------------------------------------------------------
    @classmethod
    def enqueue(
        cls, target: Target, *, trigger: str, user=None, command_user: str = "", sent_as: str = ""
    ) -> BackupRun:
        return cls.objects.create(
            target=target,
            queue=target.queue,
            trigger=trigger,
            triggered_by=user,
            command_user=command_user,
            sent_as=sent_as,
        )

    def claim(self, worker: str) -> bool:
        """Move queued → running atomically; False if it was taken or another run is active."""
        from django.db import IntegrityError

        lease = self._renewal("dump")
        try:
            with transaction.atomic():
                claimed = BackupRun.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
                    status=self.Status.RUNNING,
                    started_at=lease["heartbeat_at"],
                    worker=worker[:200],
                    lease_owner=this_process(),
                    phase="dump",
                    phase_started_at=lease["heartbeat_at"],
                    **lease,
                )
        except IntegrityError:
            return False
        if claimed:
            from ..signals import backup_started

            self.refresh_from_db()
            backup_started.send(sender=BackupRun, run=self)
        return bool(claimed)

    def report_progress(self, bytes_in: int, bytes_out: int) -> None:
        """Dump progress; raises ``LeaseLost`` if this process no longer holds the run."""
        self.write_held(bytes_in=bytes_in, bytes_out=bytes_out, **self._renewal(self.phase))

    def enter_phase(self, phase: str) -> None:
        """Record the new phase (itself progress); raises ``LeaseLost`` if no longer held, before any write."""
        renewal = self._renewal(phase)
        self.write_held(phase=phase, phase_started_at=renewal["heartbeat_at"], **renewal)

    def report_copy(self, location: str, sent: int) -> None:
        """Bytes sent so far to ``location``; raises ``LeaseLost`` if no longer held."""
        self.write_held(copied={**self.copied, location: sent}, **self._renewal(self.phase))

    def record(self, **fields) -> None:
        """Save results (sizes, checksum...) while held; raises ``LeaseLost`` otherwise."""
        self.write_held(**fields)

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.PARTIAL, self.Status.FAILED)

    # --- progress, for people ----------------------------------------------------------
    def expected_bytes_in(self) -> int | None:
        """What the dump should read: the size of the target's newest stored run before this one (None: no such run)."""
        previous = (
            BackupRun.objects.with_artifact()
            .filter(target_id=self.target_id, bytes_in__gt=0)
            .exclude(pk=self.pk)
            .order_by("-queued_at", "-id")
            .values_list("bytes_in", flat=True)
            .first()
        )
        return previous or None

    def estimate(self, expected_bytes_in: int | None = None, now: datetime | None = None) -> Progress:
        """Where the current phase stands: bytes done of how many, percent, throughput and time left.

        The dump is measured against ``expected_bytes_in`` (the previous stored run's size, see
        :meth:`expected_bytes_in`), a copy against the artifact's size. Throughput is the phase's bytes
        so far over the time since it began, up to the last progress report (when they were counted);
        the time left is what remains at that rate. No total or no throughput yet: no percent, no time left.
        """
        kind, _, where = self.phase.partition(":")
        if self.status in self.WITH_ARTIFACT:
            return Progress(phase="done", done=self.bytes_in, total=self.bytes_in, percent=100)
        if self.status != self.Status.RUNNING:
            return Progress(
                phase=self.status, done=self.bytes_in, total=None, percent=None if self.status == "queued" else 0
            )
        if kind == "manifest":
            return Progress(phase=kind, where=where, done=self.bytes_out, total=self.bytes_out, percent=99)
        if kind == "copy":
            done, total = (self.copied or {}).get(where, 0), self.bytes_out or None
        else:
            kind, done, total = "dump", self.bytes_in, expected_bytes_in
        began = self.phase_started_at or self.started_at
        measured = self.heartbeat_at or now or timezone.now()
        elapsed = (measured - began).total_seconds() if began else 0
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        percent = min(99, int(100 * done / total)) if total else None
        left = max(0.0, (total - done) / rate) if total and rate else None
        return Progress(phase=kind, where=where, done=done, total=total, percent=percent, rate=rate, seconds_left=left)

    def finish_partial(self, error: str, **fields) -> None:
        """Some locations hold a copy, others failed (``error`` names them)."""
        self._finish(self.Status.PARTIAL, error=error[:10000], **fields)

    def copies_summary(self) -> str:
        """What this run has stored, in words: "no copy was recorded" or "2 copies were recorded: a (url), b (url)"."""
        copies = [a for a in self.artifacts.select_related("location") if a.status == Artifact.Status.STORED]
        if not copies:
            return "no copy was recorded"
        where = ", ".join(f"{a.location.name} ({a.url})" for a in sorted(copies, key=lambda a: a.location.name))
        return f"{len(copies)} cop{'y was' if len(copies) == 1 else 'ies were'} recorded: {where}"

    def _announce_finish(self) -> None:
        from ..signals import backup_finished

        backup_finished.send(sender=BackupRun, run=self)


class WatchedQueue(models.Model):
    """Whether a queue with targets had a live worker at the last look, so alerts fire on changes only."""

    queue = models.CharField(max_length=100, unique=True)
    served = models.BooleanField()
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["queue"]

    def __str__(self) -> str:
        return f"{self.queue}: {'served' if self.served else 'NO WORKER'}"


class Artifact(models.Model):
    """One stored copy of a run's encrypted stream, in one location."""

    class Status(models.TextChoices):
        STORED = "stored"
        DELETED = "deleted"

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="artifacts")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="artifacts")
    key = models.CharField(max_length=500, help_text="Object key inside the location.")
    url = models.CharField(max_length=1000)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_class = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STORED, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["location__name"]
        constraints = [models.UniqueConstraint(fields=["run", "location"], name="one_copy_per_location")]

    def __str__(self) -> str:
        return self.url

    def mark_deleted(self) -> None:
        """Record that this copy is gone from its location, as history (status "deleted").

        The hard guard of retention, whoever calls it (prune, deleting a run, a shell): a
        target's last stored copy, or the last stored copy of its verified runs, is never
        marked deleted. The target's stored copies are locked first, so two deletions racing
        cannot each see "another copy remains" and together remove both.
        """
        # Looked up by name: verifications.py imports this module (a verification checks a run).
        Verification = apps.get_model("backups", "Verification")
        with transaction.atomic():
            stored = list(
                Artifact.objects.select_for_update(of=("self",))
                .filter(run__target_id=self.run.target_id, status=self.Status.STORED)
                .annotate(
                    verified=Exists(
                        Verification.objects.filter(run=OuterRef("run_id"), status=Verification.Status.PASSED)
                    )
                )
                .values_list("pk", "verified")
            )
            others = [verified for pk, verified in stored if pk != self.pk]
            mine = [verified for pk, verified in stored if pk == self.pk]
            if not mine:
                return  # already deleted: nothing to do
            target = self.run.target.name
            if not others:
                raise CopyProtected(
                    f"refusing to delete the last stored copy of target {target} (run #{self.run_id} in "
                    f"location {self.location.name}): the target would have no backup left"
                )
            if mine[0] and not any(others):
                raise CopyProtected(
                    f"refusing to delete the only verified copy of target {target} (run #{self.run_id} in "
                    f"location {self.location.name}): verify a newer run first"
                )
            self.status, self.deleted_at = self.Status.DELETED, timezone.now()
            Artifact.objects.filter(pk=self.pk).update(status=self.status, deleted_at=self.deleted_at)

    def mark_stored(self) -> None:
        """Undo ``mark_deleted`` when removing the file failed: the copy is still there, so the catalogue says so."""
        self.status, self.deleted_at = self.Status.STORED, None
        Artifact.objects.filter(pk=self.pk).update(status=self.status, deleted_at=None)


class CopyProtected(Exception):
    """Deleting this copy would leave its target without any stored (or any verified) copy."""
