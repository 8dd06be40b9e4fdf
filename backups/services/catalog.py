"""Rebuilding the catalogue from a location's manifests, for a portal whose own database was lost."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils.dateparse import parse_datetime

from ..locations import LocationError
from ..models import Artifact, BackupRun, Location, Target
from . import manifest

logger = logging.getLogger(__name__)

ARTIFACT_SIDECAR = ".age" + manifest.SIDECAR_SUFFIX


@dataclass
class RebuildReport:
    runs_added: int = 0
    copies_added: int = 0
    already_known: int = 0
    targets_created: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def rebuild(location: Location) -> RebuildReport:
    """Add every run described by the location's sidecar manifests; idempotent."""
    report = RebuildReport()
    backend = location.backend()
    for key in backend.list():
        if not key.endswith(ARTIFACT_SIDECAR):
            continue
        try:
            data = json.loads(backend.read_bytes(key))
            artifact_key = key[: -len(manifest.SIDECAR_SUFFIX)]
            size = backend.size(artifact_key)
        except (LocationError, ValueError) as exc:
            report.problems.append(f"{key}: {exc}")
            continue
        try:
            with transaction.atomic():
                _add(location, artifact_key, size, data, report)
        except (KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"{key}: not a DR Portal manifest ({exc})")
    return report


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
        run = BackupRun.objects.create(
            target=target,
            status=BackupRun.Status.SUCCEEDED,
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
    Artifact.objects.create(
        run=run,
        location=location,
        key=artifact_key,
        url=location.backend().url_for(artifact_key),
        size=size,
        sha256=data["sha256"],
        storage_class=data.get("storage_class", ""),
    )
    report.copies_added += 1
