"""Puts backups' jobs on linked incidents' timelines, and failed status-update deliveries on theirs.

The backups app sends signals and knows nothing of incidents; its own alerts are in backups/alerting.py."""

from __future__ import annotations

from django.dispatch import receiver

from alerts.models import Notification
from alerts.signals import delivery_attempted
from backups.models import BackupRun, Restore, Verification
from backups.signals import (
    backup_finished,
    backup_started,
    restore_finished,
    restore_started,
    verification_finished,
    verification_started,
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


# --- Status updates that could not be delivered ---------------------------------------------


@receiver(delivery_attempted, dispatch_uid="incidents.timeline_delivery_failed")
def timeline_delivery_failed(sender, notification: Notification, **kwargs):
    """A status update's delivery that failed is written on the incident's timeline, with what happens next."""
    if notification.status == Notification.Status.DELIVERED or not notification.object_ref.startswith("incident:"):
        return
    from .models import Incident, TimelineEntry

    incident = Incident.objects.filter(pk=notification.object_ref.removeprefix("incident:")).first()
    if incident is None:
        return
    if notification.status == Notification.Status.FAILED:
        then = f"gave up after {notification.attempts} attempts"
    else:
        then = f"next try {notification.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
    incident.log(
        TimelineEntry.Kind.COMMUNICATION,
        f"Delivery of {notification.event} via {notification.channel} FAILED ({notification.last_error}); {then}.",
    )
