"""Measured RTO and RPO of an incident, against the scenario's and the severity's targets.

RTO: impact start → recovery verified (or now, while the clock still runs).
RPO: impact start − the newest good backup taken before it: the data-loss window. When a linked
restore names the run it restored, that run is the one; otherwise the newest succeeded run of any
target (except the portal's own catalogue) that started before the impact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from backups.models import BackupRun

from ..models import Incident


def human(delta: timedelta | None) -> str:
    """'45 min', '2 h 05 min', '3 d 4 h'; 'immediate' for a zero target."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0 min"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 3600:
        return f"{max(minutes, 1)} min" if seconds >= 60 else f"{seconds} s"
    if seconds < 86400:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{days} d {hours % 24} h"


def target_label(target: timedelta | None, unset: str = "immediate") -> str:
    return unset if not target else human(target)


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
class Measures:
    rto: timedelta
    rto_running: bool  # recovery not verified yet: the clock is still running
    rto_comparisons: list[Comparison]
    rpo: timedelta | None  # None: no good backup before the impact
    rpo_run: BackupRun | None
    rpo_comparisons: list[Comparison]
    loss_statement: str
    per_target: list[tuple[str, datetime | None]] = field(default_factory=list)

    @property
    def rto_text(self) -> str:
        return human(self.rto)

    @property
    def rpo_text(self) -> str:
        return human(self.rpo) if self.rpo is not None else "unknown (no good backup before the impact)"

    @property
    def rto_breached(self) -> bool:
        return any(c.breached for c in self.rto_comparisons)

    @property
    def rpo_breached(self) -> bool:
        return any(c.breached for c in self.rpo_comparisons)


def _good_runs_before(at: datetime):
    return (
        BackupRun.objects.with_artifact()  # partial runs' landed copies are recovery points too
        .filter(started_at__lt=at)
        .exclude(target__engine="portal")
        .select_related("target")
        .order_by("-started_at")
    )


def rpo_run(incident: Incident) -> BackupRun | None:
    """The backup the data-loss window is measured from (see the module docstring)."""
    restored = (
        BackupRun.objects.filter(
            restores__in=[job.restore_id for job in incident.jobs.filter(restore__isnull=False)],
            status__in=BackupRun.WITH_ARTIFACT,
        )
        .order_by("-started_at")
        .first()
    )
    return restored or _good_runs_before(incident.impact_started_at).first()


def measure(incident: Incident, now: datetime | None = None) -> Measures:
    now = now or timezone.now()
    impact = incident.impact_started_at
    rto = (incident.recovered_at or now) - impact
    rto_comparisons = []
    if incident.scenario_id:
        target = incident.scenario.target_rto
        rto_comparisons.append(
            Comparison(f"scenario {incident.scenario.number} target", target, rto > (target or timedelta(0)))
        )
    target = incident.severity.target_rto
    rto_comparisons.append(Comparison(f"{incident.severity.key} target", target, rto > target))

    run = rpo_run(incident)
    rpo = impact - run.started_at if run else None
    if rpo is not None and rpo < timedelta(0):
        rpo = timedelta(0)  # a restored run taken after the impact started loses nothing before it
    rpo_comparisons = []
    if incident.scenario_id and incident.scenario.target_rpo is not None:
        target = incident.scenario.target_rpo
        rpo_comparisons.append(
            Comparison(f"scenario {incident.scenario.number} target", target, rpo is None or rpo > target)
        )
    if run is None:
        statement = (
            f"No good backup was taken before {impact:%Y-%m-%d %H:%M} UTC: "
            "data written before then may not be recoverable."
        )
    else:
        statement = (
            f"Data written between {run.started_at:%Y-%m-%d %H:%M} UTC and {impact:%Y-%m-%d %H:%M} UTC may be lost."
        )
    per_target = []
    seen: set[int] = set()
    for candidate in _good_runs_before(impact)[:200]:
        if candidate.target_id not in seen:
            seen.add(candidate.target_id)
            per_target.append((candidate.target.name, candidate.started_at))
    return Measures(
        rto=rto,
        rto_running=incident.recovered_at is None,
        rto_comparisons=rto_comparisons,
        rpo=rpo,
        rpo_run=run,
        rpo_comparisons=rpo_comparisons,
        loss_statement=statement,
        per_target=per_target,
    )
