"""The portal's own health: database, broker, worker heartbeats, beat's ticks, newest backup.

``/health`` answers 200 only when all of them are fine, 503 otherwise, with a
JSON body that names each check. No secret, hostname or URL is ever in it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .workers import beat_state

logger = logging.getLogger(__name__)

BEAT = "beat"


def record_heartbeat(name: str) -> None:
    """Called from worker and beat timers: best effort, never raises into them."""
    from .models import Heartbeat

    try:
        close_old_connections()
        kind = Heartbeat.Kind.BEAT if name == BEAT else Heartbeat.Kind.WORKER
        Heartbeat.objects.update_or_create(name=name[:200], defaults={"seen_at": timezone.now(), "kind": kind})
    except Exception as exc:  # a database hiccup must not take the worker down
        logger.warning("heartbeat of %s not recorded: %s", name, type(exc).__name__)


def forget_heartbeat(name: str) -> None:
    from .models import Heartbeat

    try:
        close_old_connections()
        Heartbeat.objects.filter(name=name[:200]).delete()
    except Exception as exc:
        logger.warning("heartbeat of %s not removed: %s", name, type(exc).__name__)


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


def queues_check(now: datetime) -> dict:
    """Every queue with targets needs a live worker (no names of hosts or targets: /health is public)."""
    from backups.services.queues import unserved

    missing = unserved(now)
    return {"ok": not missing, "without_worker": missing}


def status(now: datetime | None = None) -> tuple[bool, dict]:
    from backups.models import BackupRun

    from .models import Heartbeat

    now = now or timezone.now()
    checks: dict[str, dict] = {"database": check_database()}
    checks["broker"] = check_broker()
    if checks["database"]["ok"]:
        workers = list(Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER).values_list("seen_at", flat=True))
        newest_worker = max(workers, default=None)
        worker_age = _age(newest_worker, now)
        checks["worker"] = {
            "ok": worker_age is not None and worker_age <= settings.HEALTH_WORKER_MAX_SILENCE,
            "last_seen_seconds": worker_age,
            "alive": sum(1 for seen in workers if (now - seen).total_seconds() <= settings.HEALTH_WORKER_MAX_SILENCE),
        }
        beat = Heartbeat.objects.filter(name=BEAT).values_list("seen_at", flat=True).first()
        beat_age = _age(beat, now)
        checks["beat"] = {
            "ok": beat_age is not None and beat_age <= settings.HEALTH_BEAT_MAX_SILENCE,
            "last_tick_seconds": beat_age,
            "standby": len(beat_state(now)["standby"]),  # beats idling because another holds the lease
        }
        checks["queues"] = queues_check(now)
        newest = (
            BackupRun.objects.filter(status=BackupRun.Status.SUCCEEDED)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        backup_age = _age(newest, now)
        checks["newest_backup"] = {
            "ok": backup_age is not None and backup_age <= settings.HEALTH_BACKUP_MAX_AGE,
            "age_seconds": backup_age,
        }
    ok = all(check["ok"] for check in checks.values()) and len(checks) == 6
    return ok, checks
