"""Queues and the workers that serve them: which targets use which queue, who is waiting for nobody.

A target's jobs go to its queue (``Target.queue``); a worker started with ``-Q <queue>`` on a
host that can reach the source serves it. When no live worker consumes a queue, its queued
backups say "waiting for a worker on queue X" and, after BACKUP_QUEUE_WAIT_SECONDS in the
queue, fail with that reason rather than hang silently. A queue with targets going unserved
(and served again) is announced with the ``queue_changed`` signal, which alerts listen to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from drportal.workers import QueueState, live_workers_per_queue, queue_states

from ..models import BackupRun, Restore, Target, Verification, WatchedQueue
from ..signals import queue_changed

logger = logging.getLogger(__name__)


def target_queues() -> dict[str, list[str]]:
    """queue → names of the enabled targets whose jobs go there."""
    mapping: dict[str, list[str]] = {}
    for name, queue in Target.objects.filter(enabled=True).values_list("name", "queue"):
        mapping.setdefault(queue, []).append(name)
    return mapping


def states(now: datetime | None = None) -> list[QueueState]:
    """Each queue with its enabled targets and its live workers (the dashboard's card)."""
    return queue_states(target_queues(), now)


def waiting_message(queue: str) -> str:
    return f"waiting for a worker on queue {queue}"


def waiting_reason(run: BackupRun, now: datetime | None = None) -> str:
    """For a queued run whose queue no live worker consumes: what it is waiting for; else ""."""
    if run.status != BackupRun.Status.QUEUED:
        return ""
    queue = run.queue or run.target.queue
    if live_workers_per_queue(now).get(queue):
        return ""
    limit = settings.BACKUP_QUEUE_WAIT_SECONDS
    return (
        f"{waiting_message(queue)}: no live worker consumes it; start `celery -A drportal worker -Q {queue}` "
        f"on a host that can reach {run.target.name}. The run fails if still waiting "
        f"{limit // 60 if limit >= 60 else limit} {'min' if limit >= 60 else 's'} after it was queued."
    )


def fail_unserved_runs(now: datetime | None = None) -> int:
    """Fail jobs queued longer than BACKUP_QUEUE_WAIT_SECONDS on queues that no live worker consumes.

    Backups, verifications and restore tests, and restores: each goes to its target's queue. A live
    worker that is merely busy is not a reason: its jobs wait their turn. A job failed here and
    delivered later is a no-op for the worker (only a queued job can be claimed).
    """
    now = now or timezone.now()
    served = set(live_workers_per_queue(now))
    cutoff = now - timedelta(seconds=settings.BACKUP_QUEUE_WAIT_SECONDS)
    limit = f"BACKUP_QUEUE_WAIT_SECONDS={settings.BACKUP_QUEUE_WAIT_SECONDS}"

    def reason(queue: str, queued_at: datetime, target: str) -> str:
        return (
            f"{waiting_message(queue)}: no live worker consumed it for {(now - queued_at).total_seconds() / 60:.0f} "
            f"min ({limit}); start `celery -A drportal worker -Q {queue}` on a host that can reach {target}"
        )

    failed = 0
    runs = BackupRun.objects.filter(status=BackupRun.Status.QUEUED, queued_at__lte=cutoff).exclude(queue__in=served)
    for run in runs.select_related("target"):
        failed += run.give_up(reason(run.queue, run.queued_at, run.target.name))
    checks = Verification.objects.filter(status=Verification.Status.QUEUED, queued_at__lte=cutoff).exclude(
        run__target__queue__in=served
    )
    for check in checks.select_related("run__target"):
        failed += check.give_up(reason(check.run.target.queue, check.queued_at, check.run.target.name))
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    for record in Restore.objects.filter(status=Restore.Status.QUEUED, queued_at__lte=cutoff).select_related(
        "run__target"
    ):
        queue = record.run.target.queue if record.run_id else default
        if queue not in served:
            failed += record.give_up(reason(queue, record.queued_at, record.run.target.name if record.run_id else "it"))
    if failed:
        logger.warning("failed %d job(s) waiting for a worker", failed)
    return failed


def watch(now: datetime | None = None) -> dict[str, bool]:
    """Record which queues with targets are served; announce each change once (alerts listen)."""
    now = now or timezone.now()
    current = {state.queue: state for state in states(now) if state.targets}
    known = {row.queue: row for row in WatchedQueue.objects.all()}
    for queue, state in current.items():
        row = known.get(queue)
        if row is None:
            row = WatchedQueue.objects.create(queue=queue, served=state.ok, changed_at=now)
            if not state.ok:
                queue_changed.send(sender=WatchedQueue, queue=queue, served=False, targets=state.targets)
        elif row.served != state.ok:
            WatchedQueue.objects.filter(pk=row.pk).update(served=state.ok, changed_at=now)
            queue_changed.send(sender=WatchedQueue, queue=queue, served=state.ok, targets=state.targets)
    # A queue no target uses any more is not watched.
    WatchedQueue.objects.exclude(queue__in=current).delete()
    fail_unserved_runs(now)
    return {queue: state.ok for queue, state in current.items()}


@dataclass(frozen=True)
class UnreadableSource:
    """An enabled target whose ``env:NAME`` source no live worker of its queue can read (yet)."""

    target: str
    queue: str
    name: str
    served: bool  # the queue has live workers (if not, the queue's own check already fails)
    message: str


def unreadable_sources(now: datetime | None = None) -> dict[str, UnreadableSource]:
    """Target name → why its ``env:NAME`` source will not be found by its queue's workers, before any run.

    Workers report in each heartbeat which of the targets' ``env:`` names are set where they run
    (``Heartbeat.env_names``, names only). A target is flagged when its queue's live workers have all
    reported since the target last changed and none of them has the variable; a target changed after
    their last heartbeat is not flagged until they have looked (a few seconds).
    """
    now = now or timezone.now()
    per_queue = live_workers_per_queue(now)
    found: dict[str, UnreadableSource] = {}
    rows = Target.objects.filter(enabled=True).values_list("name", "queue", "source", "updated_at")
    for target, queue, source, updated_at in rows:
        if not source or not source.startswith("env:"):
            continue
        name = source[4:]
        workers = per_queue.get(queue, [])
        if any(name in worker.env_names for worker in workers):
            continue
        if not workers:
            message = f"env:{name} cannot be checked: no live worker of queue {queue}"
        elif any(worker.seen_at is None or worker.seen_at < updated_at for worker in workers):
            continue  # not every worker has looked for it yet: its next heartbeat says
        else:
            names = ", ".join(sorted(worker.name for worker in workers))
            message = (
                f"env:{name} is not set on any live worker of queue {queue} ({names}): its backups will fail "
                f"until it is set where `celery -A drportal worker -Q {queue}` runs"
            )
        found[target] = UnreadableSource(target, queue, name, bool(workers), message)
    return found


def env_names_of_targets() -> list[str]:
    """The env:NAME names targets' sources read (names only; the sources are decrypted here)."""
    names = set()
    for source in Target.objects.filter(enabled=True).values_list("source", flat=True):
        if source and source.startswith("env:"):
            names.add(source[4:])
    return sorted(names)
