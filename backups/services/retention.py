"""Retention: delete copies a location no longer needs to keep, never a target's last one.

Per location and target, a copy is kept when it is among the location's
``keep_last`` newest, or younger than ``retention_days``; with neither set, all
copies are kept. Per target, the newest verified run with a stored copy (else the
newest run with any stored copy, whatever its status: a partly failed run's copy
counts) is always kept, in every location, so pruning can never leave a target with
nothing. ``Artifact.mark_deleted`` holds the same line as a hard guard.

Deleting runs by hand (the admin, any caller) goes through here too, so the
catalogue and the locations never drift: the copies leave every location with
their sidecar manifests and the per-target indexes are rewritten. Copies deleted by
prune stay in the catalogue as history (status "deleted").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from .. import engines
from ..locations import LocationError
from ..models import Artifact, BackupRun, CopyProtected, Location, Target, Verification
from . import manifest

logger = logging.getLogger(__name__)

REASON_VERIFIED = "the target's last verified copy"
REASON_NEWEST = "the target's newest stored copy (nothing verified yet)"


class DeletionRefused(Exception):
    """Deleting these runs would break a promise (a target's last verified or stored copy, a running run)."""


@dataclass
class Decision:
    location: str
    target: str
    run: int
    key: str
    created_at: str
    action: str  # "delete" or "keep"
    reason: str
    error: str = ""


def protected_runs() -> dict[int, str]:
    """Per target, the run that must survive any pruning, with the reason: the newest run with a
    passed verification and a stored copy, else the newest run with a stored copy, whatever its status."""
    stored = Artifact.objects.filter(run=OuterRef("pk"), status=Artifact.Status.STORED)
    passed = Verification.objects.filter(run=OuterRef("pk"), status=Verification.Status.PASSED)
    rows = (
        BackupRun.objects.filter(Exists(stored))
        .annotate(verified=Exists(passed))
        .order_by("target_id", F("started_at").desc(nulls_last=True), "-queued_at", "-pk")
        .values_list("target_id", "pk", "verified")
    )
    verified: dict[int, int] = {}
    newest: dict[int, int] = {}
    for target_id, run_id, is_verified in rows:  # newest first within each target
        newest.setdefault(target_id, run_id)
        if is_verified:
            verified.setdefault(target_id, run_id)
    protected = {run_id: REASON_NEWEST for target_id, run_id in newest.items() if target_id not in verified}
    protected.update({run_id: REASON_VERIFIED for run_id in verified.values()})
    return protected


def plan(as_of: datetime | None = None) -> list[Decision]:
    as_of = as_of or timezone.now()
    keep_runs = protected_runs()
    decisions: list[Decision] = []
    for location in Location.objects.all():
        if location.retention_days is None and location.keep_last is None:
            continue
        cutoff = as_of - timedelta(days=location.retention_days) if location.retention_days is not None else None
        copies = (
            Artifact.objects.filter(location=location, status=Artifact.Status.STORED)
            # An engine that runs its own backups (pgBackRest) expires them itself (retention is in its config).
            .exclude(run__engine__in=engines.names(runs_own_backup=True))
            .select_related("run__target")
            .order_by("run__target_id", "-created_at")
        )
        rank: dict[int, int] = {}
        for copy in copies:
            target_id = copy.run.target_id
            rank[target_id] = rank.get(target_id, 0) + 1
            decisions.append(_decide(location, copy, rank[target_id], cutoff, keep_runs))
    return decisions


def _decide(location, copy: Artifact, rank: int, cutoff, keep_runs: dict[int, str]) -> Decision:
    def decision(action: str, reason: str) -> Decision:
        return Decision(
            location=location.name,
            target=copy.run.target.name,
            run=copy.run_id,
            key=copy.key,
            created_at=copy.created_at.isoformat(),
            action=action,
            reason=reason,
        )

    if location.keep_last is not None and rank <= location.keep_last:
        return decision("keep", f"among the newest {location.keep_last}")
    if cutoff is not None and copy.created_at >= cutoff:
        return decision("keep", f"younger than {location.retention_days} days")
    if copy.run_id in keep_runs:
        return decision("keep", keep_runs[copy.run_id])
    if cutoff is None:
        return decision("delete", f"beyond the newest {location.keep_last}")
    return decision("delete", f"older than {location.retention_days} days")


def prune(as_of: datetime | None = None, *, dry_run: bool = False) -> list[Decision]:
    """Apply the plan: delete each expired copy and its manifest, then refresh the indexes."""
    decisions = plan(as_of)
    if dry_run:
        return decisions
    touched: set[tuple[int, int]] = set()
    for decision in decisions:
        if decision.action != "delete":
            continue
        copy = Artifact.objects.select_related("location", "run__target").get(
            location__name=decision.location, key=decision.key, run_id=decision.run
        )
        try:
            delete_copy(copy)
        except CopyProtected as exc:  # the plan and the guard disagree: the guard wins, and says so
            decision.action, decision.reason = "keep", str(exc)
            logger.error("prune: %s", exc)
            continue
        except LocationError as exc:
            decision.error = str(exc)
            logger.warning("prune: %s", exc)
            if copy.status == Artifact.Status.STORED:
                continue
        touched.add((copy.location_id, copy.run.target_id))
    _rewrite_indexes(touched)
    return decisions


def delete_copy(copy: Artifact) -> None:
    """Mark a copy deleted (the model's guard may refuse), then remove its artifact and sidecar.

    The row is marked first so the guard decides before anything irreversible happens. If the
    artifact cannot be removed, the row says "stored" again: it still is. A crash in between leaves
    a file the catalogue no longer claims (an orphan, never a catalogued copy that is missing).
    Raises CopyProtected or LocationError (after which ``copy.status`` says whether the artifact is gone).
    """
    copy.mark_deleted()
    backend = copy.location.backend()
    try:
        _delete_file(backend, copy.key)
    except LocationError:
        copy.mark_stored()
        raise
    try:
        _delete_file(backend, copy.key + manifest.SIDECAR_SUFFIX)
    except LocationError as exc:
        raise LocationError(f"{exc} (its artifact {copy.key} is deleted)") from None


def _delete_file(backend, key: str) -> None:
    try:
        backend.delete(key)
    except OSError as exc:  # a local folder's permissions or disk: stated like the backends' own errors
        raise LocationError(f"location {backend.name}: cannot delete {key}: {exc.strerror or exc}") from None


def _rewrite_indexes(touched: Iterable[tuple[int, int]]) -> None:
    for location_id, target_id in touched:
        manifest.write_index(Location.objects.get(pk=location_id), Target.objects.get(pk=target_id))


@dataclass
class RunDeletion:
    """What deleting runs did: the runs removed from the catalogue, the files removed, and errors."""

    deleted_runs: list[int] = field(default_factory=list)
    deleted_copies: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def deletion_refusal(run_ids: Iterable[int]) -> str | None:
    """Why these runs may not be deleted together, or None. Checked as a whole, so nothing is deleted
    when any target would lose its last verified copy or its last stored copy, or a run is in progress."""
    runs = list(BackupRun.objects.filter(pk__in=list(run_ids)).select_related("target").order_by("pk"))
    chosen = {run.pk for run in runs}
    for run in runs:
        if run.status in (BackupRun.Status.QUEUED, BackupRun.Status.RUNNING):
            return f"run #{run.pk} of target {run.target.name} is {run.status}; wait for it to finish"
    passed = Verification.objects.filter(run=OuterRef("run_id"), status=Verification.Status.PASSED)
    for target_id in sorted({run.target_id for run in runs}):
        stored = list(
            Artifact.objects.filter(run__target_id=target_id, status=Artifact.Status.STORED)
            .annotate(verified=Exists(passed))
            .values_list("run_id", "verified")
        )
        remaining = [verified for run_id, verified in stored if run_id not in chosen]
        name = next(run.target.name for run in runs if run.target_id == target_id)
        doomed = {run_id for run_id, verified in stored if run_id in chosen and verified}
        if doomed and not any(remaining):
            return (
                f"refusing to delete {_runs(doomed)}: the only verified copy of target {name} would be lost. "
                "Verify a newer run of it first."
            )
        if stored and not remaining:
            return (
                f"refusing to delete {_runs({run_id for run_id, _ in stored})}: the last stored copy of "
                f"target {name} would be lost"
            )
    return None


def _runs(run_ids: set[int]) -> str:
    listed = ", ".join(f"#{pk}" for pk in sorted(run_ids))
    return f"run {listed}" if len(run_ids) == 1 else f"runs {listed}"


def delete_runs(run_ids: Iterable[int]) -> RunDeletion:
    """Delete runs from the catalogue and their copies from every location, rewriting the indexes.

    Refused as a whole (DeletionRefused, nothing deleted) when ``deletion_refusal`` says so. A run
    whose copy could not be removed from a location stays in the catalogue, with that copy still
    "stored", so the catalogue never claims less than the locations hold; the error is reported.
    """
    run_ids = sorted(set(run_ids))
    refusal = deletion_refusal(run_ids)
    if refusal:
        raise DeletionRefused(refusal)
    result = RunDeletion()
    touched: set[tuple[int, int]] = set()
    for run in BackupRun.objects.filter(pk__in=run_ids).select_related("target").order_by("pk"):
        failed = False
        for copy in run.artifacts.filter(status=Artifact.Status.STORED).select_related("location", "run__target"):
            try:
                delete_copy(copy)
            except CopyProtected as exc:  # a race with another deletion since the check: the guard wins
                result.errors.append(str(exc))
                failed = True
            except LocationError as exc:
                result.errors.append(str(exc))
                failed = failed or copy.status == Artifact.Status.STORED
            if copy.status == Artifact.Status.DELETED:
                result.deleted_copies.append(f"{copy.location.name}: {copy.key}")
                touched.add((copy.location_id, run.target_id))
        if failed:
            result.errors.append(f"run #{run.pk} kept in the catalogue: a copy could not be deleted")
            continue
        BackupRun.objects.filter(pk=run.pk).delete()  # with its tombstoned copies and verifications
        result.deleted_runs.append(run.pk)
    _rewrite_indexes(touched)
    return result


def as_dicts(decisions: list[Decision]) -> list[dict]:
    return [asdict(d) for d in decisions]
