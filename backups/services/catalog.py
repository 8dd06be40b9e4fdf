"""Rebuilding the catalogue from a location's manifests, for a portal whose own database was lost."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..locations import LocationError
from ..models import Artifact, BackupRun, Location, Target
from . import manifest

logger = logging.getLogger(__name__)

ARTIFACT_SIDECAR = ".age" + manifest.SIDECAR_SUFFIX


@dataclass
class Skipped:
    key: str
    reason: str


@dataclass
class RebuildReport:
    runs_added: int = 0
    copies_added: int = 0
    already_known: int = 0
    targets_created: list[str] = field(default_factory=list)
    # What was left out and why: an artifact with no manifest, a manifest that cannot be read or used.
    skipped: list[Skipped] = field(default_factory=list)
    # What was added but is doubtful (e.g. a size that disagrees with the manifest).
    problems: list[str] = field(default_factory=list)

    def skip(self, key: str, reason: str) -> None:
        self.skipped.append(Skipped(key, reason))

    @property
    def unusable_manifests(self) -> list[Skipped]:
        """Skipped manifests (not artifacts without one): these fail the command, as a damaged location should."""
        return [s for s in self.skipped if s.key.endswith(manifest.SIDECAR_SUFFIX)]

    def as_dict(self) -> dict:
        return asdict(self)


def rebuild(location: Location) -> RebuildReport:
    """Add every run described by the location's sidecar manifests; idempotent.

    Each run keeps the status, error and times its manifests recorded, each copy the time it was
    stored (so retention counts from the backup, not from the rebuild). What cannot be added is
    reported in ``skipped`` with the reason.
    """
    report = RebuildReport()
    backend = location.backend()
    keys = list(backend.list())
    present = set(keys)
    known = set(Artifact.objects.filter(location=location).values_list("key", flat=True))
    indexes = _Indexes(backend)
    for key in keys:
        if key.endswith(".age"):
            if key + manifest.SIDECAR_SUFFIX not in present and key not in known:
                report.skip(key, f"no manifest ({PurePosixPath(key).name}.json is missing), so it cannot be described")
            continue
        if not key.endswith(ARTIFACT_SIDECAR):
            continue
        artifact_key = key[: -len(manifest.SIDECAR_SUFFIX)]
        try:
            data = json.loads(backend.read_bytes(key))
        except (LocationError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            report.skip(key, f"unreadable manifest: {exc}")
            continue
        if not isinstance(data, dict):
            report.skip(key, "unreadable manifest: not a JSON object")
            continue
        if artifact_key not in present:
            report.skip(key, f"its artifact {PurePosixPath(artifact_key).name} is missing")
            continue
        try:
            size = backend.size(artifact_key)
            recorded = {**data, **indexes.entry(data.get("target"), data.get("sha256"))}
            with transaction.atomic():
                _add(location, artifact_key, size, recorded, report)
        except LocationError as exc:
            report.skip(key, f"cannot read its artifact: {exc}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            report.skip(key, f"unreadable manifest: not a DR Portal manifest ({type(exc).__name__}: {exc})")
    return report


class _Indexes:
    """Each target folder's manifest.json, read once: it holds how each run ended (the sidecar cannot)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.by_target: dict[str, dict[str, dict]] = {}

    def entry(self, target: str | None, sha256: str | None) -> dict:
        if not isinstance(target, str) or not target:
            return {}
        if target not in self.by_target:
            self.by_target[target] = self._read(target)
        found = self.by_target[target].get(sha256, {})
        # Only what the index knows better than the sidecar: the outcome, written when the run ended, and
        # the copy's time as the catalogue recorded it (the sidecar's is taken a moment before).
        return {k: found[k] for k in ("status", "error", "finished_at", "created_at") if found.get(k) is not None}

    def _read(self, target: str) -> dict[str, dict]:
        try:
            index = json.loads(self.backend.read_bytes(f"{target}/{manifest.INDEX_NAME}"))
            return {run["sha256"]: run for run in index.get("runs", []) if isinstance(run, dict) and "sha256" in run}
        except (LocationError, ValueError, AttributeError, TypeError) as exc:
            # Best effort, as its writer is: the sidecars alone still describe every copy.
            logger.info("no usable index for %s: %s", target, exc)
            return {}


# A manifest written while its run was running, whose run never recorded an end anywhere.
UNFINISHED = (
    "rebuilt from a manifest written while the run was still running; how the run ended was never recorded "
    "(its worker may have died). The copy is described by its manifest: verify it before relying on it."
)


def _outcome(data: dict) -> tuple[str, str]:
    """The status and error to list: the recorded ones; "succeeded" for manifests older than the status key."""
    status = data.get("status")
    if status is None:
        return BackupRun.Status.SUCCEEDED, ""  # as the older portal, whose manifests only described stored copies
    if status in (BackupRun.Status.SUCCEEDED, BackupRun.Status.FAILED):
        return status, str(data.get("error") or "")
    return BackupRun.Status.FAILED, UNFINISHED


def _add(location: Location, artifact_key: str, size: int, data: dict, report: RebuildReport) -> None:
    if Artifact.objects.filter(location=location, key=artifact_key).exists():
        report.already_known += 1
        return
    target, created = Target.objects.get_or_create(
        name=data["target"],
        defaults={
            "engine": data["engine"],
            "enabled": False,
            "description": f"Rebuilt from the manifests in {location.name}: set its source and schedule, then enable.",
        },
    )
    if created:
        report.targets_created.append(target.name)
    target.locations.add(location)
    run = BackupRun.objects.filter(target=target, sha256=data["sha256"]).first()
    if run is None:
        status, error = _outcome(data)
        run = BackupRun.objects.create(
            target=target,
            status=status,
            error=error,
            trigger=BackupRun.Trigger.REBUILT,
            queued_at=parse_datetime(data.get("queued_at") or data["finished_at"]),
            started_at=parse_datetime(data["started_at"]) if data.get("started_at") else None,
            finished_at=parse_datetime(data["finished_at"]) if data.get("finished_at") else None,
            bytes_in=int(data["bytes_in"]),
            bytes_out=int(data["bytes_out"]),
            sha256=data["sha256"],
            engine=data["engine"],
            format=data["format"],
            compression=data["compression"],
            compression_level=data.get("compression_level"),
            key_ids=list(data.get("key_ids", [])),
            recipients=list(data.get("recipients", [])),
            tables=dict(data.get("tables", {})),
        )
        report.runs_added += 1
    if size != run.bytes_out:
        report.problems.append(
            f"{artifact_key}: {size} bytes stored, manifest says {run.bytes_out} (kept, will fail verify)"
        )
    # When the copy was stored; for older manifests the run's end, never the time of this rebuild.
    created_at = data.get("created_at") or data.get("finished_at")
    Artifact.objects.create(
        run=run,
        location=location,
        key=artifact_key,
        url=location.backend().url_for(artifact_key),
        size=size,
        sha256=data["sha256"],
        storage_class=data.get("storage_class", ""),
        created_at=parse_datetime(created_at) if created_at else timezone.now(),
    )
    report.copies_added += 1
