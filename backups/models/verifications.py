"""Verifications: a run's copies read back and checked, and the monthly restore tests."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .jobs import TriggeredJob
from .runs import BackupRun
from .targets import Target


class Verification(TriggeredJob):
    """One check of one run: integrity of every copy, or a full restore test."""

    class Kind(models.TextChoices):
        INTEGRITY = "integrity", "integrity (checksum, decrypt, decompress, manifest)"
        RESTORE_TEST = "restore_test", "restore test"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="verifications")
    # The run's target, copied so "newest check per target" is one index lookup, not a join over runs.
    target = models.ForeignKey(
        Target, null=True, blank=True, editable=False, on_delete=models.CASCADE, related_name="verifications"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INTEGRITY)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="For a restore test: RTO evidence.")
    checks = models.JSONField(default=list, blank=True, help_text="Each check: name, result, message.")
    tables = models.JSONField(default=list, blank=True, help_text="Each table: name, expected and restored rows.")
    error = models.TextField(blank=True)
    worker = models.CharField(
        max_length=200, blank=True, help_text="The Celery worker (name@host) that ran it; empty when run in-process."
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["run", "-queued_at"], name="verification_run_recent"),
            models.Index(fields=["target", "-queued_at"], name="verification_target_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of run #{self.run_id}: {self.status}"

    def save(self, *args, **kwargs):
        if self.target_id is None and self.run_id is not None:
            self.target_id = BackupRun.objects.filter(pk=self.run_id).values_list("target_id", flat=True).first()
        super().save(*args, **kwargs)

    @property
    def ok(self) -> bool:
        return self.status == self.Status.PASSED

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.PASSED, self.Status.FAILED)

    def start(self, worker: str = "") -> bool:
        now = timezone.now()
        started = Verification.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.RUNNING, started_at=now, worker=worker[:200]
        )
        if started:
            from ..signals import verification_started

            self.status, self.started_at, self.worker = self.Status.RUNNING, now, worker[:200]
            verification_started.send(sender=Verification, verification=self)
        return bool(started)

    def give_up(self, reason: str) -> bool:
        """Queued → failed without ever running (no live worker serves its queue); False if it started meanwhile."""
        done = Verification.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.FAILED, finished_at=timezone.now(), error=reason[:10000]
        )
        if done:
            from ..signals import verification_finished

            self.refresh_from_db()
            verification_finished.send(sender=Verification, verification=self)
        return bool(done)

    def finish(self, checks: list[dict], tables: list[dict], duration: float | None, error: str = "") -> None:
        self.checks, self.tables, self.duration_seconds = checks, tables, duration
        self.error = error
        passed = not error and bool(checks) and all(c["result"] == "pass" for c in checks)
        self.status = self.Status.PASSED if passed else self.Status.FAILED
        self.finished_at = timezone.now()
        self.save(update_fields=["checks", "tables", "duration_seconds", "error", "status", "finished_at"])
        from ..signals import verification_finished

        verification_finished.send(sender=Verification, verification=self)
