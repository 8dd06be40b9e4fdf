"""The reaper of what killed runs left in locations.

A run stages each copy under the location's temporary prefix, writes its manifest and only
then makes it final (see ``backups/locations.py``), so a run killed at any point leaves:

- a staged object or an unfinished multipart upload under the temporary prefix, and maybe
  the manifest it had written: removed (upload aborted) once the run that made it is known
  to have ended, or, when no run of this portal explains it, once older than
  ``BACKUP_ORPHAN_GRACE_SECONDS``;
- nothing else. A finished-looking artifact without a manifest can only come from a version
  before this write order: when the catalogue records that copy its manifest is rewritten;
  when it names a run of this portal that ended without that copy it is removed; otherwise
  it is listed as incomplete and left for a person (deleting what nothing explains could
  lose someone's backup).

A run's key says which run made it (``<target>/Y/M/D/<target>-<start>-r<id>-<hex>...``); the
run id alone is not trusted (a rebuilt catalogue numbers runs anew), only with its start time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.conf import settings

from ..locations import SIDECAR_SUFFIX, LocationError
from ..models import Artifact, BackupRun, Location
from . import manifest

logger = logging.getLogger(__name__)

_RUN_IN_KEY = re.compile(r"^(?P<target>[^/]+)/.*-(?P<stamp>\d{8}T\d{6}Z)-r(?P<run>\d+)-[0-9a-f]{6}\.[^/]*$")


@dataclass
class OrphanReport:
    removed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # left for a person, with the reason
    problems: list[str] = field(default_factory=list)


def run_named(key: str) -> tuple[str, int, str] | None:
    """(target name, run id, start stamp) written in an artifact key, or None for another kind of key."""
    match = _RUN_IN_KEY.match(key)
    return (match["target"], int(match["run"]), match["stamp"]) if match else None


def _run_of(key: str) -> BackupRun | None:
    """The run of this portal that made ``key``: same id, same target and same start second."""
    named = run_named(key)
    if named is None:
        return None
    target, run_id, stamp = named
    run = BackupRun.objects.filter(pk=run_id, target__name=target).select_related("target").first()
    if run is None or run.started_at is None or f"{run.started_at:%Y%m%dT%H%M%SZ}" != stamp:
        return None
    return run


def reap() -> OrphanReport:
    """Clean every enabled location of what killed runs left; one location's failure does not stop the others."""
    report = OrphanReport()
    for location in Location.objects.filter(enabled=True).order_by("name"):
        try:
            _reap_location(location, report)
        except LocationError as exc:
            report.problems.append(str(exc))
    for line in report.removed + report.repaired:
        logger.info("reaper: %s", line)
    for line in report.incomplete + report.problems:
        logger.warning("reaper: %s", line)
    return report


def _reap_location(location: Location, report: OrphanReport) -> None:
    backend = location.backend()
    grace = settings.BACKUP_ORPHAN_GRACE_SECONDS
    for leftover in list(backend.leftovers()):
        run = _run_of(leftover.key)
        if run is not None and run.status in (BackupRun.Status.RUNNING, BackupRun.Status.QUEUED):
            continue  # in flight: its own run finishes or discards it
        if run is None and leftover.age_seconds < grace:
            continue  # maybe another portal's run in flight; judged once older than the grace period
        backend.remove_leftover(leftover)
        where = f"location {location.name}: {leftover.kind} of {leftover.key}"
        if not leftover.upload_id and not backend.exists(leftover.key):
            # The run died after writing the manifest and before making the copy final: a manifest of nothing.
            backend.delete(leftover.key + SIDECAR_SUFFIX)
        report.removed.append(f"{where} removed (left by {f'run #{run.pk}' if run else 'a run no longer known'})")
    _artifacts_without_manifest(location, backend, report)


def _artifacts_without_manifest(location: Location, backend, report: OrphanReport) -> None:
    keys = set(backend.list())
    for key in sorted(keys):
        if not key.endswith(".age") or key + SIDECAR_SUFFIX in keys:
            continue
        where = f"location {location.name}: {key}"
        recorded = (
            Artifact.objects.filter(location=location, key=key, status=Artifact.Status.STORED)
            .select_related("run__target")
            .first()
        )
        if recorded is not None:
            manifest.write_sidecar(backend, recorded.run, key, recorded.storage_class)
            report.repaired.append(f"{where}: its missing manifest was rewritten from the catalogue")
            continue
        run = _run_of(key)
        if run is not None and run.status not in (BackupRun.Status.RUNNING, BackupRun.Status.QUEUED):
            backend.delete(key)
            report.removed.append(f"{where}: removed, a copy run #{run.pk} never recorded (it has no manifest)")
            continue
        report.incomplete.append(
            f"{where}: incomplete, no manifest and no run of this portal made it; "
            "it cannot be verified, so check it and delete it by hand"
        )
