"""RPO monitoring: how much data would be lost if disaster struck now, per objective.

An objective over targets is as fresh as its stalest target: each target's
recovery point is the start of its newest backup that succeeded and passed
verification (the snapshot time, not when the upload ended). A ping objective's
recovery point is its newest ping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from ..models import BackupRun, Objective, ObjectiveChange, Ping, Verification
from ..signals import objective_changed
from . import pgbackrest

logger = logging.getLogger(__name__)


@dataclass
class Exposure:
    last_good_at: datetime | None
    exposure: timedelta | None
    stale_target: str | None = None


def verified_recovery_points(target_ids: list[int]) -> dict[int, datetime | None]:
    """Per target: the snapshot time of its newest verified run with an artifact (one query).

    Partial runs count: the copies that landed are verified like any other.
    """
    passed = Verification.objects.filter(run=OuterRef("pk"), status=Verification.Status.PASSED)
    runs = (
        BackupRun.objects.with_artifact()
        .filter(target_id__in=target_ids)
        .filter(pk__in=Subquery(passed.values("run")))
        .values("target_id")
        .annotate(newest=Max("started_at"))
    )
    points = {row["target_id"]: row["newest"] for row in runs}
    return {target_id: points.get(target_id) for target_id in target_ids}


def exposure_of(objective: Objective, now: datetime) -> Exposure:
    if objective.ping:
        last = objective.pings.aggregate(newest=Max("received_at"))["newest"]
        return Exposure(last, now - last if last else None)
    targets = list(objective.targets.all())
    if not targets:
        return Exposure(None, None)
    points = verified_recovery_points([t.pk for t in targets])
    # pgBackRest targets are as fresh as their newest WAL archived to every location, not their last backup.
    points.update(pgbackrest.exposure_points(targets, now))
    names = {t.pk: t.name for t in targets}
    if any(point is None for point in points.values()):
        missing = next(names[pk] for pk, point in points.items() if point is None)
        return Exposure(None, None, missing)
    stalest_pk = min(points, key=lambda pk: points[pk])
    last = points[stalest_pk]
    return Exposure(last, now - last, names[stalest_pk])


def objective_verdict(state: str, exposure_seconds: float | None) -> tuple[bool, str]:
    """(safe, why) for an objective: what /health and the dashboard both say about it.

    An objective with no verified copy yet is not safe, whatever state it was last stored in.
    Late (past its RPO but within the grace) still counts as safe: it is not breached yet.
    """
    if exposure_seconds is None:
        return False, "no verified copy yet"
    if state == "breached":
        return False, "breached"
    if state == "late":
        return True, "late"
    if state == "ok":
        return True, "ok"
    return False, "not evaluated yet"


def objective_label(objective: Objective, state: str, exposure_seconds: float | None, now: datetime) -> tuple[str, str]:
    """(css state, words) for one objective: what the dashboard's RPO table and the exported plan both say.

    Built on ``objective_verdict``, so neither ever calls safe what /health does not.
    """
    if exposure_seconds is None and objective.waiting_for_first_copy(None, now):
        return "waiting", f"waiting for the first {'ping' if objective.ping else 'backup'}"
    safe, why = objective_verdict(state, exposure_seconds)
    if safe:
        return state, objective.State(state).label
    if exposure_seconds is None and objective.ping:
        why = "never fed: no ping received yet"
    return "breached", f"not safe: {why}"


def evaluate(now: datetime | None = None) -> list[Objective]:
    """Recompute every enabled objective; record state changes and signal them (alerts listen)."""
    now = now or timezone.now()
    results = []
    for objective in Objective.objects.filter(enabled=True).prefetch_related("targets"):
        results.append(evaluate_one(objective, now))
    return results


def evaluate_one(objective: Objective, now: datetime) -> Objective:
    exposure = exposure_of(objective, now)
    # With `now`: a new objective still waiting for its first copy stays unknown (no breach alert, no reminders).
    new_state = objective.state_for(exposure.exposure, now)
    with transaction.atomic():
        locked = Objective.objects.select_for_update().get(pk=objective.pk)
        old_state = locked.state
        locked.last_good_at = exposure.last_good_at
        locked.exposure_seconds = exposure.exposure.total_seconds() if exposure.exposure is not None else None
        locked.evaluated_at = now
        reminder = False
        if new_state != old_state:
            locked.state = new_state
            locked.state_changed_at = now
            ObjectiveChange.objects.create(
                objective=locked,
                at=now,
                from_state=old_state,
                to_state=new_state,
                exposure_seconds=locked.exposure_seconds,
                last_good_at=exposure.last_good_at,
            )
            locked.next_reminder_at = (
                now + timedelta(seconds=settings.ALERT_REMINDER_SECONDS)
                if new_state == Objective.State.BREACHED
                else None
            )
        elif new_state == Objective.State.BREACHED and locked.next_reminder_at and now >= locked.next_reminder_at:
            reminder = True
            locked.next_reminder_at = now + timedelta(seconds=settings.ALERT_REMINDER_SECONDS)
        locked.save()
    if new_state != old_state and not (old_state == Objective.State.UNKNOWN and new_state == Objective.State.OK):
        logger.info("objective %s: %s -> %s", locked.name, old_state, new_state)
        objective_changed.send(
            sender=Objective, objective=locked, from_state=old_state, to_state=new_state, reminder=False
        )
    elif reminder:
        objective_changed.send(
            sender=Objective, objective=locked, from_state=old_state, to_state=new_state, reminder=True
        )
    return locked


def record_ping(objective: Objective, *, remote_addr: str | None, user_agent: str, body: str) -> Ping:
    ping = Ping.objects.create(
        objective=objective, remote_addr=remote_addr or None, user_agent=user_agent[:200], body=body[:1000]
    )
    evaluate_one(objective, ping.received_at)
    return ping


def describe(objective: Objective) -> dict:
    return {
        "name": objective.name,
        "target_seconds": objective.rpo.total_seconds(),
        "grace_seconds": objective.effective_grace.total_seconds(),
        "exposure_seconds": objective.exposure_seconds,
        "state": objective.state,
        "last_good_at": objective.last_good_at.isoformat() if objective.last_good_at else None,
        "ping": objective.ping,
        "targets": [t.name for t in objective.targets.all()],
    }
