"""Measured RTO and RPO of an incident, against the scenario's and the severity's targets.

RTO: impact start → recovery verified; resolving stops the clock too (at resolution, when it was
resolved without verified recovery). While neither happened the clock runs to now.

RPO, the data-loss window: for each target the incident's scenario protects (the plan's
``[scenarios.KEY] targets``), the newest *verified* copy (a run with a passed verification) taken
before impact started; the window runs from the stalest of those to impact start. It is unknown,
and says why, when the incident has no scenario, the scenario protects no target, or a target has
no verified copy from before the impact. Backups of other targets never count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from backups.models import BackupRun
from drportal import humanize

from ..models import Incident


def target_label(target: timedelta | None, unset: str = "immediate") -> str:
    return unset if not target else humanize.duration(target)


@dataclass
class Comparison:
    """One measure against one target."""

    label: str  # e.g. "scenario 1 target", "P1 target"
    target: timedelta | None  # None or 0: immediate
    breached: bool

    @property
    def text(self) -> str:
        verdict = "BREACHED" if self.breached else "met"
        return f"{self.label} {target_label(self.target)}: {verdict}"


@dataclass
class RecoveryPoint:
    """One protected target and its newest verified copy from before the impact (None: there is none)."""

    target: str
    run: BackupRun | None


@dataclass
class Measures:
    rto: timedelta
    rto_running: bool  # neither recovery verified nor resolved yet: the clock is still running
    rto_comparisons: list[Comparison]
    rpo: timedelta | None  # None: unknown, see rpo_unknown_reason
    rpo_run: BackupRun | None  # the (stalest) verified copy the window is measured from
    rpo_comparisons: list[Comparison]
    loss_statement: str  # for the customer notice
    rpo_unknown_reason: str = ""
    rto_end: str = ""  # what stopped the clock: "recovery verified", "resolved without verified recovery", ""
    per_target: list[RecoveryPoint] = field(default_factory=list)

    @property
    def rpo_text(self) -> str:
        return humanize.duration(self.rpo) if self.rpo is not None else f"unknown ({self.rpo_unknown_reason})"

    @property
    def rpo_source(self) -> str:
        """Where the figure comes from, e.g. "newest verified copy of database before impact: backup run #3"."""
        if self.rpo_run is None:
            return ""
        return (
            f"newest verified copy of {self.rpo_run.target.name} before impact: backup run #{self.rpo_run.pk}, "
            f"started {self.rpo_run.started_at:%Y-%m-%d %H:%M} UTC"
        )

    @property
    def rto_breached(self) -> bool:
        return any(c.breached for c in self.rto_comparisons)

    @property
    def rpo_breached(self) -> bool:
        return any(c.breached for c in self.rpo_comparisons)


def recovery_points(incident: Incident) -> list[RecoveryPoint]:
    """Per target the scenario protects: its newest verified run that started before the impact."""
    if not incident.scenario_id:
        return []
    points = []
    for target in incident.scenario.targets.order_by("name"):
        run = (
            BackupRun.objects.verified()
            .filter(target=target, started_at__lt=incident.impact_started_at)
            .select_related("target")
            .order_by("-started_at", "-id")
            .first()
        )
        points.append(RecoveryPoint(target.name, run))
    return points


def _unknown_reason(incident: Incident, points: list[RecoveryPoint]) -> str:
    if not incident.scenario_id:
        return "no scenario chosen, so it is not known which data is at risk"
    if not points:
        return f"scenario {incident.scenario.number or incident.scenario.key} protects no backed-up target"
    missing = [p.target for p in points if p.run is None]
    return f"no verified backup of {', '.join(missing)} before impact"


def measure(incident: Incident, now: datetime | None = None) -> Measures:
    now = now or timezone.now()
    impact = incident.impact_started_at
    stopped_at, stopped_by = incident.rto_stopped_at, incident.rto_stopped_by
    rto = (stopped_at or now) - impact
    rto_comparisons = []
    if incident.scenario_id:
        target = incident.scenario.target_rto
        rto_comparisons.append(
            Comparison(f"scenario {incident.scenario.number} target", target, rto > (target or timedelta(0)))
        )
    target = incident.severity.target_rto
    rto_comparisons.append(Comparison(f"{incident.severity.key} target", target, rto > target))

    points = recovery_points(incident)
    known = bool(points) and all(p.run is not None for p in points)
    run = min((p.run for p in points), key=lambda r: r.started_at) if known else None
    rpo = impact - run.started_at if run else None
    reason = "" if run else _unknown_reason(incident, points)
    rpo_comparisons = []
    if incident.scenario_id and incident.scenario.target_rpo is not None:
        target = incident.scenario.target_rpo
        rpo_comparisons.append(
            Comparison(f"scenario {incident.scenario.number} target", target, rpo is None or rpo > target)
        )
    if run is None:
        statement = (
            f"The data-loss window is unknown ({reason}): data written before "
            f"{impact:%Y-%m-%d %H:%M} UTC may not be recoverable."
        )
    else:
        statement = (
            f"Data written between {run.started_at:%Y-%m-%d %H:%M} UTC and {impact:%Y-%m-%d %H:%M} UTC may be lost."
        )
    return Measures(
        rto=rto,
        rto_running=stopped_at is None,
        rto_comparisons=rto_comparisons,
        rpo=rpo,
        rpo_run=run,
        rpo_comparisons=rpo_comparisons,
        loss_statement=statement,
        rpo_unknown_reason=reason,
        rto_end=stopped_by,
        per_target=points,
    )
