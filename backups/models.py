"""The backup catalogue: where copies go, what is backed up, every run and every copy."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from drportal.cron import validate_cron, validate_timezone
from drportal.fields import EncryptedTextField
from drportal.validators import validate_name  # also imported from here by migrations: keep this name

from .engines.registry import choices as engine_choices
from .leases import LeaseLost, silence_limit, this_process
from .locations import backend_for, local_location_problem, overlap
from .pipeline import DEFAULT_GZIP_LEVEL, check_level
from .querysets import BackupRunQuerySet


def _target_source_paths():
    """(target, local path) for each target whose engine reads the worker's disk (files, sqlite, env)."""
    from . import engines

    for target in Target.objects.filter(engine__in=engines.names(reads_local_disk=True)):
        path = source_local_path(target.engine, target.source)
        if path is not None:
            yield target, path


def source_local_path(engine_name: str, source: str) -> PurePosixPath | None:
    """The normalised local path a target's source reads, or None (a database URL, an S3 prefix, unknown)."""
    from .engines import SourceError, find, resolve_source

    engine = find(engine_name)
    if engine is None or not engine.reads_local_disk or not source:
        return None
    try:
        # env:NAME is only known where it is set; a worker elsewhere is checked when it runs.
        path = engine.local_path(resolve_source(source))
    except SourceError:
        return None
    if path is None or not path.is_absolute():
        return None
    return PurePosixPath(os.path.normpath(path))


def _folder_of(url: str) -> PurePosixPath:
    return PurePosixPath(urlsplit(url).path.rstrip("/") or "/")


def _relation(path: PurePosixPath, other: PurePosixPath) -> str:
    """How two local paths overlap (see ``overlap``), as written or once symbolic links are followed."""
    for mine in dict.fromkeys((path, PurePosixPath(os.path.realpath(path)))):
        for theirs in dict.fromkeys((other, PurePosixPath(os.path.realpath(other)))):
            relation = overlap(mine, theirs)
            if relation:
                return relation
    return ""


def check_location_url(url: str, *, endpoint_url: str = "", exclude_pk: int | None = None) -> None:
    """The one check of a location URL, for the model, the plan loader and the admin alike.

    Raises ValidationError saying why: the URL's form, a folder that may not hold backups,
    a folder inside (or holding) another location or a target's source, an S3 prefix that
    overlaps another location's in the same bucket.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        problem = local_location_problem(url)
        if problem:
            raise ValidationError(problem)
        path = _folder_of(url)
        for other in Location.objects.filter(url__startswith="file:").exclude(pk=exclude_pk):
            relation = _relation(path, _folder_of(other.url))
            if relation:
                raise ValidationError(
                    f"{url} {relation} location {other.name}'s folder ({other.url}); "
                    "each location needs a folder of its own"
                )
        for target, source in _target_source_paths():
            relation = _relation(path, source)
            if relation:
                raise ValidationError(
                    f"{url} {relation} the {target.engine} source that target {target.name} backs up; "
                    "a backup would then hold or overwrite its own source"
                )
    elif parts.scheme == "s3":
        if not parts.netloc:
            raise ValidationError("An S3 location needs a bucket: s3://bucket/prefix")
        if parts.username or parts.password:
            raise ValidationError("Do not put credentials in the URL; use the credential fields.")
        prefix = PurePosixPath("/" + parts.path.strip("/"))
        others = Location.objects.filter(url__startswith=f"s3://{parts.hostname}", endpoint_url=endpoint_url)
        for other in others.exclude(pk=exclude_pk):
            other_parts = urlsplit(other.url)
            if other_parts.netloc != parts.netloc:
                continue
            relation = overlap(prefix, PurePosixPath("/" + other_parts.path.strip("/")))
            if relation:
                raise ValidationError(
                    f"{url} {relation} location {other.name}'s prefix ({other.url}); "
                    "each location needs a prefix of its own"
                )
    else:
        raise ValidationError("Location URL must start with file:/// or s3://")


def validate_location_url(value: str) -> None:
    """Kept for migration 0001, which names it; checks the URL against every other location."""
    check_location_url(value)


def check_source_clear_of_locations(source: str, *, engine_name: str) -> None:
    """A target's local source may not be, be inside or hold a file:// location's folder."""
    path = source_local_path(engine_name, source)
    if path is None:
        return
    for location in Location.objects.filter(url__startswith="file:"):
        relation = _relation(path, _folder_of(location.url))
        if relation:
            raise ValidationError(
                f"this {engine_name} source {relation} location {location.name}'s folder ({location.url}); "
                "a backup would then hold or overwrite its own copies"
            )


class Location(models.Model):
    """Where copies of backups are kept: a local folder or an S3 bucket prefix."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_name])
    # Checked in clean() by check_location_url(), which needs the row's own id (a location does not overlap itself).
    url = models.CharField(max_length=500, help_text="file:///absolute/path or s3://bucket/prefix")
    endpoint_url = models.URLField(
        blank=True, help_text="S3-compatible endpoint (MinIO, Supabase Storage...); empty for AWS."
    )
    region = models.CharField(max_length=40, blank=True, help_text="S3 region; empty for the default.")
    storage_class = models.CharField(
        max_length=40,
        blank=True,
        help_text="S3 storage class for new copies, e.g. STANDARD_IA or GLACIER; empty for STANDARD.",
    )
    access_key_id = EncryptedTextField(
        blank=True, help_text="S3 access key id; empty to use the worker's own AWS credentials."
    )
    secret_access_key = EncryptedTextField(blank=True, help_text="Encrypted at rest; never shown back.")
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Delete copies older than this many days (empty: keep by age forever)."
    )
    keep_last = models.PositiveIntegerField(
        null=True, blank=True, help_text="Always keep at least this many newest copies per target."
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.url:
            try:
                check_location_url(self.url, endpoint_url=self.endpoint_url, exclude_pk=self.pk)
            except ValidationError as exc:
                raise ValidationError({"url": exc.messages}) from None

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme

    def backend(self):
        """The storage backend that reads and writes this location's objects."""
        return backend_for(self)


def default_compression() -> str:
    return settings.BACKUP_COMPRESSION


def default_queue() -> str:
    return settings.CELERY_TASK_DEFAULT_QUEUE


QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def validate_queue(value: str) -> None:
    # `celery worker -Q a,b` splits on commas, so a queue name must not hold one (or spaces).
    if not QUEUE_RE.match(value):
        raise ValidationError("A queue name uses letters, digits, '.', '_' and '-' (at most 100 characters).")


class Target(models.Model):
    """Something that is backed up: a database, a folder or bucket, an environment file."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_name])
    engine = models.CharField(
        max_length=20, choices=engine_choices, help_text="How the source is read: postgresql, sqlite, portal..."
    )
    source = EncryptedTextField(
        blank=True,
        help_text="A URL (postgresql://user:password@host/db, sqlite:///path) or env:NAME to read it "
        "from the worker's environment. Encrypted at rest; never shown back.",
    )
    endpoint_url = models.URLField(
        blank=True,
        help_text="For an s3:// source: the S3-compatible endpoint (e.g. Supabase Storage); empty for AWS. "
        "Credentials come from the worker's AWS_* environment.",
    )
    locations = models.ManyToManyField(Location, related_name="targets", help_text="Where copies go.")
    schedule = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_cron],
        help_text="Cron expression (minute hour day month weekday), e.g. '0 2 * * *'; empty: not scheduled.",
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone], help_text="Time zone of the schedule."
    )
    compression = models.CharField(
        max_length=10,
        choices=[("zstd", "zstd"), ("gzip", "gzip")],
        default=default_compression,
        help_text="zstd is smaller and faster; gzip for compatibility.",
    )
    compression_level = models.SmallIntegerField(
        null=True,
        blank=True,
        help_text="Empty: BACKUP_ZSTD_LEVEL for zstd (3 unless set), 6 for gzip. zstd runs from -7 to 19: "
        "higher is smaller and slower (level 9 takes ~5× the CPU of 3 for ~10% less on chat data).",
    )
    queue = models.CharField(
        max_length=100,
        default=default_queue,
        validators=[validate_queue],
        help_text="Celery queue its backups, verifications, restore tests and restores go to. Run "
        "`celery -A drportal worker -Q <queue>` on a host that can reach the source. Default: the shared queue.",
    )
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from .engines import ENGINES

        if self.engine not in ENGINES:
            raise ValidationError({"engine": f"Unknown engine; choose one of {', '.join(sorted(ENGINES))}."})
        if self.compression_level is not None:
            try:
                check_level(self.compression, self.compression_level)
            except ValueError as exc:
                raise ValidationError({"compression_level": f"{exc}."}) from None
        if self.source:
            from .engines import SourceError, check_source

            try:
                check_source(self.engine, self.source)
            except SourceError as exc:
                raise ValidationError({"source": f"{str(exc)[:1].upper()}{str(exc)[1:]}."}) from None
        try:
            check_source_clear_of_locations(self.source, engine_name=self.engine)
        except ValidationError as exc:
            raise ValidationError({"source": exc.messages}) from None

    @property
    def effective_compression_level(self) -> int:
        """The level this target's next backup compresses at."""
        if self.compression_level is not None:
            return self.compression_level
        return settings.BACKUP_ZSTD_LEVEL if self.compression == "zstd" else DEFAULT_GZIP_LEVEL

    @property
    def source_display(self) -> str:
        """The source with any password removed, safe for logs and HTML."""
        from .engines.base import redact

        return redact(self.source)


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
            from .signals import backup_started

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
        from .signals import backup_finished

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
            from .signals import verification_started

            self.status, self.started_at, self.worker = self.Status.RUNNING, now, worker[:200]
            verification_started.send(sender=Verification, verification=self)
        return bool(started)

    def give_up(self, reason: str) -> bool:
        """Queued → failed without ever running (no live worker serves its queue); False if it started meanwhile."""
        done = Verification.objects.filter(pk=self.pk, status=self.Status.QUEUED).update(
            status=self.Status.FAILED, finished_at=timezone.now(), error=reason[:10000]
        )
        if done:
            from .signals import verification_finished

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
        from .signals import verification_finished

        verification_finished.send(sender=Verification, verification=self)


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
            from .signals import restore_started

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
        from .signals import restore_finished

        restore_finished.send(sender=Restore, restore=self)


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


def new_cipher_passphrase() -> str:
    import secrets

    return secrets.token_urlsafe(48)


BACKUP_TYPES = [("full", "full"), ("diff", "differential"), ("incr", "incremental")]


class PgBackRestStanza(models.Model):
    """How the portal drives pgBackRest for one `pgbackrest` target: the cluster and its schedules.

    The target's own ``schedule`` is the full backups'; its locations become the stanza's
    repositories, in name order (repo1, repo2...).
    """

    # What a person sets (plan keys and admin fields); the passphrase is generated, escrowed, never typed.
    SETTINGS = ("pg_path", "pg_port", "pg_socket", "pg_host", "os_user", "schedule_diff", "schedule_incr", "verify_tls")

    target = models.OneToOneField(Target, on_delete=models.CASCADE, related_name="pgbackrest")
    pg_path = models.CharField(
        "data directory", max_length=500, help_text="The cluster's data directory, e.g. /var/lib/postgresql/15/main."
    )
    pg_port = models.PositiveIntegerField("port", default=5432)
    pg_socket = models.CharField(
        "socket folder", max_length=500, blank=True, help_text="Unix socket folder, e.g. /var/run/postgresql."
    )
    pg_host = models.CharField(
        "host", max_length=255, blank=True, help_text="TCP host instead of the socket folder (empty: the socket)."
    )
    os_user = models.CharField(
        "OS user",
        max_length=63,
        default="postgres",
        help_text="The operating-system user that owns the cluster; pgBackRest runs as this user.",
    )
    schedule_diff = models.CharField(
        "differential schedule", max_length=100, blank=True, validators=[validate_cron], help_text="Cron expression."
    )
    schedule_incr = models.CharField(
        "incremental schedule", max_length=100, blank=True, validators=[validate_cron], help_text="Cron expression."
    )
    verify_tls = models.BooleanField(
        "verify S3 certificates",
        default=True,
        help_text="Turn off only for a test S3 server with a self-signed certificate.",
    )
    cipher_pass = EncryptedTextField(
        default=new_cipher_passphrase,
        help_text="The repositories' aes-256-cbc passphrase. Encrypted at rest; escrowed with age beside "
        "each repository; never shown back.",
    )
    wal_points = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per location: the newest WAL segment seen archived there and when it landed.",
    )
    checked_at = models.DateTimeField(null=True, blank=True, help_text="When stanza-create and check last passed.")
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "pgBackRest stanza"

    def __str__(self) -> str:
        return f"pgBackRest stanza {self.target.name}"


class PgBackRestBackup(models.Model):
    """What pgBackRest says about the backup a run made (from `pgbackrest info --output=json`)."""

    run = models.OneToOneField(BackupRun, on_delete=models.CASCADE, related_name="pgbackrest")
    requested_type = models.CharField(max_length=4, choices=BACKUP_TYPES, blank=True)
    type = models.CharField(max_length=4, choices=BACKUP_TYPES, blank=True, help_text="What pgBackRest made.")
    label = models.CharField(max_length=60, blank=True, db_index=True)
    prior = models.CharField(max_length=60, blank=True, help_text="The backup a diff/incr depends on.")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    lsn_start = models.CharField(max_length=20, blank=True)
    lsn_stop = models.CharField(max_length=20, blank=True)
    wal_start = models.CharField(max_length=24, blank=True)
    wal_stop = models.CharField(max_length=24, blank=True)
    database_size = models.BigIntegerField(null=True, blank=True)
    repository_size = models.BigIntegerField(null=True, blank=True, help_text="In the first repository.")

    class Meta:
        verbose_name = "pgBackRest backup"

    def __str__(self) -> str:
        return f"{self.type or self.requested_type} {self.label}"
