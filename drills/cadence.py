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

from drportal.cron import next_cron


class Cadence(models.TextChoices):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"
    CRON = "cron", "cron expression"


MONTHS = {Cadence.MONTHLY: 1, Cadence.QUARTERLY: 3, Cadence.ANNUAL: 12}


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


def step_label(cadence: str) -> str:
    return {Cadence.MONTHLY: "1 month", Cadence.QUARTERLY: "3 months", Cadence.ANNUAL: "1 year"}.get(cadence, cadence)
