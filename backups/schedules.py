"""Beat schedules in django-celery-beat's tables, so they are editable in the admin.

Each target with a ``schedule`` gets one PeriodicTask named ``backup <target>``;
the portal's own housekeeping (RPO checks, pruning, restore tests, reaping dead
jobs) gets fixed entries created at migrate time and by applyplan.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django.core.exceptions import ValidationError
from django.db import transaction

TASK_BACKUP = "backups.tasks.backup_target"
PREFIX = "backup "

# name → (task, cron, description)
SYSTEM_SCHEDULES = {
    "rpo: evaluate objectives": (
        "backups.tasks.evaluate_objectives",
        "* * * * *",
        "Recompute every RPO objective's state; alert on changes and remind while breached.",
    ),
    "health: probe the plan's health-check URLs": (
        "portal.tasks.run_probes",
        "* * * * *",
        "Check every due health-check URL; record results, alert on flips, update status components.",
    ),
    "jobs: reap dead workers' jobs": (
        "backups.tasks.reap_stale_jobs",
        "*/5 * * * *",
        "Fail backups and restores whose worker stopped reporting; remove what killed runs left in locations.",
    ),
    "jobs: watch queues for workers": (
        "backups.tasks.watch_queues",
        "* * * * *",
        "Alert when a queue with targets has no live worker; fail backups that waited too long for one.",
    ),
    "retention: prune expired copies": (
        "backups.tasks.prune_expired",
        "30 3 * * *",
        "Delete copies past their location's retention (never a target's last verified copy).",
    ),
    "verify: monthly restore test": (
        "backups.tasks.monthly_restore_tests",
        "0 4 1 * *",
        "Restore each target's newest backup into a scratch database and compare row counts.",
    ),
    # --- drills app: testing schedule, drills, plan reviews ---
    "drills: schedule and reminders": (
        "drills.tasks.housekeeping",
        "5 * * * *",
        "Create each test's next drill; flag overdue drills, findings and plan reviews and send reminders.",
    ),
    "drills: run due automated drills": (
        "drills.tasks.run_due_automated_drills",
        "20 * * * *",
        "Perform due drills the portal does itself (Backup Verification: a real restore test).",
    ),
    "incidents: remind overdue reports": (
        "incidents.tasks.remind_overdue_reports",
        "*/15 * * * *",
        "Remind while a post-incident report is overdue (once per ALERT_REMINDER_SECONDS).",
    ),
}


def cron_fields(expression: str) -> dict[str, str]:
    """Split and check a five-field cron expression (minute hour day month weekday)."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError(
            f"{expression!r} is not a cron expression: it needs 5 fields (minute hour day month weekday)"
        )
    fields = dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), parts, strict=True))
    try:
        crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{expression!r} is not a valid cron expression: {exc}") from None
    return fields


# Far enough for any satisfiable expression (Feb 29 on a Monday recurs within 28 years).
_CRON_SEARCH_DAYS = 366 * 29


def next_cron(expression: str, after: datetime, tz: str = "UTC") -> datetime:
    """The first minute strictly after ``after`` that the five-field cron expression fires, read in time zone
    ``tz`` as beat reads a target's schedule; returned in UTC. Celery's meaning: day of month and day of week
    must both match."""
    spec = crontab(**cron_fields(expression))
    zone = zoneinfo.ZoneInfo(tz or "UTC")
    after = after.astimezone(zone)
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    hours, minutes = sorted(spec.hour), sorted(spec.minute)
    day = start.replace(hour=0, minute=0)
    for _ in range(_CRON_SEARCH_DAYS):
        # Celery numbers weekdays from Sunday = 0.
        if (
            day.month in spec.month_of_year
            and day.day in spec.day_of_month
            and day.isoweekday() % 7 in spec.day_of_week
        ):
            for hour in hours:
                for minute in minutes:
                    candidate = day.replace(hour=hour, minute=minute)
                    if candidate >= start:
                        return candidate.astimezone(UTC)
        day = (day.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    raise ValueError(f"cron expression {expression!r} never fires")


def validate_cron(expression: str) -> None:
    if expression:
        cron_fields(expression)


def validate_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not a time zone name (e.g. UTC, Africa/Johannesburg)") from None


def _crontab(expression: str, tz: str):
    from django_celery_beat.models import CrontabSchedule

    schedule, _ = CrontabSchedule.objects.get_or_create(**cron_fields(expression), timezone=zoneinfo.ZoneInfo(tz))
    return schedule


def _upsert_task(name: str, task: str, expression: str, tz: str, args: list, enabled: bool, description: str):
    from django_celery_beat.models import PeriodicTask

    crontab_row = _crontab(expression, tz)
    wanted = {
        "task": task,
        "crontab": crontab_row,
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


def sync_target(target) -> None:
    """Create, update or remove the target's beat entry to match its schedule."""
    from django_celery_beat.models import PeriodicTask

    name = PREFIX + target.name
    with transaction.atomic():
        if not target.schedule:
            PeriodicTask.objects.filter(name=name).delete()
            return
        _upsert_task(
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
            _upsert_task(
                name,
                TASK_BACKUP,
                expression,
                target.timezone or "UTC",
                [target.name, kind],
                target.enabled,
                f"{kind} backup of {target.name} with pgBackRest ({expression} {target.timezone}); "
                "edit it on the target's pgBackRest settings.",
            )


def ensure_system_schedules() -> None:
    """The portal's housekeeping entries; their times may be edited in the admin afterwards."""
    from django_celery_beat.models import PeriodicTask

    for name, (task, expression, description) in SYSTEM_SCHEDULES.items():
        if not PeriodicTask.objects.filter(name=name).exists():
            _upsert_task(name, task, expression, "UTC", [], True, description)
