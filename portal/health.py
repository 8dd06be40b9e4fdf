"""The portal's own health: would we be safe if disaster struck now?

``/health`` answers 200 only when every check passes, 503 otherwise, with a JSON body
that names each check and, for the failing ones, the objectives, targets and queues
at fault (by name: no secret, hostname or URL is ever in it):

- database, broker: the portal can run at all;
- worker: a live worker serves every queue that jobs go to (the default queue, and
  each enabled target's queue);
- beat: scheduled jobs are being sent;
- objectives: no enabled RPO objective is breached or still without a verified copy;
- targets: no enabled target's newest finished run failed without a newer success, and no enabled
  target reads an ``env:`` variable that none of its queue's live workers has (its next run would fail);
- newest_backup: some good backup is recent;
- read_only: the portal accepts changes (an incident may have switched it off).

``/health/live`` is the load balancer's question only: is the process up and does its
database answer? It never fails because a backup did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.utils import timezone

from backups.services.queues import unreadable_sources
from backups.services.rpo import objective_verdict
from drportal.workers import BEAT, beat_state

CHECKS = ("database", "broker", "worker", "beat", "objectives", "targets", "newest_backup", "read_only")


def _age(moment: datetime | None, now: datetime) -> float | None:
    return round((now - moment).total_seconds(), 1) if moment else None


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def check_broker() -> dict:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    try:
        with Connection(
            url, connect_timeout=2, transport_options=getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        ) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        return {"ok": True, "transport": url.split(":", 1)[0]}
    except Exception as exc:
        return {"ok": False, "transport": url.split(":", 1)[0], "error": type(exc).__name__}


# --- the read-only switch (incidents owns it) ----------------------------------------------


def read_only() -> bool:
    from incidents.services.security import read_only_on

    return read_only_on()


# --- queues -------------------------------------------------------------------------------


def default_queue() -> str:
    from drportal.celery import app

    return app.conf.task_default_queue or "celery"


def queues_for_targets(targets: Iterable) -> dict[str, list[str]]:
    """Queue name → the names of the targets whose jobs go there (each target's ``queue``)."""
    queues: dict[str, list[str]] = {}
    for target in targets:
        queues.setdefault(target.queue or default_queue(), []).append(target.name)
    return queues


# --- objectives ----------------------------------------------------------------------------


def check_objectives(now: datetime) -> dict:
    from backups.models import Objective
    from backups.services.rpo import exposure_of

    failing, count = [], 0
    for objective in Objective.objects.filter(enabled=True).prefetch_related("targets").order_by("name"):
        count += 1
        exposure = exposure_of(objective, now)
        seconds = exposure.exposure.total_seconds() if exposure.exposure is not None else None
        safe, why = objective_verdict(objective.state_for(exposure.exposure), seconds)
        if not safe:
            failing.append({"name": objective.name, "state": why, "exposure_seconds": seconds})
    return {"ok": not failing, "enabled": count, "failing": failing}


def check_targets(now: datetime | None = None) -> dict:
    """A target whose newest finished run failed, or only partly landed, with nothing newer that succeeded;
    or whose ``env:`` source no live worker of its queue has (``unreadable``: its next run will fail).

    A partial run's copies count for RPO, but a location that refuses copies is not safe either: the
    plan's promise of a copy in every location no longer holds for that target. A queue without any
    live worker fails the worker check; its targets' env: names are not counted twice here.
    """
    from django.db.models import OuterRef, Subquery

    from backups.models import BackupRun, Target

    Status = BackupRun.Status
    finished = BackupRun.objects.filter(
        target=OuterRef("pk"), status__in=[Status.SUCCEEDED, Status.PARTIAL, Status.FAILED]
    ).order_by("-queued_at", "-id")
    rows = (
        Target.objects.filter(enabled=True)
        .annotate(last_status=Subquery(finished.values("status")[:1]))
        .order_by("name")
        .values_list("name", "last_status")
    )
    failing = [{"name": name, "newest_run": last} for name, last in rows if last in (Status.FAILED, Status.PARTIAL)]
    # Names of variables and queues only: never a value.
    never_run = {name for name, last in rows if last is None}
    unreadable = [
        {"name": p.target, "env": p.name, "queue": p.queue, "never_run": p.target in never_run}
        for p in sorted(unreadable_sources(now).values(), key=lambda p: p.target)
        if p.served
    ]
    return {"ok": not failing and not unreadable, "failing": failing, "unreadable": unreadable}


def check_workers(now: datetime) -> dict:
    from backups.models import Target
    from drportal.models import Heartbeat

    silence = settings.HEALTH_WORKER_MAX_SILENCE
    # Workers only: not the beat's row (the scheduler lease) nor standby beats' rows.
    workers = Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER).exclude(name=BEAT)
    beats = list(workers.values_list("seen_at", "queues"))
    live = [queues for seen, queues in beats if (now - seen).total_seconds() <= silence]
    needed = queues_for_targets(Target.objects.filter(enabled=True).only("name", "queue"))
    needed.setdefault(default_queue(), [])
    queues = {}
    for queue, targets in sorted(needed.items()):
        alive = sum(1 for served in live if queue in served)
        queues[queue] = {"ok": alive > 0, "alive": alive, "targets": targets}
    newest = max((seen for seen, _ in beats), default=None)
    return {
        "ok": all(q["ok"] for q in queues.values()),
        "last_seen_seconds": _age(newest, now),
        "alive": len(live),
        "queues": queues,
    }


def status(now: datetime | None = None) -> tuple[bool, dict]:
    from backups.models import BackupRun
    from drportal.models import Heartbeat

    now = now or timezone.now()
    checks: dict[str, dict] = {"database": check_database()}
    checks["broker"] = check_broker()
    if checks["database"]["ok"]:
        checks["worker"] = check_workers(now)
        beat = Heartbeat.objects.filter(name=BEAT).values_list("seen_at", flat=True).first()
        beat_age = _age(beat, now)
        checks["beat"] = {
            "ok": beat_age is not None and beat_age <= settings.HEALTH_BEAT_MAX_SILENCE,
            "last_tick_seconds": beat_age,
            "standby": len(beat_state(now)["standby"]),  # beats idling because another holds the lease
        }
        checks["objectives"] = check_objectives(now)
        checks["targets"] = check_targets(now)
        newest = (
            BackupRun.objects.with_artifact().order_by("-finished_at").values_list("finished_at", flat=True).first()
        )
        backup_age = _age(newest, now)
        checks["newest_backup"] = {
            "ok": backup_age is not None and backup_age <= settings.HEALTH_BACKUP_MAX_AGE,
            "age_seconds": backup_age,
        }
        checks["read_only"] = {"ok": not read_only()}
    ok = all(check["ok"] for check in checks.values()) and set(checks) == set(CHECKS)
    return ok, checks


def failing_checks(checks: dict) -> list[str]:
    """One short line per failing check, naming what fails: for people and monitors' alert texts."""
    lines = []
    for name, check in checks.items():
        if check["ok"]:
            continue
        if name == "objectives":
            lines += [f"objective {o['name']}: {o['state']}" for o in check["failing"]]
        elif name == "targets":
            lines += [
                f"target {t['name']}: newest run {'failed' if t['newest_run'] == 'failed' else 'partly failed'}"
                for t in check["failing"]
            ]
            lines += [
                f"target {t['name']}: env:{t['env']} is not set on any live worker of queue {t['queue']}"
                for t in check.get("unreadable", [])
            ]
        elif name == "worker":
            lines += [f"queue {q}: no live worker" for q, v in check["queues"].items() if not v["ok"]]
        elif name == "read_only":
            lines.append("the portal is read-only")
        else:
            lines.append(f"{name}: failing")
    return lines


def liveness() -> tuple[bool, dict]:
    """For load balancers: the process answers and its database does. Nothing else."""
    checks = {"database": check_database()}
    return checks["database"]["ok"], checks
