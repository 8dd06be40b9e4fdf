"""Backups' alerts: the events it registers with alerts, and the receivers of its own signals that emit them.

Emitting only writes outbox rows (alerts.emit): a backup never waits for a mail server or a webhook.
The signals stay: incidents also listens to them (linked jobs on incident timelines).
"""

from __future__ import annotations

from django.conf import settings
from django.dispatch import receiver
from django.urls import reverse

import alerts
from alerts import events

from .models import BackupRun, Objective, Verification
from .signals import backup_finished, objective_changed, queue_changed, verification_finished


def register_events() -> None:
    """Called from BackupsConfig.ready()."""
    events.register("backup_failed", "a backup failed")
    events.register("backup_recovered", "a target's backups succeed again")
    events.register("verification_failed", "a verification failed")
    events.register("objective_late", "an RPO objective is late")
    events.register("objective_breached", "an RPO objective is breached (and reminders while it stays so)")
    events.register("objective_ok", "an RPO objective is met again")
    events.register("queue_unserved", "a queue with targets has no live worker")
    events.register("queue_served", "a queue has a live worker again")


def _link(viewname: str, pk: int) -> str:
    return settings.PORTAL_URL + reverse(viewname, args=[pk])


@receiver(backup_finished, dispatch_uid="backups.alert_on_backup")
def alert_on_backup(sender, run: BackupRun, **kwargs):
    previous = (
        BackupRun.objects.filter(
            target_id=run.target_id,
            status__in=[BackupRun.Status.SUCCEEDED, BackupRun.Status.PARTIAL, BackupRun.Status.FAILED],
            queued_at__lt=run.queued_at,
        )
        .order_by("-queued_at")
        .values_list("status", flat=True)
        .first()
    )
    if run.status == BackupRun.Status.FAILED:
        alerts.emit(
            "backup_failed",
            f"[DR Portal] Backup of {run.target.name} FAILED (run #{run.pk})",
            f"Backup run #{run.pk} of {run.target.name} failed: {run.error}\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )
    elif run.status == BackupRun.Status.PARTIAL:
        # A location failed: as urgent as a failure, though the copies that landed are good backups.
        stored = ", ".join(a.location.name for a in run.artifacts.select_related("location"))
        alerts.emit(
            "backup_failed",
            f"[DR Portal] Backup of {run.target.name} PARTLY FAILED (run #{run.pk})",
            f"Backup run #{run.pk} of {run.target.name} is partial: {run.error}\n"
            f"Copies stored in: {stored}.\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )
    elif previous in (BackupRun.Status.FAILED, BackupRun.Status.PARTIAL):
        alerts.emit(
            "backup_recovered",
            f"[DR Portal] Backups of {run.target.name} succeed again (run #{run.pk})",
            f"Run #{run.pk} of {run.target.name} succeeded after a failure.\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )


@receiver(verification_finished, dispatch_uid="backups.alert_on_verification")
def alert_on_verification(sender, verification: Verification, **kwargs):
    if verification.status != Verification.Status.FAILED:
        return
    run = verification.run
    failed = [f"- {c['name']}: {c['message']}" for c in verification.checks if c["result"] != "pass"]
    detail = "\n".join(failed) or verification.error
    alerts.emit(
        "verification_failed",
        f"[DR Portal] {verification.get_kind_display().capitalize()} of {run.target.name} run #{run.pk} FAILED",
        f"{detail}\n\n{_link('admin:backups_backuprun_change', run.pk)}",
        object_ref=f"verification:{verification.pk}",
    )


@receiver(objective_changed, dispatch_uid="backups.alert_on_objective")
def alert_on_objective(sender, objective: Objective, from_state: str, to_state: str, reminder: bool, **kwargs):
    event = {"late": "objective_late", "breached": "objective_breached", "ok": "objective_ok"}.get(to_state)
    if event is None:
        return
    exposure = (
        "no good copy at all"
        if objective.exposure_seconds is None
        else f"newest good copy is {objective.exposure_seconds / 60:.0f} min old"
    )
    verb = {"late": "is LATE", "breached": "is BREACHED", "ok": "is met again"}[to_state]
    prefix = "Reminder: " if reminder else ""
    alerts.emit(
        event,
        f"[DR Portal] {prefix}RPO {objective.name} {verb}",
        f"Objective {objective.name} (RPO {objective.rpo}) {verb}: {exposure}"
        f" (last good: {objective.last_good_at or 'never'}; was {from_state}).\n\n"
        f"{_link('admin:backups_objective_change', objective.pk)}",
        object_ref=f"objective:{objective.pk}",
    )


@receiver(queue_changed, dispatch_uid="backups.alert_on_queue")
def alert_on_queue(sender, queue: str, served: bool, targets: list[str], **kwargs):
    names = ", ".join(targets)
    if served:
        alerts.emit(
            "queue_served",
            f"[DR Portal] Queue {queue} has a live worker again",
            f"A worker consumes queue {queue} again; backups of {names} run.",
            object_ref=f"queue:{queue}"[:100],
        )
    else:
        alerts.emit(
            "queue_unserved",
            f"[DR Portal] No live worker on queue {queue}",
            f"No live worker consumes queue {queue}, so backups of {names} are not running: they wait, then "
            f"fail after BACKUP_QUEUE_WAIT_SECONDS ({settings.BACKUP_QUEUE_WAIT_SECONDS} s). Start "
            f"`celery -A drportal worker -Q {queue}` on a host that can reach them.\n\n{settings.PORTAL_URL}/admin/",
            object_ref=f"queue:{queue}"[:100],
        )
