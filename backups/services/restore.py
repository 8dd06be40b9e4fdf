"""The restore workflow: prove the artifact, restore into something new, check it, then swap.

Live data is touched at exactly one moment, ``Restorer.swap()``, after the new
copy loaded without error, matched its checksum and has the recorded row
counts. Everything before that can fail, be interrupted or be killed and the
live data is as it was.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

import pyrage
from django.conf import settings

from ..engines import SourceError, resolve_source
from ..engines.restorers import RestorePlan, Restorer, restorer_for
from ..locations import LocationError
from ..models import Restore, Target
from ..pipeline import decrypt_stream
from . import artifacts
from .artifacts import ArtifactRef, ArtifactRefused

logger = logging.getLogger(__name__)


class RestoreFailed(Exception):
    pass


@dataclass
class Proposal:
    """What a restore would do, worked out without changing anything (for confirmation pages)."""

    ref: ArtifactRef
    destination: str  # may hold credentials: never show it
    restorer: Restorer
    plan: RestorePlan

    def lines(self) -> list[str]:
        m = self.ref.manifest
        taken = m.get("finished_at") or m.get("started_at") or "unknown time"
        lines = [
            f"Restore {self.ref.label}",
            f"  target {m.get('target', '?')}, taken {taken}, {m.get('bytes_out')} bytes, SHA-256 {m['sha256'][:16]}…",
            f"into {self.plan.destination}",
        ]
        if self.plan.replaces:
            lines.append(f"This REPLACES {self.plan.replaces}.")
            lines.append(f"The previous data is kept for rollback as {self.plan.rollback_name}.")
        else:
            lines.append("Nothing exists there yet; it will be created.")
        lines.append("Nothing is changed until the restored copy has loaded and been checked.")
        return lines


def destination_for(ref: ArtifactRef, to: str | None) -> str:
    if to:
        return to
    target = Target.objects.filter(name=ref.target_name).first() if ref.target_name else None
    if target is None:
        raise RestoreFailed(
            f"the backup's target {ref.target_name or '(unknown)'} is not in this portal; "
            "say where to restore with --to"
        )
    if target.engine == "portal":
        raise RestoreFailed(
            "refusing to restore the portal's own database over itself while it runs; restore it --to a new "
            "database or file, then point DATABASE_URL at it"
        )
    try:
        return resolve_source(target.source)
    except SourceError as exc:
        raise RestoreFailed(str(exc)) from None


def propose(
    source: str, *, to: str | None = None, location: str | None = None, rollback_hint: str | None = None
) -> Proposal:
    if source.isdigit() and Target.objects.filter(runs__pk=int(source), engine="pgbackrest").exists():
        raise RestoreFailed(
            f"run #{source} is a pgBackRest backup: restore its target to a moment with "
            "manage.py restore TARGET --time T --to NEW_DATA_DIR (or --latest)"
        )
    ref = artifacts.resolve(source, location)
    destination = destination_for(ref, to)
    target = Target.objects.filter(name=ref.target_name).first() if ref.target_name else None
    restorer = restorer_for(ref.format, destination, endpoint_url=target.endpoint_url if target else "")
    restorer.rollback_hint = rollback_hint
    return Proposal(ref, destination, restorer, restorer.plan())


def load_into(restorer: Restorer, ref: ArtifactRef, identities, on_progress=None) -> dict[str, dict]:
    """Stream the artifact into a prepared restorer and check the copy. Touches nothing live."""
    try:
        with ref.open() as stream:
            result = decrypt_stream(
                stream,
                restorer.sink(),
                identities,
                compression=ref.compression,
                on_progress=on_progress,
                progress_interval=settings.BACKUP_PROGRESS_INTERVAL,
            )
    except (pyrage.DecryptError, OSError, LocationError) as exc:
        # The loader's own message (e.g. a psql error that closed the pipe) says more.
        restorer.finish_load()
        raise RestoreFailed(f"decryption failed midway (tampered or truncated): {exc}") from None
    restorer.finish_load()
    if result.sha256 != ref.sha256:
        raise RestoreFailed("checksum mismatch: the artifact changed while it was being restored")
    if not result.complete:
        raise RestoreFailed("truncated: the compressed stream ends early")
    expected = ref.tables
    restored = restorer.count_rows(list(expected))
    tables = [
        {"name": n, "expected": expected.get(n), "restored": restored.get(n)} for n in sorted(expected or restored)
    ]
    wrong = [t for t in tables if t["expected"] is not None and t["expected"] != t["restored"]]
    if wrong:
        detail = ", ".join(f"{t['name']} {t['restored']} rows, expected {t['expected']}" for t in wrong)
        raise RestoreFailed(f"row counts differ from the backup: {detail}")
    return {"tables": tables, "bytes": result.bytes_out}


def execute(restore: Restore, *, to: str | None = None, identities=None) -> Restore:
    """Carry out a queued restore. Failures are stored on the row, never raised."""
    if not restore.start():
        restore.refresh_from_db()
        return restore
    try:
        proposal = propose(
            restore.source,
            to=to or restore.destination or None,
            location=restore.location.name if restore.location else None,
            rollback_hint=restore.rollback_name or None,
        )
        restore.note(" / ".join(proposal.lines()))
        identities = artifacts.identities_or_refuse(identities)
        for check in artifacts.preflight(proposal.ref, identities):
            restore.note(f"{check['name']}: {check['message']}")
        restorer = proposal.restorer
        # Recorded before anything is created, so a reaper can clean up after a killed process.
        restore.destination = proposal.destination
        restore.bytes_total = proposal.ref.expected_size
        restore.run = proposal.ref.run
        restore.destination_display = proposal.plan.destination
        restore.scratch_name = str(restorer.scratch)
        restore.format = proposal.ref.format
        restore.save(
            update_fields=[
                "destination",
                "bytes_total",
                "run",
                "destination_display",
                "scratch_name",
                "format",
            ]
        )
        restorer.prepare()
        try:
            outcome = load_into(restorer, proposal.ref, identities, on_progress=restore.report_progress)
            restore.note(f"loaded {outcome['bytes']} bytes; row counts match the backup")
            Restore.objects.filter(pk=restore.pk).update(rollback_name=proposal.plan.rollback_name or "")
            rollback = restorer.swap()
        except BaseException:
            restorer.discard()
            raise
        restore.note(f"swapped in; {rollback}")
        logger.info("restore %s done: %s", restore.pk, rollback)
        restore.succeed(
            tables=outcome["tables"], rollback_name=restorer.rollback_name or "", bytes_done=proposal.ref.expected_size
        )
    except (ArtifactRefused, RestoreFailed, SourceError, LocationError) as exc:
        logger.warning("restore %s refused or failed: %s", restore.pk, exc)
        restore.fail(str(exc))
    except Exception as exc:
        logger.exception("restore %s crashed", restore.pk)
        restore.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    return restore


def reap_stale_restores() -> int:
    """Fail restores whose process died, putting back anything a cut-short swap moved."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=settings.BACKUP_STALE_SECONDS)
    stale = list(
        Restore.objects.filter(status=Restore.Status.RUNNING, heartbeat_at__lt=cutoff).select_related("run__target")
    )
    for record in stale:
        done: list[str] = []
        if record.format and record.destination:
            # The endpoint the restore itself used (propose() takes the backed-up target's): an S3 prefix to clean
            # up is on that server, not on AWS.
            target = record.run.target if record.run else None
            try:
                restorer = restorer_for(
                    record.format, record.destination, endpoint_url=target.endpoint_url if target else ""
                )
                done = restorer.recover(record.scratch_name, record.rollback_name or None)
            except Exception as exc:  # cleaning up must not stop the reaper
                done = [f"cleanup failed: {type(exc).__name__}: {exc}"]
        detail = "; ".join(done) if done else "the live data was not replaced; nothing was left to clean up"
        record.fail(f"the restore process stopped reporting and is presumed dead: {detail}")
    return len(stale)


def restore_test(ref: ArtifactRef, identities, destination: str) -> dict:
    """Restore into a scratch database beside ``destination``, count rows, and always drop it."""
    prefix = f"drp_restore_test_{secrets.token_hex(3)}"
    restorer = restorer_for(ref.format, destination, scratch_prefix=prefix)
    started = time.monotonic()
    restorer.prepare()
    try:
        outcome = load_into(restorer, ref, identities)
    finally:
        restorer.discard()
    outcome["duration_seconds"] = round(time.monotonic() - started, 3)
    outcome["scratch"] = str(restorer.scratch)
    return outcome
