"""The backup workflow: claim a run, stream the source through the pipeline, store every copy."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from ..engines import SourceError, get_engine, open_dump, resolve_source
from ..keys import KeyProblem, load_recipients
from ..locations import LocationError, StorageStalled
from ..models import Artifact, BackupRun, Target
from ..pipeline import COMPRESSION_SUFFIX, PipelineError, encrypt_stream
from . import manifest, phases

logger = logging.getLogger(__name__)

# Errors that are the world's fault and are stated for people as they are.
EXPECTED_ERRORS = (KeyProblem, SourceError, LocationError, PipelineError, phases.BackupFailure)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_stale_runs() -> int:
    """Fail runs whose worker stopped reporting: a killed worker leaves a row that says so."""
    stale = list(BackupRun.objects.stale(settings.BACKUP_STALE_SECONDS).only("pk", "heartbeat_at", "worker"))
    for run in stale:
        error = (
            f"the worker ({run.worker or 'unknown'}) stopped reporting at {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC "
            f"and is presumed dead; {run.copies_summary()}"
        )
        # Conditional, so a run that finished meanwhile is left alone; then fail() for its signal (alerts).
        if BackupRun.objects.filter(pk=run.pk, status=BackupRun.Status.RUNNING).update(heartbeat_at=None):
            run.refresh_from_db()
            run.fail(error)
        # The dead worker's spool, if it was on this machine's disk.
        for leftover in settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*"):
            leftover.unlink(missing_ok=True)
    if stale:
        logger.warning("marked %d stale backup run(s) as failed", len(stale))
    return len(stale)


def start_backup(target: Target, *, trigger: str, user=None, command_user: str = "") -> BackupRun:
    """Create a queued run; the caller runs it in-process or hands it to a worker."""
    return BackupRun.enqueue(target, trigger=trigger, user=user, command_user=command_user)


def artifact_key(run: BackupRun, extension: str) -> str:
    when = run.started_at or timezone.now()
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    suffix = COMPRESSION_SUFFIX[run.compression]
    name = f"{run.target.name}-{stamp}-r{run.pk}-{secrets.token_hex(3)}{extension}{suffix}.age"
    return f"{run.target.name}/{when:%Y/%m/%d}/{name}"


class AnotherRunActive(Exception):
    pass


def execute(run: BackupRun, worker: str | None = None) -> BackupRun:
    """Run a queued backup to completion. Never raises for expected failures: they are stored on the run."""
    reap_stale_runs()
    if not run.claim(worker or worker_name()):
        run.refresh_from_db()
        if run.status != BackupRun.Status.QUEUED:
            return run  # already claimed or finished elsewhere: running twice is a no-op
        active = BackupRun.objects.filter(target_id=run.target_id, status=BackupRun.Status.RUNNING).first()
        raise AnotherRunActive(f"another backup of {run.target.name} is running (run #{active.pk if active else '?'})")
    try:
        _perform(run)
    except EXPECTED_ERRORS as exc:
        logger.warning("backup run %s of %s failed: %s", run.pk, run.target.name, exc)
        run.fail(str(exc))
    except OSError as exc:
        logger.warning("backup run %s of %s failed: %s", run.pk, run.target.name, exc)
        run.fail(f"I/O error: {phases.os_cause(exc)}")
    except Exception as exc:  # still data: the run must never be left "running"
        logger.exception("backup run %s crashed", run.pk)
        run.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    return run


def refuse(run: BackupRun, reason: str) -> BackupRun:
    BackupRun.objects.filter(pk=run.pk, status=BackupRun.Status.QUEUED).update(
        status=BackupRun.Status.FAILED, finished_at=timezone.now(), error=reason
    )
    run.refresh_from_db()
    return run


def _perform(run: BackupRun) -> None:
    target = run.target
    recipients = load_recipients()
    engine = get_engine(target.engine)
    locations = list(target.locations.filter(enabled=True).order_by("name"))
    if not locations:
        raise LocationError(f"target {target.name} has no enabled location to write to")
    source = resolve_source(target.source) if target.engine != "portal" else ""

    spool_fd, spool = phases.create_spool_file(run)
    level = target.effective_compression_level
    try:
        with (
            phases.dumping_into_spool(run),
            os.fdopen(spool_fd, "wb") as out,
            open_dump(engine, source, endpoint_url=target.endpoint_url) as dump,
        ):
            result = encrypt_stream(
                dump.stream,
                out,
                recipients.keys,
                compression=target.compression,
                level=level,
                on_progress=run.report_progress,
                progress_interval=settings.BACKUP_PROGRESS_INTERVAL,
            )
            metadata = dump.finish()
            run_format, extension = dump.format, dump.extension
        run.engine = engine.name
        run.format = run_format
        run.compression, run.compression_level = target.compression, level
        run.bytes_in, run.bytes_out, run.sha256 = result.bytes_in, result.bytes_out, result.sha256
        run.key_ids, run.recipients = recipients.key_ids, list(recipients.public)
        run.tables = metadata.get("tables", {})
        run.finished_at = timezone.now()
        run.save(
            update_fields=[
                "engine",
                "format",
                "compression",
                "compression_level",
                "bytes_in",
                "bytes_out",
                "sha256",
                "key_ids",
                "recipients",
                "tables",
                "finished_at",
            ]
        )
        key = artifact_key(run, extension)
        errors = _store_copies(run, spool, key, locations)
    finally:
        spool.unlink(missing_ok=True)
    if errors:
        run.fail("; ".join(errors), finished_at=run.finished_at)
    else:
        run.succeed(finished_at=run.finished_at)
    logger.info("backup run %s of %s %s", run.pk, target.name, run.status)


def _store_copies(run: BackupRun, spool: Path, key: str, locations) -> list[str]:
    """Copy the spooled artifact to every location; returns one message per failed location.

    Each copy is staged under the location's temporary prefix, described by its manifest, and
    only then made final: a run killed at any point leaves nothing that looks like a finished
    backup, only leftovers the reaper recognises. A copy that did land stays recorded even when
    another location failed: it is a good backup, and deleting it during an outage would lose data.
    """
    errors = []
    for location in locations:
        backend = location.backend()
        phase = "copy"
        try:
            stored = backend.put_file(spool, key)
            if stored.size != run.bytes_out:
                raise LocationError(
                    f"location {location.name}: stored {stored.size} bytes, expected {run.bytes_out}; copy removed"
                )
            phase = "manifest"
            manifest.write_sidecar(backend, run, key, stored.storage_class)
            backend.publish(key)
        except (LocationError, OSError) as exc:  # OSError: e.g. the spool file vanished under the copy
            errors.append(phases.copy_problem(phase, location, exc))
            # A server that does not answer would hang the clean-up too: the reaper removes the leftovers.
            if not isinstance(exc, StorageStalled):
                try:
                    backend.discard(key)
                except LocationError as cleanup:
                    logger.warning("run %s: leftovers stay for the reaper: %s", run.pk, cleanup)
            continue
        try:
            Artifact.objects.create(
                run=run,
                location=location,
                key=key,
                url=stored.url,
                size=stored.size,
                sha256=run.sha256,
                storage_class=stored.storage_class,
            )
        except IntegrityError:
            errors.append(f"location {location.name}: a copy of run #{run.pk} is already recorded")
            continue
        manifest.write_index(location, run.target)
    return errors
