"""Command options that take a date accept what their help shows, and refuse the rest in one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from drportal.dates import parse_moment
from tests.conftest import manage_py

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-06-01", datetime(2027, 6, 1, tzinfo=UTC)),
        ("2027-06-01T14:00", datetime(2027, 6, 1, 14, 0, tzinfo=UTC)),
        ("2027-06-01 14:00", datetime(2027, 6, 1, 14, 0, tzinfo=UTC)),
        ("2027-06-01T14:00:30Z", datetime(2027, 6, 1, 14, 0, 30, tzinfo=UTC)),
        ("2027-06-01T14:00+02:00", datetime(2027, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))),
        (" 2027-06-01 ", datetime(2027, 6, 1, tzinfo=UTC)),
    ],
)
def test_the_core_parser_reads_every_form_the_help_shows(text, expected):
    moment = parse_moment(text)
    assert moment == expected and moment.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["2027-06-01", "2027-06-01T14:00", "2027-06-01T14:00Z", "2027-06-01T14:00+02:00"])
def test_prune_as_of_accepts_dates_with_or_without_time_and_zone(value):
    done = manage_py("prune", "--as-of", value, "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True


@pytest.mark.parametrize("value", ["2027-13-01", "tomorrow", "", "2027-06-01T25:00"])
def test_prune_refuses_a_bad_date_in_one_line(value):
    done = manage_py("prune", "--as-of", value, "--dry-run")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: --as-of: "), done.stderr
    assert "is not a date-time (or a date); use 2027-06-01" in lines[0]
