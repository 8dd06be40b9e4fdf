"""Keeps beat in step with targets: any save (admin, applyplan, shell) updates the schedule."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import schedules
from .models import PgBackRestStanza, Target


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


def ensure_housekeeping(sender, **kwargs):
    schedules.ensure_system_schedules()
