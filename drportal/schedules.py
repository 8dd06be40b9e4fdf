"""The portal's fixed beat entries (housekeeping), kept in django-celery-beat's tables.

Each app registers its own entries from its ``AppConfig.ready()`` with
:func:`register_system_schedule`, so the core names no app's task. After ``migrate`` (and
whenever :func:`ensure_system_schedules` runs) every registered entry exists; an entry that
already exists is left alone, so times edited in the admin are kept.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from .cron import crontab_schedule


class SystemSchedule(NamedTuple):
    task: str
    cron: str
    description: str


# name → (task, cron, description), in registration order.
SYSTEM_SCHEDULES: dict[str, SystemSchedule] = {}


def register_system_schedule(name: str, task: str, cron: str, description: str) -> None:
    """Declare a housekeeping beat entry (call from ``AppConfig.ready()``; registering again replaces it)."""
    SYSTEM_SCHEDULES[name] = SystemSchedule(task, cron, description)


def upsert_periodic_task(name: str, task: str, expression: str, tz: str, args: list, enabled: bool, description: str):
    """Create or update the PeriodicTask ``name``; saves only when something differs (beat reloads on save)."""
    from django_celery_beat.models import PeriodicTask

    wanted = {
        "task": task,
        "crontab": crontab_schedule(expression, tz),
        "interval": None,
        "args": json.dumps(args),
        "enabled": enabled,
        "description": description,
    }
    existing = PeriodicTask.objects.filter(name=name).first()
    if existing is None:
        return PeriodicTask.objects.create(name=name, **wanted)
    changed = [key for key, value in wanted.items() if getattr(existing, key) != value]
    if changed:
        for key in changed:
            setattr(existing, key, wanted[key])
        existing.save()  # save() (not update()) so beat notices the change
    return existing


def ensure_system_schedules(**kwargs) -> None:
    """Create the registered housekeeping entries that are missing; their times may be edited in the admin.

    Connected to ``post_migrate`` (hence ``**kwargs``)."""
    from django_celery_beat.models import PeriodicTask

    for name, (task, expression, description) in SYSTEM_SCHEDULES.items():
        if not PeriodicTask.objects.filter(name=name).exists():
            upsert_periodic_task(name, task, expression, "UTC", [], True, description)
