"""Backup targets' beat schedules in django-celery-beat's tables, so they are editable in the admin.

Each target with a ``schedule`` gets one PeriodicTask named ``backup <target>`` (a pgbackrest
target also ``backup <target> diff`` and ``... incr``). The backups app's housekeeping entries
(RPO checks, pruning, restore tests, reaping dead jobs) are registered in ``backups.apps`` with
``drportal.schedules.register_system_schedule``; the cron helpers live in ``drportal.cron``.
"""

from __future__ import annotations

from django.db import transaction

# Re-exported: migrations (backups 0004/0015, drills 0001) reference backups.schedules.validate_cron
# and backups.schedules.validate_timezone; new code imports them from drportal.cron.
from drportal.cron import validate_cron, validate_timezone  # noqa: F401
from drportal.schedules import upsert_periodic_task

TASK_BACKUP = "backups.tasks.backup_target"
PREFIX = "backup "


def sync_target(target) -> None:
    """Create, update or remove the target's beat entry to match its schedule."""
    from django_celery_beat.models import PeriodicTask

    name = PREFIX + target.name
    with transaction.atomic():
        if not target.schedule:
            PeriodicTask.objects.filter(name=name).delete()
            return
        upsert_periodic_task(
            name,
            TASK_BACKUP,
            target.schedule,
            target.timezone or "UTC",
            # A pgbackrest target's own schedule is its full backups (diff and incr have their own entries).
            [target.name, "full"] if target.engine == "pgbackrest" else [target.name],
            target.enabled,
            f"Back up {target.name} ({target.schedule} {target.timezone}); edit the schedule on the target.",
        )


def remove_target(target) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name__in=[PREFIX + target.name, *_typed_names(target.name)]).delete()


def _typed_names(target_name: str) -> list[str]:
    return [f"{PREFIX}{target_name} {kind}" for kind in ("diff", "incr")]


def sync_pgbackrest(stanza) -> None:
    """A pgbackrest target's differential and incremental schedules: one beat entry each."""
    from django_celery_beat.models import PeriodicTask

    target = stanza.target
    with transaction.atomic():
        for kind, expression in (("diff", stanza.schedule_diff), ("incr", stanza.schedule_incr)):
            name = f"{PREFIX}{target.name} {kind}"
            if not expression:
                PeriodicTask.objects.filter(name=name).delete()
                continue
            upsert_periodic_task(
                name,
                TASK_BACKUP,
                expression,
                target.timezone or "UTC",
                [target.name, kind],
                target.enabled,
                f"{kind} backup of {target.name} with pgBackRest ({expression} {target.timezone}); "
                "edit it on the target's pgBackRest settings.",
            )
