"""Targets: what is backed up, how, on which queue and schedule."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from drportal.cron import validate_cron, validate_timezone
from drportal.fields import EncryptedTextField
from drportal.validators import validate_name  # also imported from here by migrations: keep this name

from ..engines.registry import choices as engine_choices
from ..pipeline import DEFAULT_GZIP_LEVEL, check_level
from .locations import Location, check_source_clear_of_locations


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
        help_text="Empty: BACKUP_ZSTD_LEVEL for zstd (2 unless set), 6 for gzip. zstd runs from -7 to 19: "
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
        from ..engines import ENGINES

        if self.engine not in ENGINES:
            raise ValidationError({"engine": f"Unknown engine; choose one of {', '.join(sorted(ENGINES))}."})
        if self.compression_level is not None:
            try:
                check_level(self.compression, self.compression_level)
            except ValueError as exc:
                raise ValidationError({"compression_level": f"{exc}."}) from None
        if self.source:
            from ..engines import SourceError, check_source

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
        from ..engines.base import redact

        return redact(self.source)
