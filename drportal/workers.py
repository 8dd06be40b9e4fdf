"""Who serves what: workers' heartbeats, live workers per queue, and the single beat's lease.

Core: imports no app. Higher layers pass in what they know (which targets use which queue,
which ``env:`` names their sources need) and read back plain data, so the dashboard, /health
and the backups app's queue watch all ask the same question the same way.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from .models import Heartbeat

logger = logging.getLogger(__name__)

BEAT = "beat"

# Callables returning the env: names that targets' sources read (the backups app registers one);
# a worker reports which of them are set in its environment, never their values.
ENV_NAME_SOURCES: list[Callable[[], Iterable[str]]] = []


def default_queue() -> str:
    """The shared queue: system jobs and every target that names no queue of its own."""
    return settings.CELERY_TASK_DEFAULT_QUEUE


def this_process() -> str:
    """host:pid, naming one beat process in the lease and in logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def visible_env_names() -> list[str]:
    """The env: names wanted by targets that are set (non-empty) in this process's environment."""
    wanted: set[str] = set()
    for source in ENV_NAME_SOURCES:
        try:
            wanted.update(source())
        except Exception as exc:  # a heartbeat must go out even if the catalogue cannot be read
            logger.warning("env names not listed: %s", type(exc).__name__)
    return sorted(name for name in wanted if os.environ.get(name))


def record_worker(name: str, queues: Iterable[str]) -> None:
    """A worker's heartbeat: called from its timer; best effort, never raises into the worker."""
    try:
        close_old_connections()
        Heartbeat.objects.update_or_create(
            name=name[:200],
            defaults={
                "kind": Heartbeat.Kind.WORKER,
                "seen_at": timezone.now(),
                "host": socket.gethostname()[:200],
                "queues": sorted(set(queues)),
                "env_names": visible_env_names(),
            },
        )
    except Exception as exc:  # a database hiccup must not take the worker down
        logger.warning("heartbeat of %s not recorded: %s", name, type(exc).__name__)


def record_heartbeat(name: str, queues: Iterable[str] = ()) -> None:
    """Called from worker and beat timers: best effort, never raises into them.

    ``queues`` are the queues the worker consumes, so /health can tell which queues have a live worker.
    """
    try:
        close_old_connections()
        kind = Heartbeat.Kind.BEAT if name == BEAT else Heartbeat.Kind.WORKER
        Heartbeat.objects.update_or_create(
            name=name[:200], defaults={"seen_at": timezone.now(), "queues": sorted(set(queues)), "kind": kind}
        )
    except Exception as exc:  # a database hiccup must not take the worker down
        logger.warning("heartbeat of %s not recorded: %s", name, type(exc).__name__)


def forget_heartbeat(name: str) -> None:
    """A worker that stops cleanly removes its row at once (a killed one goes stale after a minute)."""
    try:
        close_old_connections()
        Heartbeat.objects.filter(name=name[:200]).delete()
    except Exception as exc:
        logger.warning("heartbeat of %s not removed: %s", name, type(exc).__name__)


@dataclass
class LiveWorker:
    name: str
    host: str
    queues: list[str]
    env_names: list[str]
    seen_seconds: float
    seen_at: datetime | None = None  # its last heartbeat: the env: names it reports were checked then


def live_workers(now: datetime | None = None) -> list[LiveWorker]:
    """Workers heard from within HEALTH_WORKER_MAX_SILENCE (never the beat's lease row)."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.HEALTH_WORKER_MAX_SILENCE)
    rows = (
        Heartbeat.objects.filter(kind=Heartbeat.Kind.WORKER, seen_at__gte=since)
        .exclude(name=BEAT)
        .values_list("name", "host", "queues", "env_names", "seen_at")
    )
    return [
        LiveWorker(name, host, list(queues or []), list(env_names or []), round((now - seen).total_seconds(), 1), seen)
        for name, host, queues, env_names, seen in rows
    ]


def live_workers_per_queue(now: datetime | None = None) -> dict[str, list[LiveWorker]]:
    """queue → the live workers consuming it (a queue nobody consumes is absent)."""
    per_queue: dict[str, list[LiveWorker]] = {}
    for worker in live_workers(now):
        for queue in worker.queues:
            per_queue.setdefault(queue, []).append(worker)
    return per_queue


@dataclass
class QueueState:
    queue: str
    targets: list[str]
    workers: list[LiveWorker] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.workers)

    @property
    def problem(self) -> str:
        return "" if self.ok else f"no live worker on queue {self.queue}"


def queue_states(target_queues: Mapping[str, Iterable[str]], now: datetime | None = None) -> list[QueueState]:
    """Each queue with its targets (``target_queues``: queue → target names) and its live workers.

    The shared queue is always listed: beat's entry points and the portal's housekeeping run
    there even when no target uses it. Queues that only workers mention are listed too, with
    no targets, so an operator sees a worker serving a queue nobody uses (a typo?).
    """
    per_queue = live_workers_per_queue(now)
    names = {default_queue(), *target_queues, *per_queue}
    return [
        QueueState(queue, sorted(target_queues.get(queue, [])), sorted(per_queue.get(queue, []), key=lambda w: w.name))
        for queue in sorted(names)
    ]


# --- exactly one scheduler -------------------------------------------------------------------


def take_beat_lease(holder: str, lease_seconds: int | None = None) -> bool:
    """Renew or take the scheduler lease for ``holder`` (host:pid); True if this beat may schedule.

    One conditional UPDATE: it succeeds when this beat already holds the lease, or when the
    holder has not renewed it for ``lease_seconds`` (it died). Works on SQLite (``make run``)
    and PostgreSQL alike; the row count says who won, so two beats never both believe it.
    """
    lease_seconds = lease_seconds or settings.BEAT_LEASE_SECONDS
    now = timezone.now()
    try:
        close_old_connections()
        # The database's clock, not each host's: beats on two hosts whose clocks disagree must
        # still agree on whether the lease has expired.
        takeable = Q(holder=holder) | Q(holder="") | Q(seen_at__lt=Now() - timedelta(seconds=lease_seconds))
        won = Heartbeat.objects.filter(takeable, name=BEAT).update(
            holder=holder, seen_at=Now(), kind=Heartbeat.Kind.BEAT, host=socket.gethostname()[:200]
        )
        if not won:
            try:
                with transaction.atomic():
                    Heartbeat.objects.create(
                        name=BEAT, kind=Heartbeat.Kind.BEAT, holder=holder, seen_at=now, host=socket.gethostname()[:200]
                    )
                won = 1
            except IntegrityError:
                won = 0  # the row exists and another live beat holds it
        if won:
            Heartbeat.objects.filter(name=_standby_name(holder)).delete()
        else:
            Heartbeat.objects.update_or_create(
                name=_standby_name(holder),
                defaults={"kind": Heartbeat.Kind.STANDBY_BEAT, "seen_at": now, "host": socket.gethostname()[:200]},
            )
        return bool(won)
    except Exception as exc:  # no database: nobody can tell who holds the lease, so do not schedule
        logger.warning("beat lease not checked: %s", type(exc).__name__)
        return False


def release_beat_lease(holder: str) -> None:
    """A beat that stops cleanly hands the lease over at once instead of after it expires."""
    try:
        close_old_connections()
        Heartbeat.objects.filter(name=BEAT, holder=holder).update(holder="")
        Heartbeat.objects.filter(name=_standby_name(holder)).delete()
    except Exception as exc:
        logger.warning("beat lease not released: %s", type(exc).__name__)


def _standby_name(holder: str) -> str:
    return f"standby-beat@{holder}"[:200]


def beat_state(now: datetime | None = None) -> dict:
    """The scheduling beat (host:pid and seconds since its last tick) and beats idling on standby."""
    now = now or timezone.now()
    active = Heartbeat.objects.filter(name=BEAT).values("holder", "seen_at").first()
    since = now - timedelta(seconds=settings.HEALTH_BEAT_MAX_SILENCE)
    standby = Heartbeat.objects.filter(kind=Heartbeat.Kind.STANDBY_BEAT, seen_at__gte=since).values_list(
        "name", flat=True
    )
    return {
        "holder": active["holder"] if active else "",
        "last_tick_seconds": round((now - active["seen_at"]).total_seconds(), 1) if active else None,
        "standby": sorted(name.split("@", 1)[1] for name in standby),
    }
