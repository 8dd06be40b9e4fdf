"""Locations (where copies go) and the path checks that keep sources, locations and the portal apart."""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from drportal.fields import EncryptedTextField
from drportal.validators import validate_name  # also imported from here by migrations: keep this name

from ..locations import backend_for, local_location_problem, overlap


def _target_source_paths():
    """(target, local path) for each target whose engine reads the worker's disk (files, sqlite, env)."""
    from .. import engines

    # Looked up by name: targets.py imports this module (a Target's source is checked against locations).
    Target = apps.get_model("backups", "Target")
    for target in Target.objects.filter(engine__in=engines.names(reads_local_disk=True)):
        path = source_local_path(target.engine, target.source)
        if path is not None:
            yield target, path


def source_local_path(engine_name: str, source: str) -> PurePosixPath | None:
    """The normalised local path a target's source reads, or None (a database URL, an S3 prefix, unknown)."""
    from ..engines import SourceError, find, resolve_source

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
