"""When things are due: monthly, quarterly and annual cadences anchored on a first date, or a cron expression.

Calendar cadences count whole months from the anchor (``anchor + k months``), never
from the previous occurrence, so a drill anchored on the 31st falls on Feb 28 (or 29)
and is back on Mar 31 afterwards instead of drifting to the 28th for ever. An annual
cadence anchored on Feb 29 falls on Feb 28 in common years. Cron expressions use
Celery's parser (the one beat uses), in UTC, with Celery's meaning: day of month and
day of week must both match.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.db import models


class Cadence(models.TextChoices):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"
    CRON = "cron", "cron expression"


MONTHS = {Cadence.MONTHLY: 1, Cadence.QUARTERLY: 3, Cadence.ANNUAL: 12}
# Far enough for any satisfiable expression (Feb 29 on a Monday recurs within 28 years).
_CRON_SEARCH_DAYS = 366 * 29


def occurrence(cadence: str, anchor: datetime, *, after: datetime, cron: str = "") -> datetime:
    """The first occurrence strictly after ``after`` (the anchor itself if it is later)."""
    anchor = anchor.astimezone(UTC)
    after = after.astimezone(UTC)
    if cadence == Cadence.CRON:
        return next_cron(cron, max(after, anchor - timedelta(minutes=1)))
    step = MONTHS[cadence]
    if anchor > after:
        return anchor
    # Start just below the answer and walk up: at most a couple of steps.
    months = (after.year - anchor.year) * 12 + (after.month - anchor.month)
    k = max(0, months // step - 1)
    while True:
        candidate = anchor + relativedelta(months=k * step)
        if candidate > after:
            return candidate
        k += 1


def next_cron(expression: str, after: datetime) -> datetime:
    """The first minute strictly after ``after`` (UTC) that the five-field cron expression fires."""
    from celery.schedules import crontab

    from backups.schedules import cron_fields

    spec = crontab(**cron_fields(expression))
    after = after.astimezone(UTC)
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
                        return candidate
        day += timedelta(days=1)
    raise ValueError(f"cron expression {expression!r} never fires")


def step_label(cadence: str) -> str:
    return {Cadence.MONTHLY: "1 month", Cadence.QUARTERLY: "3 months", Cadence.ANNUAL: "1 year"}.get(cadence, cadence)
