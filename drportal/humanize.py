"""The one way durations and sizes are written for people, in every app.

- :func:`duration`: screens, alerts and reports: ``4.2 s``, ``40 s``, ``45 min``, ``2 h 05 min``,
  ``3 d 4 h``. Whole units are truncated, not rounded, so a clock never shows a minute that has
  not yet passed.
- :func:`duration_words`: the plan document's words, as people write them in the plan:
  ``1 hour``, ``24 hours``, ``7 days``, ``5 minutes``, ``immediate`` for zero.
- :func:`size`: bytes as Django's ``filesizeformat`` writes them (``4.8 MB``), the same as the
  templates' ``|filesizeformat`` filter.
"""

from __future__ import annotations

from datetime import timedelta

from django.template.defaultfilters import filesizeformat

Duration = timedelta | float | int


def _seconds(value: Duration) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def duration(value: Duration | None, empty: str = "-") -> str:
    """``4.2 s``, ``40 s``, ``45 min``, ``2 h 05 min``, ``3 d 4 h``; ``empty`` for None, ``0 s`` for zero or less.

    ``value`` is a timedelta or a number of seconds.
    """
    if value is None:
        return empty
    seconds = _seconds(value)
    if seconds <= 0:
        return "0 s"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} s"  # a short job: its tenths say something
    whole = int(seconds)
    minutes, hours, days = whole // 60, whole // 3600, whole // 86400
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{minutes} min"
    if whole < 86400:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{days} d {hours % 24} h"


def duration_words(value: Duration | None, empty: str = "-") -> str:
    """``1 hour``, ``4 hours``, ``7 days``, ``5 minutes``: the plan's words; ``immediate`` for zero."""
    if value is None:
        return empty
    exact = _seconds(value)
    seconds = int(exact)
    if seconds == 0:
        return "immediate"
    # "24 hours" as the plan writes it, "7 days" from two days up.
    for unit, length, least in (("day", 86400, 2 * 86400), ("hour", 3600, 3600), ("minute", 60, 60)):
        if seconds >= least and seconds % length == 0:
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''}"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{exact:.1f} seconds"


def size(value: int | None, empty: str = "-") -> str:
    """``4.8 MB``, ``976.6 KB``, ``7 bytes`` (non-breaking spaces, as Django writes them); ``empty`` for None."""
    if value is None:
        return empty
    return filesizeformat(value)


# --- chart axes -----------------------------------------------------------------------------
# A chart's axis is labelled once with its unit ("duration (min)") and its ticks are plain numbers in
# that unit. The unit names are the ones duration() and size() write, so an axis and the tooltips
# and tables beside it speak the same words.

DURATION_UNITS = (("s", 1), ("min", 60), ("h", 3600), ("d", 86400))
SIZE_UNITS = (("bytes", 1), ("KB", 1024), ("MB", 1024**2), ("GB", 1024**3), ("TB", 1024**4))


def duration_unit(peak: Duration) -> tuple[str, int]:
    """(unit, seconds in it) to write durations up to ``peak`` on an axis: under 2 min in s, under 2 h in min,
    under 2 d in h, then days; so the top tick is at least 2 (never "0.5 h")."""
    seconds = _seconds(peak)
    chosen = DURATION_UNITS[0]
    for name, length in DURATION_UNITS:
        if seconds >= 2 * length:
            chosen = (name, length)
    return chosen


def size_unit(peak: int | float) -> tuple[str, int]:
    """(unit, bytes in it) to write sizes up to ``peak`` on an axis, in size()'s units (1 KB = 1024 bytes)."""
    chosen = SIZE_UNITS[0]
    for name, length in SIZE_UNITS:
        if peak >= length:
            chosen = (name, length)
    return chosen


def number(value: float) -> str:
    """A tick's number: ``0``, ``15``, ``2.5``, ``0.25``, ``1,200``: no trailing zeros, thousands separated."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")
