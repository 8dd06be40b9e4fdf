"""What every job row shares: who triggered it, how it finishes, and the lease a worker holds on it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, models
from django.utils import timezone

from ..leases import LeaseLost, silence_limit


class TriggeredJob(models.Model):
    """Who started a job (backup run, verification, restore): how, and the portal user or the person at a shell."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "admin"
        SCHEDULE = "schedule", "schedule"
        COMMAND = "command", "command line"
        REBUILT = "rebuilt", "rebuilt from manifest"

    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    command_user = models.CharField(
        "command-line user",
        max_length=200,
        blank=True,
        help_text="Who started it with manage.py: the operating-system user and host, e.g. alice@db-host.",
    )

    class Meta:
        abstract = True

    @property
    def started_by(self) -> str:
        """The portal user's name, user@host for the command line, or "" (schedule, rebuilt catalogue)."""
        if self.triggered_by_id is not None:
            return self.triggered_by.get_username()
        return self.command_user

    @property
    def trigger_description(self) -> str:
        """How and by whom, e.g. "command line (alice@db-host)", "admin (alice)", "schedule"."""
        how = self.get_trigger_display()
        return f"{how} ({self.started_by})" if self.started_by else how


class FinishingJob:
    """How a backup run or a restore ends: one save of its final fields, then a signal.

    Subclasses have ``status`` with SUCCEEDED/FAILED, ``error``, ``started_at`` and
    ``finished_at``, and say in ``_announce_finish`` which signal tells the other apps.
    """

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    def succeed(self, **fields) -> None:
        self._finish(self.Status.SUCCEEDED, error="", **fields)

    def fail(self, error: str, **fields) -> None:
        self._finish(self.Status.FAILED, error=error[:10000], **fields)

    def give_up(self, reason: str) -> bool:
        """Queued → failed without ever running (e.g. no live worker serves its queue).

        Conditional, so a job a worker claimed meanwhile is left alone (False); the finish
        signal goes out as for any failed job, so alerts say why.
        """
        done = (
            type(self)
            .objects.filter(pk=self.pk, status=self.Status.QUEUED)
            .update(status=self.Status.FAILED, finished_at=timezone.now(), error=reason[:10000])
        )
        if done:
            self.refresh_from_db()
            self._announce_finish()
        return bool(done)

    def _finish(self, status: str, **fields) -> None:
        fields.setdefault("finished_at", timezone.now())
        for name, value in fields.items():
            setattr(self, name, value)
        self.status = status
        self.save(update_fields=["status", *fields])
        self._announce_finish()

    def _announce_finish(self) -> None:
        raise NotImplementedError


class LeasedJob(FinishingJob, models.Model):
    """A job whose running row is held by one process (see ``leases``): its writes are fenced by its lease.

    Subclasses have ``status`` (RUNNING while held) and ``heartbeat_at`` (the last progress report).
    """

    lease_owner = models.CharField(
        max_length=300,  # a host name (up to 253) and two numbers
        blank=True,
        help_text="The process running it (host:pid:start-time). Every write it makes is conditional on "
        "still holding this, so a process presumed dead can never overwrite what a reaper recorded.",
    )
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Its last progress vouches for it until then; after that a reaper on another host "
        "may presume it dead (one on its own host checks the process itself).",
    )

    class Meta:
        abstract = True

    def _renewal(self, phase: str = "") -> dict:
        """The fields of a progress report: now, and the lease pushed forward by the phase's silence limit."""
        now = timezone.now()
        return {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=silence_limit(phase))}

    @contextmanager
    def kept_alive(self, every: float = 10.0):
        """While a long outside step runs that reports nothing itself (``pgbackrest backup`` or ``restore``,
        ``pg_ctl start`` replaying WAL): renew the heartbeat and lease every ``every`` seconds from a thread,
        as long as this process still holds the job, so no reaper (on this host or another) takes it for dead.
        A job this process no longer holds is left alone: its next write raises ``LeaseLost``."""
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(every):
                    if not self.held().update(**self._renewal(getattr(self, "phase", ""))):
                        return
            finally:
                connection.close()  # the thread's own connection

        thread = threading.Thread(target=beat, daemon=True, name=f"kept-alive {type(self).__name__} #{self.pk}")
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=30)

    def held(self) -> models.QuerySet:
        """This job's row, as long as this object's process still holds it."""
        return type(self)._default_manager.filter(pk=self.pk, status=self.Status.RUNNING, lease_owner=self.lease_owner)

    def write_held(self, **fields) -> None:
        """Save ``fields`` if the lease is still held (one conditional UPDATE); else raise ``LeaseLost``."""
        if not self.lease_owner or not self.held().update(**fields):
            raise LeaseLost(f"{type(self).__name__} #{self.pk} is no longer held by this process")
        for name, value in fields.items():
            setattr(self, name, value)

    def fence(self) -> None:
        """Inside ``transaction.atomic()``: lock the row while held (a reaper waits), or raise ``LeaseLost``."""
        if not self.lease_owner or not self.held().select_for_update().exists():
            raise LeaseLost(f"{type(self).__name__} #{self.pk} is no longer held by this process")

    def _finish(self, status: str, **fields) -> None:
        if not self.lease_owner:  # never claimed (refused while queued)
            return super()._finish(status, **fields)
        fields.setdefault("finished_at", timezone.now())
        self.write_held(status=status, lease_expires_at=None, **fields)
        self._announce_finish()

    def reap(self, error: str, status: str = "failed", **fields) -> bool:
        """Fail the job for its dead process, only if its row is still exactly as the reaper saw it.

        ``status`` is "failed", or for a backup whose copies partly landed, "partial"; ``fields`` are saved
        with it (e.g. a restore's rollback name, once the reaper put the previous data back).

        Compare-and-set on the lease and the last progress: a job that reported progress since
        it was looked at (so is alive after all) or finished is left alone. True if reaped.
        """
        taken = (
            type(self)
            ._default_manager.filter(
                pk=self.pk,
                status=self.Status.RUNNING,
                lease_owner=self.lease_owner,
                lease_expires_at=self.lease_expires_at,
                heartbeat_at=self.heartbeat_at,
            )
            .update(status=status, error=error[:10000], finished_at=timezone.now(), lease_expires_at=None, **fields)
        )
        if taken:
            self.refresh_from_db()
            self._announce_finish()
        return bool(taken)
