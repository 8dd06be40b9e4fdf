"""The backup workflow: claim a run, stream the source through the pipeline, store every copy."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import engines
from ..engines import SourceError, resolve_source
from ..keys import KeyProblem, load_recipients
from ..leases import LeaseLost, proof_of_death
from ..locations import LocationBackend, LocationError, StorageStalled, StoredObject
from ..models import Artifact, BackupRun, Target
from ..pipeline import COMPRESSION_SUFFIX, PipelineError, encrypt_stream
from . import manifest, pgbackrest, phases

logger = logging.getLogger(__name__)

# Errors that are the world's fault and are stated for people as they are.
EXPECTED_ERRORS = (KeyProblem, SourceError, LocationError, PipelineError, phases.BackupFailure)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_stale_runs() -> int:
    """Fail runs whose process died, so a killed worker leaves a row that says so and frees the target.

    A run is failed only when it has been silent longer than its phase allows AND its process is
    proven gone (``leases.proof_of_death``): a slow but live run, on this host or another, is never
    failed by someone else's backup, so two runs of one target never overlap.
    """
    reaped = 0
    for run in BackupRun.objects.stale():
        proof = proof_of_death(run.lease_owner, run.lease_expires_at)
        if proof is None:
            logger.warning(
                "backup run %s has reported no progress in %s since %s, but its process is alive: left running",
                run.pk,
                run.phase or "its first phase",
                run.heartbeat_at,
            )
            continue
        error = (
            f"the worker ({run.worker or 'unknown'}) stopped reporting at {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC "
            f"during {run.phase or 'its start'} and is presumed dead ({proof}); {run.copies_summary()}"
        )
        # Copies it recorded before it died are complete and checked (size against the spool): partial, not failed.
        landed = run.sha256 and run.artifacts.filter(status=Artifact.Status.STORED).exists()
        # Compare-and-set: a run that reported or finished since it was read is left alone.
        if not run.reap(error, BackupRun.Status.PARTIAL if landed else BackupRun.Status.FAILED):
            continue
        reaped += 1
        # The dead worker's spool, if it was on this machine's disk.
        for leftover in settings.BACKUP_SPOOL_DIR.glob(f"run{run.pk}-*"):
            leftover.unlink(missing_ok=True)
    if reaped:
        logger.warning("marked %d stale backup run(s) as failed (or partial, where copies had landed)", reaped)
    return reaped


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
        try:
            _perform(run)
        except LeaseLost:
            raise
        except EXPECTED_ERRORS as exc:
            logger.warning("backup run %s of %s failed: %s", run.pk, run.target.name, exc)
            run.fail(str(exc))
        except OSError as exc:
            logger.warning("backup run %s of %s failed: %s", run.pk, run.target.name, exc)
            run.fail(f"I/O error: {phases.os_cause(exc)}")
        except Exception as exc:  # still data: the run must never be left "running"
            logger.exception("backup run %s crashed", run.pk)
            run.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    except LeaseLost:
        # A reaper presumed this process dead and failed the run: what it recorded stands.
        logger.warning("backup run %s of %s lost its lease; stopped without writing", run.pk, run.target.name)
        run.refresh_from_db()
    return run


def refuse(run: BackupRun, reason: str) -> BackupRun:
    BackupRun.objects.filter(pk=run.pk, status=BackupRun.Status.QUEUED).update(
        status=BackupRun.Status.FAILED, finished_at=timezone.now(), error=reason
    )
    run.refresh_from_db()
    return run


def _perform(run: BackupRun) -> None:
    target = run.target
    engine = engines.get(target.engine)
    if engine.runs_own_backup:
        pgbackrest.perform_backup(run)
        return
    recipients = load_recipients()
    locations = list(target.locations.filter(enabled=True).order_by("name"))
    if not locations:
        raise LocationError(f"target {target.name} has no enabled location to write to")
    source = resolve_source(target.source) if engine.needs_source else ""

    spool_fd, spool = phases.create_spool_file(run)
    level = target.effective_compression_level
    try:
        with (
            phases.dumping_into_spool(run),
            os.fdopen(spool_fd, "wb") as out,
            engine.dump(source, endpoint_url=target.endpoint_url) as dump,
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
            run_format, extension = engine.format, engine.extension
        run.record(
            engine=engine.name,
            format=run_format,
            compression=target.compression,
            compression_level=level,
            bytes_in=result.bytes_in,
            bytes_out=result.bytes_out,
            sha256=result.sha256,
            key_ids=recipients.key_ids,
            recipients=list(recipients.public),
            tables=metadata.get("tables", {}),
            finished_at=timezone.now(),
        )
        key = artifact_key(run, extension)
        errors = _store_copies(run, spool, key, locations)
    finally:
        spool.unlink(missing_ok=True)
    if errors and run.artifacts.exists():
        # Some copies landed: a good backup with a location missing, not a failure to hide.
        run.finish_partial("; ".join(errors), finished_at=run.finished_at)
    elif errors:
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
            stored = _copy(run, backend, spool, key)
            if stored.size != run.bytes_out:
                raise LocationError(
                    f"location {location.name}: stored {stored.size} bytes, expected {run.bytes_out}; copy removed"
                )
            phase = "manifest"
            run.enter_phase(f"manifest:{location.name}")
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
            with transaction.atomic():
                run.fence()  # recorded only while this process holds the run
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
        run.enter_phase(f"manifest:{location.name}")
        manifest.write_index(location, run.target)
    return errors


class _Sent:
    """Bytes a copy has sent so far, set from the uploading thread(s), read by the run's thread.

    Once ``stop`` is set (the run lost its lease) the next report raises, which aborts the upload.
    """

    def __init__(self) -> None:
        self.value = 0
        self.stop = threading.Event()

    def __call__(self, sent: int) -> None:
        if self.stop.is_set():
            raise LeaseLost("the run lost its lease during the copy")
        self.value = sent


def _copy(run: BackupRun, backend: LocationBackend, spool: Path, key: str) -> StoredObject:
    """``backend.put_file`` in a helper thread while this thread reports the bytes sent as the run's progress.

    The run's own thread keeps every database write (the uploader never touches the database), so a
    slow upload that is moving counts as alive whatever its length, and a silent one goes stale.
    """
    run.enter_phase(f"copy:{backend.name}")
    sent = _Sent()
    reported = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"run{run.pk}-copy") as pool:
        upload = pool.submit(backend.put_file, spool, key, progress=sent)
        while True:
            try:
                stored = upload.result(timeout=settings.BACKUP_PROGRESS_INTERVAL)
            except FutureTimeout:
                if sent.value != reported:  # no bytes moved, no progress: silence is what staleness measures
                    reported = sent.value
                    try:
                        run.report_copy(backend.name, reported)
                    except LeaseLost:
                        sent.stop.set()  # aborts the upload at its next chunk; the pool waits for it
                        raise
                continue
            except LeaseLost:
                raise
            except Exception:
                if sent.stop.is_set():
                    raise LeaseLost("the run lost its lease during the copy") from None
                raise
            run.report_copy(backend.name, stored.size)
            return stored
