"""The admin index dashboard: are we safe right now?

Every query here is bounded by the number of targets, objectives and open jobs,
never by the number of runs: per-target data comes from subqueries on the
(target, -queued_at) index, charts from one aggregate over the last 30 days.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, F, OuterRef, Subquery
from django.db.models.functions import TruncDay
from django.urls import reverse
from django.utils import timezone

from backups.admin.display import button_permissions, job_buttons
from backups.models import BackupRun, Objective, Restore, Target, Verification
from backups.services.rpo import objective_label, objective_verdict
from drportal.humanize import duration as human_duration
from drportal.models import Probe

from . import charts, verdict

CHART_DAYS = 30
SAWTOOTH_SAMPLES = 120


def dashboard_context(request) -> dict:
    now = timezone.now()
    user = request.user
    # The one-line answer, from the same checks as /health (see portal.verdict).
    answer = verdict.compute(now)
    context: dict = {"now": now, "verdict": answer, "read_only": not answer.checks.get("read_only", {}).get("ok", True)}
    if user.has_perm("backups.view_objective"):
        context["objectives"] = objectives(now)
    if user.has_perm("backups.view_backuprun"):
        # The job buttons of the targets list, drawn by the same helper with the same permissions.
        perms = button_permissions(request)
        context["targets"] = targets(now, perms)
        context["target_buttons"] = any(perms.values())
        context["running"] = running_jobs()
        # Refresh the page only while something runs, so a finished job shows without a manual reload.
        context["refresh_seconds"] = 15 if any(context["running"].values()) else None
        context["fleet"] = fleet(now)
    if user.has_perm("incidents.view_incident"):
        context["incidents"] = open_incidents(now)
        context["overdue_reports"] = verdict.overdue_reports(now)
    if user.has_perm("drills.view_drill"):
        context["failed_drills"] = answer.failed_drills
    if user.has_perm("drportal.view_probe"):
        context["probes"] = list(Probe.objects.filter(enabled=True).order_by("name"))
    context["schedule"] = upcoming(user, now)
    return context


# --- objectives ---------------------------------------------------------------------------


def objectives(now: datetime) -> list[dict]:
    rows = list(Objective.objects.filter(enabled=True).prefetch_related("targets"))
    since = now - timedelta(days=CHART_DAYS * 2)  # earlier points set the exposure at the window's start
    target_ids = {t.pk for o in rows for t in o.targets.all()}
    verified = (
        BackupRun.objects.filter(
            target_id__in=target_ids,
            status__in=BackupRun.WITH_ARTIFACT,  # a verified partial run is a recovery point too
            started_at__gte=since,
            verifications__status=Verification.Status.PASSED,
        )
        .values_list("target_id", "started_at")
        .distinct()
    )
    points_by_target: dict[int, list[datetime]] = {}
    for target_id, started in verified:
        points_by_target.setdefault(target_id, []).append(started)
    ping_rows = Objective.objects.filter(
        pk__in=[o.pk for o in rows if o.ping], pings__received_at__gte=since
    ).values_list("pk", "pings__received_at")
    pings: dict[int, list[datetime]] = {}
    for objective_id, received in ping_rows:
        pings.setdefault(objective_id, []).append(received)
    result = []
    for objective in rows:
        if objective.ping:
            series = [sorted(pings.get(objective.pk, []))]
        else:
            series = [sorted(points_by_target.get(t.pk, [])) for t in objective.targets.all()]
        safe, why = objective_verdict(objective.state, objective.exposure_seconds)
        # The same words as /health's verdict and the exported plan; a new objective without its first
        # copy is "waiting" (not safe, but said calmly: no alert is sent either).
        state_class, state_label = objective_label(objective, objective.state, objective.exposure_seconds, now)
        result.append(
            {
                "objective": objective,
                # The same verdict /health gives: no verified copy yet is not safe, whatever the stored state.
                "safe": safe,
                "verdict": why,
                "state_class": state_class,
                "state_label": state_label,
                "never_fed": objective.ping and objective.exposure_seconds is None,
                "exposure": human_duration(objective.exposure_seconds or 0),
                "target": human_duration(objective.rpo.total_seconds()),
                "url": reverse("admin:backups_objective_change", args=[objective.pk]),
                "chart": charts.sawtooth(exposure_series(series, now), limit=objective.rpo.total_seconds()),
            }
        )
    return result


def exposure_series(series: list[list[datetime]], now: datetime) -> list[tuple[datetime, float | None]]:
    """Exposure sampled over the chart window: the age of the stalest series' newest point."""
    start = now - timedelta(days=CHART_DAYS)
    span = (now - start).total_seconds()
    samples = []
    for index in range(SAWTOOTH_SAMPLES + 1):
        moment = start + timedelta(seconds=span * index / SAWTOOTH_SAMPLES)
        worst: float | None = 0.0
        for points in series or [[]]:
            position = bisect_right(points, moment)
            if position == 0:
                worst = None
                break
            worst = max(worst, (moment - points[position - 1]).total_seconds())
        samples.append((moment, worst))
    return samples


# --- targets and jobs ---------------------------------------------------------------------


def targets(now: datetime, perms: dict[str, bool] | None = None) -> list[dict]:
    """Each target's newest run, good run and check, its charts and (with ``perms``) its job buttons."""
    newest = BackupRun.objects.filter(target=OuterRef("pk")).order_by("-queued_at")
    newest_ok = newest.filter(status__in=BackupRun.WITH_ARTIFACT)  # partial: its landed copies are backups
    newest_check = Verification.objects.filter(target=OuterRef("pk")).order_by("-queued_at")
    rows = Target.objects.annotate(
        last_run_id=Subquery(newest.values("pk")[:1]),
        last_status=Subquery(newest.values("status")[:1]),
        last_at=Subquery(newest.values("queued_at")[:1]),
        last_error=Subquery(newest.values("error")[:1]),
        last_ok_at=Subquery(newest_ok.values("started_at")[:1]),
        last_ok_size=Subquery(newest_ok.values("bytes_out")[:1]),
        stored_run_id=Subquery(newest_ok.values("pk")[:1]),
        check_status=Subquery(newest_check.values("status")[:1]),
        check_kind=Subquery(newest_check.values("kind")[:1]),
        check_at=Subquery(newest_check.values("queued_at")[:1]),
    ).order_by("name")
    since = now - timedelta(days=CHART_DAYS)
    daily = (
        BackupRun.objects.filter(status__in=BackupRun.WITH_ARTIFACT, queued_at__gte=since)
        .annotate(day=TruncDay("queued_at"))
        .values("target_id", "day")
        .annotate(size=Avg("bytes_out"), duration=Avg(F("finished_at") - F("started_at")))
    )
    by_target: dict[int, dict] = {}
    for row in daily:
        by_target.setdefault(row["target_id"], {})[row["day"].date()] = row
    days = [(since + timedelta(days=i + 1)).date() for i in range(CHART_DAYS)]
    result = []
    for target in rows:
        stats = by_target.get(target.pk, {})
        sizes = [stats[d]["size"] if d in stats else None for d in days]
        durations = [
            stats[d]["duration"].total_seconds() if d in stats and stats[d]["duration"] else None for d in days
        ]
        result.append(
            {
                "target": target,
                "run_url": reverse("admin:backups_backuprun_change", args=[target.last_run_id])
                if target.last_run_id
                else None,
                "size_chart": charts.bars(sizes, days, kind="size"),
                "duration_chart": charts.bars(durations, days, kind="duration", color="#79aec8"),
                "buttons": job_buttons(target.pk, target.stored_run_id, perms) if perms and any(perms.values()) else "",
            }
        )
    return result


def running_jobs() -> dict:
    from backups.display import progress_bar, restore_progress_bar

    runs = (
        BackupRun.objects.filter(status__in=["queued", "running"]).select_related("target").order_by("queued_at")[:50]
    )
    restores = Restore.objects.filter(status__in=["queued", "running"]).order_by("queued_at")[:20]
    checks = Verification.objects.filter(status__in=["queued", "running"]).select_related("run__target")[:20]
    from backups.services.queues import waiting_message
    from drportal.workers import live_workers_per_queue

    served = live_workers_per_queue()
    return {
        "runs": [
            {
                "run": r,
                "bar": progress_bar(r),
                "waiting": waiting_message(r.queue) if r.status == "queued" and r.queue not in served else "",
            }
            for r in runs
        ],
        "restores": [{"restore": r, "bar": restore_progress_bar(r)} for r in restores],
        "verifications": list(checks),
    }


def fleet(now: datetime) -> dict:
    """Each queue with its targets and live workers, and which beat schedules (and which stand by)."""
    from backups.services.queues import states
    from drportal.workers import beat_state

    rows = []
    for state in states(now):
        rows.append(
            {
                "queue": state.queue,
                "targets": state.targets[:12],
                "more_targets": max(0, len(state.targets) - 12),
                "workers": state.workers,
                "problem": state.problem if state.targets or state.queue == settings.CELERY_TASK_DEFAULT_QUEUE else "",
                "shared": state.queue == settings.CELERY_TASK_DEFAULT_QUEUE,
            }
        )
    return {"queues": rows, "beat": beat_state(now)}


# --- incidents, drills, reviews -----------------------------------------------------------


def open_incidents(now: datetime) -> list[dict]:
    from incidents.models import Incident

    rows = (
        Incident.objects.filter(status__in=Incident.OPEN_STATUSES)
        .select_related("severity", "scenario")
        .order_by("severity__order", "detected_at")
    )
    result = []
    for incident in rows:
        target = (
            incident.scenario.target_rto
            if incident.scenario and incident.scenario.target_rto
            else incident.severity.target_rto
        )
        # Open, but the clock may have stopped already (recovery verified, not yet resolved).
        elapsed = (incident.rto_stopped_at or now) - incident.impact_started_at
        result.append(
            {
                "incident": incident,
                "url": reverse("admin:incidents_incident_change", args=[incident.pk]),
                "elapsed": elapsed,
                "target": target,
                "breached": bool(target) and elapsed > target,
            }
        )
    return result


def upcoming(user, now: datetime) -> list[dict]:
    """Drills, findings and plan reviews due in the next 30 days, and everything overdue."""
    if not user.has_perm("drills.view_drill"):
        return []
    from drills.services.calendar import upcoming_items

    return upcoming_items(now, days=30)
