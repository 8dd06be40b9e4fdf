"""The dashboard's one-line answer to "are we safe right now?": safe, at risk, or not safe, with reasons.

One source of truth: the verdict is built from ``portal.health.status()`` and its
``failing_checks()`` lines, so the dashboard never says "safe" while /health answers 503 for a
hard reason. The levels:

- **not safe**: /health fails for a hard reason: an objective breached (or without a copy after
  its first-backup grace), a target whose newest run failed, no live worker on a queue, the
  database or broker down, no recent good backup, or the portal read-only.
- **waiting for the first backup**: /health fails (still 503: waiting is not safe), but only because
  objectives created less than ``FIRST_ALERT_GRACE_SECONDS`` ago have no copy or ping yet
  (and so no good backup exists at all), and targets that never ran still miss their ``env:``
  variable on the workers (listed: their first backup will fail until it is set). Said calmly:
  nothing has failed, and no alert is sent.
- **at risk**: nothing hard fails, but something soft does: an objective late within its grace,
  beat not ticking (scheduled jobs will stop), a health-check probe down, or the newest drill of a
  test failed. /health may answer 503 for beat; the dashboard says "at risk", not "safe".
- **safe**: /health answers 200 and nothing soft is wrong.

Overdue post-incident reports are shown on the dashboard but do not change the verdict: they
do not make recovery less likely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from . import health

SAFE, AT_RISK, WAITING, NOT_SAFE = "safe", "at_risk", "waiting", "not_safe"
HEADLINES = {
    SAFE: "Safe",
    AT_RISK: "At risk",
    WAITING: "Not safe yet: waiting for the first backup",
    NOT_SAFE: "Not safe",
}
# Checks whose failure puts recovery at risk without making it impossible right now.
SOFT_CHECKS = {"beat"}


@dataclass
class Verdict:
    level: str
    problems: list[str] = field(default_factory=list)  # hard: why /health fails
    waiting: list[str] = field(default_factory=list)  # new objectives without their first copy yet
    risks: list[str] = field(default_factory=list)  # soft: safe now, but for how long
    health_ok: bool = False
    checks: dict = field(default_factory=dict)  # /health's checks, for the rest of the dashboard
    failed_drills: list[dict] = field(default_factory=list)

    @property
    def headline(self) -> str:
        return HEADLINES[self.level]

    @property
    def reasons(self) -> list[str]:
        return self.problems + self.waiting + self.risks


def waiting_objectives(objectives: list, now: datetime) -> dict[str, bool]:
    """Enabled objectives still in their first-backup grace without a copy: name → is it fed by pings."""
    return {o.name: o.ping for o in objectives if o.last_good_at is None and o.waiting_for_first_copy(None, now)}


def compute(now: datetime | None = None) -> Verdict:
    now = now or timezone.now()
    from backups.models import Objective

    ok, checks = health.status(now)
    verdict = Verdict(level=SAFE, health_ok=ok, checks=checks, failed_drills=failed_drills())
    objectives = list(Objective.objects.filter(enabled=True).order_by("name"))
    waiting = waiting_objectives(objectives, now)
    for name, check in checks.items():
        if check["ok"]:
            continue
        if name == "objectives":
            for failing in check["failing"]:
                line = health.failing_checks({name: {"ok": False, "failing": [failing]}})[0]
                if failing["exposure_seconds"] is None and failing["name"] in waiting:
                    what = "its first ping" if waiting[failing["name"]] else "its first verified backup"
                    verdict.waiting.append(f"objective {failing['name']}: waiting for {what}")
                else:
                    verdict.problems.append(line)
        elif name == "newest_backup" and check["age_seconds"] is None and waiting:
            continue  # no backup at all yet: the waiting objectives already say so
        elif name == "targets" and waiting:
            # A fresh install: a target that never ran and whose variable no worker has yet is part of the
            # setup still to do, said as such (its first backup will fail until it is set), not an alarm.
            setup = [u for u in check.get("unreadable", []) if u["never_run"]]
            verdict.waiting += [
                f"target {u['name']}: env:{u['env']} is not set on any live worker of queue {u['queue']}"
                " (its first backup will fail until it is)"
                for u in setup
            ]
            rest = {**check, "unreadable": [u for u in check.get("unreadable", []) if not u["never_run"]]}
            if rest["failing"] or rest["unreadable"]:
                verdict.problems += health.failing_checks({name: rest})
        elif name in SOFT_CHECKS:
            verdict.risks.append("beat: scheduled jobs are not being sent (no tick lately)")
        else:
            verdict.problems += health.failing_checks({name: check})
    verdict.risks += soft_risks(objectives, verdict.failed_drills)
    if verdict.problems:
        verdict.level = NOT_SAFE
    elif verdict.waiting:
        verdict.level = WAITING
    elif verdict.risks:
        verdict.level = AT_RISK
    return verdict


def soft_risks(objectives: list, drills: list[dict]) -> list[str]:
    """What does not fail /health but should not be called safe: late objectives, probes down, failed drills."""
    from drportal.humanize import duration as human_duration
    from drportal.models import Probe

    risks = [
        f"objective {o.name}: late (newest good copy {human_duration(o.exposure_seconds or 0)} old,"
        f" RPO {human_duration(o.rpo.total_seconds())})"
        for o in objectives
        if o.state == o.State.LATE
    ]
    down = Probe.objects.filter(enabled=True, state=Probe.State.DOWN).values_list("name", flat=True)
    risks += [f"probe {name}: down" for name in down]
    risks += [f"drill {d['title']}: failed on {d['performed_at']:%Y-%m-%d}" for d in drills]
    return risks


def failed_drills() -> list[dict]:
    """Each test whose newest performed drill failed (a later pass clears it)."""
    from django.urls import reverse

    from drills.models import Drill

    newest: dict[int, Drill] = {}
    done = Drill.objects.filter(status=Drill.Status.DONE, performed_at__isnull=False).select_related("activity")
    for drill in done.order_by("activity_id", "-performed_at", "-id"):
        newest.setdefault(drill.activity_id, drill)
    return [
        {
            "title": drill.activity.name,
            "performed_at": drill.performed_at,
            "url": reverse("admin:drills_drill_change", args=[drill.pk]),
        }
        for drill in sorted(newest.values(), key=lambda d: d.activity.name)
        if drill.result == Drill.Result.FAIL
    ]


def overdue_reports(now: datetime) -> list[dict]:
    """Resolved incidents whose post-incident report is past due and not submitted."""
    from django.urls import reverse

    from incidents.models import Incident

    rows = Incident.objects.filter(
        resolved_at__isnull=False, report_submitted_at__isnull=True, report_due_at__lt=now
    ).order_by("report_due_at")
    return [
        {"incident": i, "due": i.report_due_at, "url": reverse("admin:incidents_incident_change", args=[i.pk])}
        for i in rows[:20]
    ]
