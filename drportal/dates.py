"""The one parser for dates and times typed by people (command options, forms).

Accepts what the help texts show: ``2027-06-01``, ``2027-06-01T14:00`` (or a space instead of
``T``), with seconds or not, with a zone (``Z``, ``+02:00``) or without one, meaning UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

EXAMPLES = "2027-06-01, 2027-06-01T14:00 or 2027-06-01T14:00:00+02:00 (no zone = UTC)"


def parse_moment(value: str) -> datetime:
    """An aware datetime from a date or date-time; ValueError with a one-line message otherwise."""
    text = (value or "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a date-time (or a date); use {EXAMPLES}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
