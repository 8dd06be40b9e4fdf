"""Manifests: what makes a bare location self-describing.

Each artifact gets a sidecar ``<artifact>.json`` written beside it (the source of
truth, never rewritten), and each target folder a ``manifest.json`` index of the
copies it currently holds (regenerated from the catalogue after every change,
including when a run ends).

Each entry says the run's ``status`` and ``error`` as they were when it was written and
the copy's ``created_at``. A sidecar is written while its run is still running, so its
status says so; the index, rewritten when the run ends, holds the final one. Manifests
written before these keys existed still load (``rebuildcatalog`` treats them as before).
"""

from __future__ import annotations

import json
import logging

from django.utils import timezone

from .. import engines
from ..engines.engine import Engine
from ..locations import SIDECAR_SUFFIX, LocationError

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
INDEX_NAME = "manifest.json"


def restore_hint(run_format: str, compression: str) -> str:
    """The shell pipeline that restores an artifact without the portal; the last step is the engine's."""
    decompress = {"zstd": "zstd -d", "gzip": "gzip -d"}[compression]
    engine = engines.for_format(run_format)
    load = engine.restore_hint if engine is not None else Engine.restore_hint
    return f"age -d -i IDENTITY_FILE ARTIFACT | {decompress} | {load}"


def describe(run, artifact_key: str, storage_class: str = "", created_at=None) -> dict:
    """The manifest entry of one run's copy in one location (``created_at``: when the copy was stored)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run.pk,
        "target": run.target.name,
        "engine": run.engine,
        "format": run.format,
        "compression": run.compression,
        "compression_level": run.compression_level,
        "encryption": "age-x25519",
        "recipients": list(run.recipients),
        "key_ids": list(run.key_ids),
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "status": run.status,
        "error": run.error,
        "created_at": _iso(created_at),
        "bytes_in": run.bytes_in,
        "bytes_out": run.bytes_out,
        "sha256": run.sha256,
        "artifact": artifact_key,
        "storage_class": storage_class,
        "tables": dict(run.tables or {}),
        "restore": restore_hint(run.format, run.compression),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def encode(data: dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def write_sidecar(backend, run, artifact_key: str, storage_class: str = "") -> None:
    """Write the copy's sidecar, just after the copy itself: its creation time is now."""
    entry = describe(run, artifact_key, storage_class, created_at=timezone.now())
    backend.put_bytes(artifact_key + SIDECAR_SUFFIX, encode(entry))


def write_index(location, target) -> None:
    """Rewrite ``<target>/manifest.json`` in a location from the catalogue.

    Best effort: sidecars are authoritative, so a failed index write is logged
    and repaired by the next backup or prune, never fails a backup. A target whose
    engine runs its own backup (pgBackRest) gets no index: its repository describes
    itself (backup.info, read by `pgbackrest info` and rebuildcatalog), and an index
    here would describe its copies as age-encrypted artifacts, which they are not.
    """
    from ..models import Artifact

    engine = engines.find(target.engine)
    if engine is not None and engine.runs_own_backup:
        return

    artifacts = (
        Artifact.objects.filter(location=location, run__target=target, status=Artifact.Status.STORED)
        .select_related("run", "run__target")
        .order_by("-run__queued_at")
    )
    index = {
        "manifest_version": MANIFEST_VERSION,
        "location": location.name,
        "target": target.name,
        "generated_at": timezone.now().isoformat(),
        "runs": [describe(a.run, a.key, a.storage_class, a.created_at) for a in artifacts],
    }
    try:
        location.backend().put_bytes(f"{target.name}/{INDEX_NAME}", encode(index))
    except LocationError as exc:
        logger.warning("manifest index not updated: %s", exc)


def write_indexes_of(run) -> None:
    """Rewrite the index of every location holding a copy of ``run``, so it records how the run ended."""
    from ..models import Artifact

    copies = Artifact.objects.filter(run=run, status=Artifact.Status.STORED).select_related("location")
    for artifact in copies:
        write_index(artifact.location, run.target)
