"""Retention: delete copies a location no longer needs to keep, never the last verified one.

Per location and target, a copy is kept when it is among the location's
``keep_last`` newest, or younger than ``retention_days``; with neither set, all
copies are kept. The newest verified run of each target is always kept, in
every location, so pruning can never leave a target with nothing proven.
Deleted copies stay in the catalogue as history (status "deleted").
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..locations import LocationError
from ..models import Artifact, BackupRun, Location, Verification
from . import manifest

logger = logging.getLogger(__name__)


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


def protected_runs() -> set[int]:
    """Per target, the newest succeeded run with a passed verification (or, if none was ever
    verified, the newest succeeded run): the copy that must survive any pruning."""
    passed = Verification.objects.filter(run=OuterRef("pk"), status=Verification.Status.PASSED)
    succeeded = BackupRun.objects.filter(status=BackupRun.Status.SUCCEEDED, artifacts__status=Artifact.Status.STORED)
    protected: dict[int, int] = {}
    for verified in (True, False):
        rows = (
            succeeded.annotate(verified=Exists(passed))
            .filter(verified=True)
            .order_by("target_id", "-started_at")
            .values_list("target_id", "pk")
            if verified
            else succeeded.order_by("target_id", "-started_at").values_list("target_id", "pk")
        )
        for target_id, run_id in rows:
            protected.setdefault(target_id, run_id)  # first row per target is its newest
    return set(protected.values())


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
            # pgBackRest expires its own backups (the location's retention is in its configuration).
            .exclude(run__engine="pgbackrest")
            .select_related("run__target")
            .order_by("run__target_id", "-created_at")
        )
        rank: dict[int, int] = {}
        for copy in copies:
            target_id = copy.run.target_id
            rank[target_id] = rank.get(target_id, 0) + 1
            decisions.append(_decide(location, copy, rank[target_id], cutoff, keep_runs))
    return decisions


def _decide(location, copy: Artifact, rank: int, cutoff, keep_runs: set[int]) -> Decision:
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
        return decision("keep", "the target's last verified copy")
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
        backend = copy.location.backend()
        try:
            backend.delete(copy.key)
            backend.delete(copy.key + manifest.SIDECAR_SUFFIX)
        except LocationError as exc:
            decision.error = str(exc)
            logger.warning("prune: %s", exc)
            continue
        Artifact.objects.filter(pk=copy.pk).update(status=Artifact.Status.DELETED, deleted_at=timezone.now())
        touched.add((copy.location_id, copy.run.target_id))
    for location_id, target_id in touched:
        location = Location.objects.get(pk=location_id)
        manifest.write_index(location, location.targets.model.objects.get(pk=target_id))
    return decisions


def as_dicts(decisions: list[Decision]) -> list[dict]:
    return [asdict(d) for d in decisions]
