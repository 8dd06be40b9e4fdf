"""Plain-dict views of catalogue rows for --json output (one shape everywhere)."""

from __future__ import annotations


def _iso(value):
    return value.isoformat() if value else None


def run_to_dict(run) -> dict:
    return {
        "id": run.pk,
        "target": run.target.name,
        "status": run.status,
        "trigger": run.trigger,
        "triggered_by": run.started_by or None,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "bytes_in": run.bytes_in,
        "bytes_out": run.bytes_out,
        "sha256": run.sha256 or None,
        "format": run.format or None,
        "compression": run.compression or None,
        "compression_level": run.compression_level,
        "key_ids": list(run.key_ids or []),
        "tables": dict(run.tables or {}),
        "artifacts": [
            {
                "location": a.location.name,
                "url": a.url,
                "size": a.size,
                "storage_class": a.storage_class,
                "status": a.status,
            }
            for a in run.artifacts.all()
        ],
        "error": run.error or None,
    }


def verification_to_dict(v) -> dict:
    return {
        "id": v.pk,
        "run": v.run_id,
        "kind": v.kind,
        "trigger": v.trigger,
        "triggered_by": v.started_by or None,
        "ok": v.ok,
        "status": v.status,
        "checks": v.checks,
        "tables": v.tables,
        "duration_seconds": v.duration_seconds,
        "error": v.error or None,
    }


def restore_to_dict(r) -> dict:
    return {
        "id": r.pk,
        "source": r.source,
        "run": r.run_id,
        "status": r.status,
        "trigger": r.trigger,
        "triggered_by": r.started_by or None,
        "destination": r.destination_display,
        "rollback_name": r.rollback_name or None,
        "swapped_at": r.swapped_at.isoformat() if r.swapped_at else None,
        "tables": r.tables,
        "duration_seconds": r.duration.total_seconds() if r.duration else None,
        "error": r.error or None,
        "log": r.log,
    }
