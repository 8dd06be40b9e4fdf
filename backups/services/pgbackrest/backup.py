"""A pgBackRest backup run, and the catalogue imported from `pgbackrest info`."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ...engines import pgbackrest as pgbr
from ...engines.base import SourceError
from ...models import Artifact, BackupRun, PgBackRestBackup, PgBackRestStanza, Target
from .stanza import HEARTBEAT_SECONDS, next_type, repos_of, setup, stanza_of

logger = logging.getLogger(__name__)


def perform_backup(run: BackupRun) -> None:
    """One pgBackRest backup into every repository; the run then holds what `pgbackrest info` says."""
    target = run.target
    stanza = stanza_of(target)
    repos = repos_of(target)
    if stanza.checked_at is None:
        setup(target)
    else:
        pgbr.write_config(stanza, repos)
    detail, _ = PgBackRestBackup.objects.get_or_create(run=run)
    kind = detail.requested_type or next_type(stanza)
    # The labels already catalogued (not a `pgbackrest info` call: a backup is timed against pg_dump).
    before: dict[int, set[str]] = {
        repo.index: set(
            Artifact.objects.filter(location=repo.location, run__target=target).values_list("key", flat=True)
        )
        for repo in repos
    }
    errors = []
    with run.kept_alive(HEARTBEAT_SECONDS):
        for repo in repos:
            try:
                pgbr.run(
                    stanza,
                    "backup",
                    f"--repo={repo.index}",
                    f"--type={kind}",
                    what=f"pgbackrest backup to {repo.label}",
                )
            except SourceError as exc:
                errors.append(str(exc))
    data = pgbr.info(stanza)
    new: dict[int, list[dict]] = {}
    for backup in data.get("backup", []):
        index = backup["database"]["repo-key"]
        # New to the catalogue and started by this run (not an older backup made outside the portal).
        started = pgbr.stamp(backup["timestamp"]["start"])
        if backup["label"] not in before.get(index, set()) and started >= run.started_at.replace(microsecond=0):
            new.setdefault(index, []).append(backup)
    first = None
    for repo in repos:
        made = new.get(repo.index) or []
        if not made:
            if not any(repo.label in e for e in errors):
                errors.append(f"{repo.label}: pgbackrest reported success but info lists no new backup")
            continue
        backup = made[-1]
        _record_copy(stanza, run, repo, backup)
        first = first or backup
    run.engine, run.format = pgbr.ENGINE_NAME, "pgbackrest"
    if first is not None:
        _fill(run, detail, first, kind)
        run.sha256 = run.artifacts.order_by("location__name").first().sha256
    run.finished_at = timezone.now()
    run.save(update_fields=["engine", "format", "bytes_in", "bytes_out", "sha256", "finished_at"])
    if errors or first is None:
        run.fail("; ".join(errors) or "no backup was made", finished_at=run.finished_at)
    else:
        run.succeed(finished_at=run.finished_at)
    _mark_expired(target, data, repos)


def _labels_by_repo(data: dict) -> dict[int, set[str]]:
    labels: dict[int, set[str]] = {}
    for backup in data.get("backup", []):
        labels.setdefault(backup["database"]["repo-key"], set()).add(backup["label"])
    return labels


def manifest_sha256(stanza: PgBackRestStanza, repo_index: int, label: str) -> str:
    """sha256 of the backup's manifest as pgBackRest wrote it (it lists every file with its own checksum)."""
    name = stanza.target.name
    argv = [
        pgbr.settings.PGBACKREST_BIN,
        f"--config={pgbr.config_path(name)}",
        f"--stanza={name}",
        f"--repo={repo_index}",
        "repo-get",
        f"backup/{name}/{label}/backup.manifest",
    ]
    import subprocess

    result = subprocess.run(
        pgbr.as_user(argv, stanza.os_user), capture_output=True, timeout=600, cwd="/", env=pgbr.subprocess_env()
    )
    if result.returncode != 0:
        raise pgbr.PgBackRestError("pgbackrest repo-get backup.manifest", result.returncode, result.stderr.decode())
    return hashlib.sha256(result.stdout).hexdigest()


def _repo_url(repo: pgbr.Repo, stanza_name: str, label: str) -> str:
    return f"{repo.location.url.rstrip('/')}/{pgbr.REPO_FOLDER}/backup/{stanza_name}/{label}"


def _record_copy(stanza: PgBackRestStanza, run: BackupRun, repo: pgbr.Repo, backup: dict) -> Artifact:
    return Artifact.objects.create(
        run=run,
        location=repo.location,
        key=backup["label"],
        url=_repo_url(repo, stanza.target.name, backup["label"]),
        size=backup["info"]["repository"]["delta"],
        sha256=manifest_sha256(stanza, repo.index, backup["label"]),
    )


def _fill(run: BackupRun, detail: PgBackRestBackup, backup: dict, requested: str) -> None:
    detail.requested_type = detail.requested_type or requested
    detail.type = backup["type"]
    detail.label = backup["label"]
    detail.prior = backup.get("prior") or ""
    detail.started_at = pgbr.stamp(backup["timestamp"]["start"])
    detail.stopped_at = pgbr.stamp(backup["timestamp"]["stop"])
    lsn = backup.get("lsn") or {}
    detail.lsn_start, detail.lsn_stop = lsn.get("start", ""), lsn.get("stop", "")
    archive = backup.get("archive") or {}
    detail.wal_start, detail.wal_stop = archive.get("start") or "", archive.get("stop") or ""
    detail.database_size = backup["info"]["size"]
    detail.repository_size = backup["info"]["repository"]["size"]
    detail.save()
    run.bytes_in = backup["info"]["delta"]
    run.bytes_out = backup["info"]["repository"]["delta"]


def _mark_expired(target: Target, data: dict, repos: list[pgbr.Repo]) -> int:
    """Copies pgBackRest expired (its retention) are marked deleted: the catalogue never lists a ghost."""
    present = _labels_by_repo(data)
    count = 0
    for repo in repos:
        gone = Artifact.objects.filter(
            run__target=target, location=repo.location, status=Artifact.Status.STORED, run__engine=pgbr.ENGINE_NAME
        ).exclude(key__in=present.get(repo.index, set()))
        count += gone.update(status=Artifact.Status.DELETED, deleted_at=timezone.now())
    return count


@dataclass
class ImportReport:
    runs_added: int = 0
    copies_added: int = 0
    already_known: int = 0
    expired: int = 0
    problems: list[str] = field(default_factory=list)


def import_info(target: Target) -> ImportReport:
    """Catalogue every backup `pgbackrest info` lists that the portal does not know yet (idempotent)."""
    report = ImportReport()
    stanza = stanza_of(target)
    repos = repos_of(target)
    pgbr.write_config(stanza, repos)
    data = pgbr.info(stanza)
    by_index = {repo.index: repo for repo in repos}
    for backup in data.get("backup", []):
        repo = by_index.get(backup["database"]["repo-key"])
        if repo is None:
            continue
        if Artifact.objects.filter(location=repo.location, key=backup["label"], run__target=target).exists():
            report.already_known += 1
            continue
        try:
            sha = manifest_sha256(stanza, repo.index, backup["label"])
        except SourceError as exc:
            report.problems.append(f"{repo.label} {backup['label']}: {exc}")
            continue
        with transaction.atomic():
            run = BackupRun.objects.create(
                target=target,
                status=BackupRun.Status.SUCCEEDED,
                trigger=BackupRun.Trigger.REBUILT,
                queued_at=pgbr.stamp(backup["timestamp"]["start"]),
                started_at=pgbr.stamp(backup["timestamp"]["start"]),
                finished_at=pgbr.stamp(backup["timestamp"]["stop"]),
                engine=pgbr.ENGINE_NAME,
                format="pgbackrest",
                sha256=sha,
            )
            detail = PgBackRestBackup.objects.create(run=run)
            _fill(run, detail, backup, backup["type"])
            run.save(update_fields=["bytes_in", "bytes_out"])
            Artifact.objects.create(
                run=run,
                location=repo.location,
                key=backup["label"],
                url=_repo_url(repo, target.name, backup["label"]),
                size=backup["info"]["repository"]["delta"],
                sha256=sha,
            )
        report.runs_added += 1
        report.copies_added += 1
    report.expired = _mark_expired(target, data, repos)
    return report


# --- restore to a moment ----------------------------------------------------------------------
