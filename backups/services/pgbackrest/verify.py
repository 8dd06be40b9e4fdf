"""Verification of a pgBackRest backup (`pgbackrest verify`) and its restore test in a scratch cluster."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ...engines import pgbackrest as pgbr
from ...engines.base import SourceError
from ...locations import LocationError
from ...models import Artifact, BackupRun, PgBackRestStanza, Verification
from .backup import manifest_sha256
from .pitr import PitrPlan, PitrRefused, free_port, stop_and_remove, wait_and_check
from .stanza import repos_of, stanza_of

logger = logging.getLogger(__name__)


def verify(verification: Verification, *, worker: str = "") -> Verification:
    """`pgbackrest verify` of every repository holding the run; a restore test restores it to a scratch copy."""
    if not verification.start(worker):
        verification.refresh_from_db()
        return verification
    run = verification.run
    checks: list[dict] = []
    tables: list[dict] = []
    duration = None
    error = ""
    started = time.monotonic()
    try:
        stanza = stanza_of(run.target)
        repos = {repo.location.pk: repo for repo in repos_of(run.target)}
        pgbr.write_config(stanza, list(repos.values()))
        copies = list(run.artifacts.filter(status=Artifact.Status.STORED).select_related("location"))
        if run.status != BackupRun.Status.SUCCEEDED or not copies:
            raise PitrRefused(f"run #{run.pk} {run.status}: nothing to verify")
        for copy in copies:
            repo = repos.get(copy.location_id)
            if repo is None:
                checks.append(_check(f"verify {copy.location.name}", "fail", "the location is not a repository now"))
                continue
            checks.append(_verify_repo(stanza, repo, copy))
        if verification.kind == Verification.Kind.RESTORE_TEST:
            outcome = restore_test(run)
            tables, duration = outcome["tables"], outcome["duration_seconds"]
            checks.append(
                _check(
                    "restore",
                    "pass",
                    f"restored {outcome['label']} into scratch copy {outcome['scratch']} on port {outcome['port']} "
                    f"in {duration:.1f} s; {len(tables)} table(s) counted; stopped and removed",
                )
            )
    except (PitrRefused, SourceError, LocationError, OSError) as exc:
        if verification.kind == Verification.Kind.RESTORE_TEST and checks:
            checks.append(_check("restore", "fail", str(exc)))
        else:
            error = str(exc)
    except Exception as exc:
        logger.exception("verification %s crashed", verification.pk)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    if duration is None:
        duration = round(time.monotonic() - started, 3)
    verification.finish(checks, tables, duration, error)
    return verification


def _check(name: str, result: str, message: str) -> dict:
    return {"name": name, "result": result, "message": message}


def _verify_repo(stanza: PgBackRestStanza, repo: pgbr.Repo, copy: Artifact) -> dict:
    name = f"pgbackrest verify {repo.label}"
    try:
        output = pgbr.run(stanza, "verify", f"--repo={repo.index}", "--output=text", "--verbose", what=name)
        current = manifest_sha256(stanza, repo.index, copy.key)
    except SourceError as exc:
        return _check(name, "fail", str(exc))
    if "status: error" in output:
        return _check(name, "fail", output.strip()[-2000:])
    if current != copy.sha256:
        return _check(name, "fail", f"backup {copy.key}: its manifest changed since the backup (sha256 {current})")
    return _check(name, "pass", f"backup {copy.key} and the archived WAL are intact; manifest sha256 matches")


def restore_test(run: BackupRun) -> dict:
    """Restore the run's backup set (consistent point) into a scratch folder and port, count, stop, remove."""
    import tempfile

    stanza = stanza_of(run.target)
    copy = run.artifacts.filter(status=Artifact.Status.STORED).order_by("location__name").first()
    if copy is None:
        raise PitrRefused(f"run #{run.pk} has no stored copy to restore")
    base = Path(tempfile.mkdtemp(prefix=f"drportal-restore-test-{run.target.name}-"))
    base.chmod(0o755)
    scratch = base / "data"
    port = free_port()
    log = base / "startup.log"
    started = time.monotonic()
    try:
        scratch.mkdir(mode=0o700)
        pgbr.chown_to(scratch, stanza.os_user)
        log.touch()
        pgbr.chown_to(log, stanza.os_user)
        repos = {r.location.pk: r for r in repos_of(run.target)}
        repo = repos[copy.location_id]
        pgbr.run(
            stanza,
            "restore",
            f"--repo={repo.index}",
            f"--pg1-path={scratch}",
            f"--set={copy.key}",
            "--type=immediate",
            "--target-action=promote",
            "--archive-mode=off",
            what="pgbackrest restore (restore test)",
        )
        pgbr.pg_ctl(
            stanza.os_user,
            "start",
            "-D",
            str(scratch),
            "-l",
            str(log),
            "-w",
            "-t",
            "3600",
            "-o",
            f"-p {port} -c archive_mode=off",
        )
        plan = PitrPlan(run.target, "immediate", "", scratch, port, False, False)
        tables = wait_and_check(stanza, plan, log, None)
        return {
            "tables": tables,
            "duration_seconds": time.monotonic() - started,
            "scratch": str(scratch),
            "port": port,
            "label": copy.key,
        }
    finally:
        stop_and_remove(stanza, scratch, log)
        shutil.rmtree(base, ignore_errors=True)


# --- RPO: time since the newest WAL archived to every location ------------------------------
