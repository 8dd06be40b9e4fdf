"""The verification workflow: every copy checked, optionally a full restore test (RTO evidence)."""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings

from .. import engines
from ..engines import SourceError
from ..locations import LocationError
from ..models import Artifact, BackupRun, Verification
from . import artifacts, manifest, pgbackrest
from .artifacts import ArtifactRefused
from .restore import RestoreFailed, restore_test

logger = logging.getLogger(__name__)


def _check(name: str, result: str, message: str) -> dict:
    return {"name": name, "result": result, "message": message}


def _run_check(name: str, func, *args) -> dict:
    try:
        return _check(name, "pass", func(*args))
    except ArtifactRefused as exc:
        return _check(name, "fail", str(exc))


def _manifest_check(ref: artifacts.ArtifactRef) -> dict:
    name = f"manifest:{ref.location.name}"
    backend = ref.location.backend()
    try:
        sidecar = json.loads(backend.read_bytes(ref.artifact.key + manifest.SIDECAR_SUFFIX))
    except LocationError as exc:
        return _check(name, "fail", f"manifest missing or unreadable: {exc}")
    except ValueError as exc:
        return _check(name, "fail", f"manifest is not valid JSON: {exc}")
    fields = ("sha256", "bytes_out", "bytes_in", "format", "compression", "target", "tables")
    differing = [f for f in fields if sidecar.get(f) != ref.manifest.get(f)]
    if differing:
        return _check(name, "fail", f"manifest disagrees with the catalogue on {', '.join(differing)}")
    return _check(name, "pass", "agrees with the catalogue")


def check_copies(run: BackupRun, identities) -> list[dict]:
    checks = []
    copies = run.artifacts.filter(status=Artifact.Status.STORED).select_related("location", "run__target")
    for artifact in copies:
        ref = artifacts.from_artifact(artifact)
        where = artifact.location.name
        present = _run_check(f"present:{where}", artifacts.check_present, ref)
        checks.append(present)
        if present["result"] == "fail":
            continue
        checks.append(_run_check(f"checksum:{where}", artifacts.check_checksum, ref))
        result, message = artifacts.full_pass(ref, identities)
        checks.append(_check(f"decrypt:{where}", result, message))
        checks.append(_manifest_check(ref))
    if not checks:
        checks.append(_check("copies", "fail", "no stored copy of this run is left"))
    return checks


def restore_test_destination(run: BackupRun) -> str:
    """Where the scratch database of a restore test goes: a dedicated server if configured."""
    if settings.RESTORE_TEST_DATABASE_URL and run.format == "postgresql-sql":
        return settings.RESTORE_TEST_DATABASE_URL
    return engines.get(run.target.engine).in_place_destination(run.target.source)


def verify(verification: Verification, *, identities=None, worker: str = "") -> Verification:
    """Run a queued verification; the outcome is stored on the row (with ``worker``, the Celery worker running it)."""
    if (engine := engines.find(verification.run.engine)) is not None and engine.runs_own_backup:
        return pgbackrest.verify(verification, worker=worker)
    if not verification.start(worker):
        verification.refresh_from_db()
        return verification
    run = verification.run
    started = time.monotonic()
    checks: list[dict] = []
    tables: list[dict] = []
    duration = None
    error = ""
    try:
        if run.status not in BackupRun.WITH_ARTIFACT and not run.artifacts.exists():
            raise ArtifactRefused(f"run #{run.pk} {run.status}: nothing to verify")
        identities = artifacts.identities_or_refuse(identities)
        checks = check_copies(run, identities)
        if verification.kind == Verification.Kind.RESTORE_TEST:
            ref = artifacts.resolve(str(run.pk))
            try:
                outcome = restore_test(ref, identities, restore_test_destination(run))
            except (RestoreFailed, SourceError, LocationError, ArtifactRefused) as exc:
                checks.append(_check("restore", "fail", str(exc)))
            else:
                tables = outcome["tables"]
                duration = outcome["duration_seconds"]
                checks.append(
                    _check(
                        "restore",
                        "pass",
                        f"restored into scratch copy {outcome['scratch']} in {duration:.1f} s; "
                        f"{len(tables)} table(s) match; dropped",
                    )
                )
    except ArtifactRefused as exc:
        error = str(exc)
    except Exception as exc:
        logger.exception("verification %s crashed", verification.pk)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    if duration is None and verification.kind == Verification.Kind.INTEGRITY:
        duration = round(time.monotonic() - started, 3)
    verification.finish(checks, tables, duration, error)
    logger.info("verification %s of run %s: %s", verification.pk, run.pk, verification.status)
    return verification


def start_verification(run: BackupRun, *, kind: str, trigger: str, user=None, command_user: str = "") -> Verification:
    return Verification.objects.create(
        run=run, kind=kind, trigger=trigger, triggered_by=user, command_user=command_user
    )
