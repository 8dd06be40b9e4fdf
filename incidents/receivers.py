"""Turns backup events into alerts. The backups app sends signals; it knows nothing of alerts."""

from __future__ import annotations

from django.conf import settings
from django.dispatch import receiver
from django.urls import reverse

from backups.models import BackupRun, Objective, Restore, Verification
from backups.signals import (
    backup_finished,
    backup_started,
    objective_changed,
    queue_changed,
    restore_finished,
    restore_started,
    verification_finished,
    verification_started,
)

from . import notify


def _link(viewname: str, pk: int) -> str:
    return settings.PORTAL_URL + reverse(viewname, args=[pk])


@receiver(backup_finished, dispatch_uid="incidents.alert_on_backup")
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
        notify.send(
            "backup_failed",
            f"[DR Portal] Backup of {run.target.name} FAILED (run #{run.pk})",
            f"Backup run #{run.pk} of {run.target.name} failed: {run.error}\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )
    elif run.status == BackupRun.Status.PARTIAL:
        # A location failed: as urgent as a failure, though the copies that landed are good backups.
        stored = ", ".join(a.location.name for a in run.artifacts.select_related("location"))
        notify.send(
            "backup_failed",
            f"[DR Portal] Backup of {run.target.name} PARTLY FAILED (run #{run.pk})",
            f"Backup run #{run.pk} of {run.target.name} is partial: {run.error}\n"
            f"Copies stored in: {stored}.\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )
    elif previous in (BackupRun.Status.FAILED, BackupRun.Status.PARTIAL):
        notify.send(
            "backup_recovered",
            f"[DR Portal] Backups of {run.target.name} succeed again (run #{run.pk})",
            f"Run #{run.pk} of {run.target.name} succeeded after a failure.\n\n"
            f"{_link('admin:backups_backuprun_change', run.pk)}",
            object_ref=f"backuprun:{run.pk}",
        )


@receiver(verification_finished, dispatch_uid="incidents.alert_on_verification")
def alert_on_verification(sender, verification: Verification, **kwargs):
    if verification.status != Verification.Status.FAILED:
        return
    run = verification.run
    failed = [f"- {c['name']}: {c['message']}" for c in verification.checks if c["result"] != "pass"]
    detail = "\n".join(failed) or verification.error
    notify.send(
        "verification_failed",
        f"[DR Portal] {verification.get_kind_display().capitalize()} of {run.target.name} run #{run.pk} FAILED",
        f"{detail}\n\n{_link('admin:backups_backuprun_change', run.pk)}",
        object_ref=f"verification:{verification.pk}",
    )


@receiver(objective_changed, dispatch_uid="incidents.alert_on_objective")
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
    notify.send(
        event,
        f"[DR Portal] {prefix}RPO {objective.name} {verb}",
        f"Objective {objective.name} (RPO {objective.rpo}) {verb}: {exposure}"
        f" (last good: {objective.last_good_at or 'never'}; was {from_state}).\n\n"
        f"{_link('admin:backups_objective_change', objective.pk)}",
        object_ref=f"objective:{objective.pk}",
    )


@receiver(queue_changed, dispatch_uid="incidents.alert_on_queue")
def alert_on_queue(sender, queue: str, served: bool, targets: list[str], **kwargs):
    names = ", ".join(targets)
    if served:
        notify.send(
            "queue_served",
            f"[DR Portal] Queue {queue} has a live worker again",
            f"A worker consumes queue {queue} again; backups of {names} run.",
            object_ref=f"queue:{queue}"[:100],
        )
    else:
        notify.send(
            "queue_unserved",
            f"[DR Portal] No live worker on queue {queue}",
            f"No live worker consumes queue {queue}, so backups of {names} are not running: they wait, then "
            f"fail after BACKUP_QUEUE_WAIT_SECONDS ({settings.BACKUP_QUEUE_WAIT_SECONDS} s). Start "
            f"`celery -A drportal worker -Q {queue}` on a host that can reach them.\n\n{settings.PORTAL_URL}/admin/",
            object_ref=f"queue:{queue}"[:100],
        )


# --- Linked jobs on incident timelines -------------------------------------------------------


def _linked(**lookup) -> list:
    from .models import IncidentJob

    return [job.incident for job in IncidentJob.objects.filter(**lookup).select_related("incident")]


def _outcome(obj) -> str:
    if obj.status in (BackupRun.Status.SUCCEEDED, Verification.Status.PASSED):
        return obj.status
    if obj.status == BackupRun.Status.PARTIAL:  # a backup run with a copy stored and a location failed
        return f"partial: {obj.error}"
    return f"FAILED: {obj.error}" if obj.error else obj.status.upper()


@receiver(backup_started, dispatch_uid="incidents.timeline_backup_started")
def timeline_backup_started(sender, run: BackupRun, **kwargs):
    for incident in _linked(run=run):
        incident.job_event(f"Backup run #{run.pk} of {run.target.name} started.")


@receiver(backup_finished, dispatch_uid="incidents.timeline_backup_finished")
def timeline_backup_finished(sender, run: BackupRun, **kwargs):
    for incident in _linked(run=run):
        incident.job_event(f"Backup run #{run.pk} of {run.target.name} {_outcome(run)}.")


@receiver(verification_started, dispatch_uid="incidents.timeline_verification_started")
def timeline_verification_started(sender, verification: Verification, **kwargs):
    for incident in _linked(verification=verification):
        incident.job_event(
            f"Verification #{verification.pk} ({verification.kind}) of run #{verification.run_id} started."
        )


@receiver(verification_finished, dispatch_uid="incidents.timeline_verification_finished")
def timeline_verification_finished(sender, verification: Verification, **kwargs):
    for incident in _linked(verification=verification):
        incident.job_event(
            f"Verification #{verification.pk} ({verification.kind}) of run #{verification.run_id} "
            f"{_outcome(verification)}."
        )


@receiver(restore_started, dispatch_uid="incidents.timeline_restore_started")
def timeline_restore_started(sender, restore: Restore, **kwargs):
    for incident in _linked(restore=restore):
        incident.job_event(f"Restore #{restore.pk} into {restore.destination_display or 'its target'} started.")


@receiver(restore_finished, dispatch_uid="incidents.timeline_restore_finished")
def timeline_restore_finished(sender, restore: Restore, **kwargs):
    for incident in _linked(restore=restore):
        incident.job_event(
            f"Restore #{restore.pk} into {restore.destination_display or 'its target'} {_outcome(restore)}."
        )
        # A restore that loaded, matched its checksum and row counts is evidence of recovery.
        incident.job_finished(restore=restore)
