"""The one humanizer: durations on screens and in alerts, the plan's words, sizes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from drportal import humanize


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (timedelta(0), "0 s"),
        (-5, "0 s"),
        (0.42, "0.4 s"),
        (4.25, "4.2 s"),
        (4, "4 s"),
        (59.9, "59 s"),
        (90, "1 min"),
        (timedelta(minutes=45, seconds=59), "45 min"),
        (timedelta(hours=1), "1 h 00 min"),
        (timedelta(hours=2, minutes=30), "2 h 30 min"),
        (timedelta(days=3, hours=4, minutes=12), "3 d 4 h"),
    ],
)
def test_duration(value, text):
    assert humanize.duration(value) == text


def test_duration_empty_text():
    assert humanize.duration(None, "never backed up") == "never backed up"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (timedelta(0), "immediate"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=24), "24 hours"),
        (timedelta(days=7), "7 days"),
        (timedelta(minutes=5), "5 minutes"),
        (timedelta(minutes=2, seconds=30), "2.5 minutes"),
        (timedelta(hours=1, minutes=30, seconds=1), "1.5 hours"),
        (timedelta(seconds=30), "30.0 seconds"),
        (timedelta(seconds=1.5), "1.5 seconds"),
    ],
)
def test_duration_words(value, text):
    assert humanize.duration_words(value) == text


def test_size():
    assert humanize.size(5_000_000) == "4.8\xa0MB"
    assert humanize.size(7) == "7\xa0bytes"
    assert humanize.size(None) == "-"


@pytest.mark.parametrize(
    ("peak", "unit"),
    [(0, ("s", 1)), (90, ("s", 1)), (120, ("min", 60)), (2700, ("min", 60)), (7199, ("min", 60))]
    + [(timedelta(hours=2), ("h", 3600)), (timedelta(hours=47), ("h", 3600)), (timedelta(days=3), ("d", 86400))],
)
def test_duration_unit_of_an_axis(peak, unit):
    assert humanize.duration_unit(peak) == unit


@pytest.mark.parametrize(
    ("peak", "unit"),
    [(0, ("bytes", 1)), (1023, ("bytes", 1)), (1024, ("KB", 1024)), (5 * 1024**2, ("MB", 1024**2))]
    + [(3 * 1024**3, ("GB", 1024**3))],
)
def test_size_unit_of_an_axis_is_the_one_size_writes(peak, unit):
    assert humanize.size_unit(peak) == unit
    if peak >= 1024:  # the same unit word as the tables and tooltips use
        assert humanize.size(peak).endswith(unit[0])


@pytest.mark.parametrize(("value", "text"), [(0, "0"), (15.0, "15"), (2.5, "2.5"), (0.25, "0.25"), (1200, "1,200")])
def test_number_of_a_tick(value, text):
    assert humanize.number(value) == text
