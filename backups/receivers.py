"""Keeps beat in step with targets (any save updates the schedule) and the locations' indexes with runs."""

import logging

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import schedules
from .models import BackupRun, PgBackRestStanza, Target
from .services import manifest
from .signals import backup_finished

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Target, dispatch_uid="backups.sync_target_schedule")
def sync_schedule(sender, instance: Target, raw=False, **kwargs):
    if not raw:
        schedules.sync_target(instance)


@receiver(post_delete, sender=Target, dispatch_uid="backups.remove_target_schedule")
def remove_schedule(sender, instance: Target, **kwargs):
    schedules.remove_target(instance)


@receiver(post_save, sender=PgBackRestStanza, dispatch_uid="backups.sync_pgbackrest_schedules")
def sync_pgbackrest_schedules(sender, instance: PgBackRestStanza, raw=False, **kwargs):
    if not raw:
        schedules.sync_pgbackrest(instance)
        schedules.sync_target(instance.target)  # its full schedule now carries the type


@receiver(backup_finished, dispatch_uid="backups.record_outcome_in_indexes")
def record_outcome_in_indexes(sender, run: BackupRun, **kwargs):
    """However a run ends (its worker, or the stale-run cleanup in another process), its copies'
    locations say so in their index, so a catalogue rebuilt from them keeps the run's status."""
    try:
        manifest.write_indexes_of(run)
    except Exception:  # the run is already saved as finished; a fault here must not stop its other receivers
        logger.exception("the indexes of run #%s's locations were not updated", run.pk)
