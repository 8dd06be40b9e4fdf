"""Five-field cron expressions (minute hour day month weekday), read as Celery beat reads them.

Used by backup targets' schedules, pgBackRest's typed schedules, the drills' cron cadence and the
beat entries the apps register (``drportal.schedules``).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django.core.exceptions import ValidationError

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def cron_fields(expression: str) -> dict[str, str]:
    """Split and check a five-field cron expression (minute hour day month weekday)."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError(
            f"{expression!r} is not a cron expression: it needs 5 fields (minute hour day month weekday)"
        )
    fields = dict(zip(CRON_FIELDS, parts, strict=True))
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
    """A model/plan validator: empty means "not scheduled"; anything else must be a valid expression."""
    if expression:
        cron_fields(expression)


def validate_timezone(name: str) -> None:
    """A model/plan validator: an IANA time zone name."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{name!r} is not a time zone name (e.g. UTC, Africa/Johannesburg)") from None


def crontab_schedule(expression: str, tz: str):
    """django-celery-beat's CrontabSchedule row for the expression in time zone ``tz`` (shared, created once)."""
    from django_celery_beat.models import CrontabSchedule

    schedule, _ = CrontabSchedule.objects.get_or_create(**cron_fields(expression), timezone=zoneinfo.ZoneInfo(tz))
    return schedule
