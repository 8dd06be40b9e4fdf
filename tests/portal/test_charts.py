"""The dashboard's SVG charts, parsed: labelled axes with units, humanized ticks where the data says, the
target line at the height of its value, and breached rows told apart by more than colour."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal import charts

SVG = "{http://www.w3.org/2000/svg}"
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR, MIB = 3600, 1024 * 1024


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


def axis(root: ET.Element, which: str) -> ET.Element:
    found = root.findall(f".//{SVG}g[@class='axis-{which}']")
    assert len(found) == 1, f"{len(found)} {which} axes"
    return found[0]


def axis_title(root: ET.Element, which: str) -> str:
    return text(axis(root, which).find(f"{SVG}text[@class='axis-title']"))


def y_ticks(root: ET.Element) -> dict[str, float]:
    """Each y tick's label → the y coordinate of its grid line."""
    ticks = {}
    for tick in axis(root, "y").findall(f"{SVG}g[@class='tick']"):
        ticks[text(tick.find(f"{SVG}text"))] = float(tick.find(f"{SVG}line").get("y1"))
    return ticks


def x_ticks(root: ET.Element) -> list[tuple[str, float]]:
    return [
        (text(tick.find(f"{SVG}text")), float(tick.get("data-x")))
        for tick in axis(root, "x").findall(f"{SVG}g[@class='tick']")
    ]


def exposure_points(values_h: list[float | None]) -> list[tuple[datetime, float | None]]:
    """One sample a day from 1 January 2026, the exposure given in hours (None: no copy yet)."""
    return [(JAN_1 + timedelta(days=i), None if v is None else v * HOUR) for i, v in enumerate(values_h)]


def test_the_exposure_chart_has_labelled_axes_and_the_target_where_its_value_is():
    # 31 days: no copy for two days, then within the 1 h target, then two days at 2 h (breached), then fine.
    values = [None, None] + [0.5] * 20 + [2.0, 2.0] + [0.25] * 7
    root = parse(charts.sawtooth(exposure_points(values), limit=HOUR))

    # y: the quantity and its unit; ticks are round numbers of hours up to the peak (2 h).
    assert axis_title(root, "y") == "exposure (h)"
    ticks = y_ticks(root)
    assert list(ticks) == ["0", "0.5", "1", "1.5", "2"]
    assert ticks["0"] > ticks["1"] > ticks["2"]  # SVG's y grows downwards
    assert ticks["0"] - ticks["1"] == pytest.approx(ticks["1"] - ticks["2"])

    # The target: a dashed line exactly at the "1" (hour) tick, labelled in words with its value.
    line = root.find(f".//{SVG}line[@class='target']")
    assert line is not None and line.get("stroke-dasharray")
    assert float(line.get("y1")) == pytest.approx(ticks["1"], abs=0.05) == float(line.get("y2"))
    assert float(line.get("x1")) == charts.LEFT and float(line.get("x2")) == 360 - charts.RIGHT
    label = root.find(f".//{SVG}text[@class='target']")
    assert text(label) == "target 1 h 00 min"
    assert float(label.get("y")) < float(line.get("y1"))  # just above its line

    # x: dates in UTC, from the first sample (at the axis' left end) to the last (its right end).
    assert axis_title(root, "x") == "date (UTC)"
    dates = x_ticks(root)
    assert [d for d, _ in dates] == ["01 Jan", "08 Jan", "16 Jan", "23 Jan", "31 Jan"]
    assert dates[0][1] == charts.LEFT and dates[-1][1] == 360 - charts.RIGHT
    assert [x for _, x in dates] == sorted(x for _, x in dates)

    # Over the target: red, thick, every point at or above the target line; within: green, below it.
    target_y = float(line.get("y1"))
    over = root.findall(f".//{SVG}polyline[@class='over']")
    within = root.findall(f".//{SVG}polyline[@class='within']")
    assert len(over) == 1 and len(within) == 2
    for polyline, check in [(p, lambda y: y <= target_y + 0.05) for p in over] + [
        (p, lambda y: y >= target_y - 0.05) for p in within
    ]:
        ys = [float(pair.split(",")[1]) for pair in polyline.get("points").split()]
        assert all(check(y) for y in ys), (polyline.get("class"), ys, target_y)
    assert over[0].get("stroke") != within[0].get("stroke")
    assert float(over[0].get("stroke-width")) > float(within[0].get("stroke-width"))
    # The 2 h points sit on the "2" tick.
    assert float(over[0].get("points").split()[1].split(",")[1]) == pytest.approx(ticks["2"], abs=0.05)
    # The first two days had no copy: a shaded band from the axis' start, titled in words.
    band = root.find(f".//{SVG}rect[@class='no-copy']")
    assert float(band.get("x")) == charts.LEFT and text(band) == "no verified copy"

    # Said in words, not only in colour: the newest point is within the target.
    status = root.find(f".//{SVG}text[@class='status within']")
    assert status is not None and text(status) == "now: within target"
    assert "target 1 h 00 min" in root.get("aria-label")


def test_an_exposure_chart_whose_newest_point_is_over_the_target_says_so():
    root = parse(charts.sawtooth(exposure_points([10 / 60, 20 / 60, 40 / 60]), limit=15 * 60))
    # Two days of samples in a 40 min peak: minutes on y, times on x.
    assert axis_title(root, "y") == "exposure (min)"
    assert list(y_ticks(root)) == ["0", "10", "20", "30", "40"]
    assert axis_title(root, "x") == "date (UTC)"
    line = root.find(f".//{SVG}line[@class='target']")
    assert float(line.get("y1")) == pytest.approx(
        (y_ticks(root)["10"] + y_ticks(root)["20"]) / 2, abs=0.05
    )  # 15 min: half way between the 10 and 20 ticks
    assert text(root.find(f".//{SVG}text[@class='target']")) == "target 15 min"
    assert text(root.find(f".//{SVG}text[@class='status over']")) == "now: over target"


def test_an_exposure_chart_without_any_copy_says_so():
    root = parse(charts.sawtooth(exposure_points([None] * 3), limit=HOUR))
    assert text(root.find(f".//{SVG}text[@class='status over']")) == "now: no verified copy"
    assert root.findall(f".//{SVG}polyline") == []
    band = root.find(f".//{SVG}rect[@class='no-copy']")
    assert float(band.get("x")) == charts.LEFT and float(band.get("width")) == 360 - charts.RIGHT - charts.LEFT
    # No data: the axis still reaches past the target, so the target line is on the chart.
    assert axis_title(root, "y") == "exposure (min)"
    line = root.find(f".//{SVG}line[@class='target']")
    assert float(line.get("y1")) == pytest.approx(y_ticks(root)["60"], abs=0.05)


def test_a_short_window_is_labelled_with_times():
    points = [(JAN_1 + timedelta(hours=i), 600.0) for i in range(13)]
    root = parse(charts.sawtooth(points, limit=HOUR))
    assert axis_title(root, "x") == "time (UTC)"
    assert [label for label, _ in x_ticks(root)] == ["00:00", "03:00", "06:00", "09:00", "12:00"]


def test_size_bars_have_axes_in_megabytes_and_bars_as_tall_as_their_value():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]
    values: list[float | None] = [None] * 30
    values[1], values[29] = 3 * MIB, 5 * MIB
    root = parse(charts.bars(values, days, kind="size"))
    assert axis_title(root, "y") == "size (MB)"
    ticks = y_ticks(root)
    assert list(ticks) == ["0", "1", "2", "3", "4", "5"]
    bars = root.findall(f".//{SVG}rect[@class='bar']")
    assert len(bars) == 2  # no bar for a day without a backup
    three, five = bars
    assert float(three.get("y")) == pytest.approx(ticks["3"], abs=0.05)
    assert float(five.get("y")) == pytest.approx(ticks["5"], abs=0.05)
    for bar in bars:  # each stands on the x axis
        assert float(bar.get("y")) + float(bar.get("height")) == pytest.approx(ticks["0"], abs=0.1)
    assert text(three) == "02 Jan: 3.0\xa0MB"  # the humanizer's own words in the tooltip
    assert axis_title(root, "x") == "day (UTC)"
    labels = [label for label, _ in x_ticks(root)]
    assert labels == ["01 Jan", "15 Jan", "30 Jan"]
    # The 30 Jan tick is under the 30 Jan bar.
    last_x = x_ticks(root)[-1][1]
    assert float(five.get("x")) < last_x < float(five.get("x")) + float(five.get("width")) + 1


def test_duration_bars_are_in_minutes():
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    root = parse(charts.bars([45 * 60, 30 * 60], days, kind="duration"))
    assert axis_title(root, "y") == "duration (min)"
    assert list(y_ticks(root)) == ["0", "10", "20", "30", "40", "50"]
    assert [text(b) for b in root.findall(f".//{SVG}rect[@class='bar']")] == ["01 Jan: 45 min", "02 Jan: 30 min"]


def test_an_empty_chart_still_has_its_axes():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(30)]
    root = parse(charts.bars([None] * 30, days, kind="size"))
    assert axis_title(root, "y") == "size (bytes)" and list(y_ticks(root)) == ["0", "1"]
    assert root.findall(f".//{SVG}rect[@class='bar']") == []
    assert root.get("aria-label").endswith(": none")


def test_bad_chart_input_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown chart quantity 'weight'"):
        charts.bars([1.0], [date(2026, 1, 1)], kind="weight")
    with pytest.raises(ValueError, match="2 values for 1 days"):
        charts.bars([1.0, 2.0], [date(2026, 1, 1)], kind="size")


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [(2.0, [0, 0.5, 1, 1.5, 2]), (45, [0, 10, 20, 30, 40, 50]), (5, [0, 1, 2, 3, 4, 5])]
    + [(0, [0, 1]), (7.3, [0, 2, 4, 6, 8])],
)
def test_nice_ticks(peak, ticks):
    assert charts.nice_ticks(peak) == ticks


# --- on the dashboard ---------------------------------------------------------------------


@pytest.mark.django_db
def test_breached_and_ok_rows_differ_in_words_and_colour_and_every_chart_has_axes(
    admin_client, local_location, make_target
):
    from backups.models import BackupRun, Objective, Verification
    from backups.services import rpo

    now = timezone.now()
    fine, stale = make_target("fine", "env:NOPE", [local_location]), make_target("stale", "env:NOPE", [local_location])
    for target, age in ((fine, timedelta(minutes=20)), (stale, timedelta(hours=5))):
        run = BackupRun.objects.create(
            target=target,
            status="succeeded",
            sha256="a" * 64,
            bytes_out=3 * MIB,
            queued_at=now - age,
            started_at=now - age,
            finished_at=now - age + timedelta(minutes=12),
        )
        Verification.objects.create(run=run, status="passed")
        Objective.objects.create(name=f"o-{target.name}", rpo=timedelta(hours=1)).targets.set([target])
    rpo.evaluate()

    html = admin_client.get(reverse("admin:index")).content.decode()
    rows = {}
    for name in ("o-fine", "o-stale"):
        row = re.search(rf'<tr class="objective-row ([^"]*)" data-objective="{name}">(.*?)</tr>', html, re.S)
        assert row, name
        rows[name] = row
    assert rows["o-fine"].group(1) == "objective-ok" and rows["o-stale"].group(1) == "objective-breached"
    # Not colour alone: the words differ too.
    assert "not safe: breached" in rows["o-stale"].group(2) and "not safe" not in rows["o-fine"].group(2)
    for name, status in (("o-fine", "now: within target"), ("o-stale", "now: over target")):
        root = parse(re.search(r"<svg.*?</svg>", rows[name].group(2), re.S).group(0))
        assert axis_title(root, "y").startswith("exposure (") and axis_title(root, "x") == "date (UTC)"
        assert text(root.find(f".//{SVG}text[@class='target']")) == "target 1 h 00 min"
        assert status in "".join(root.itertext())
    stale_chart = parse(re.search(r"<svg.*?</svg>", rows["o-stale"].group(2), re.S).group(0))
    ticks = y_ticks(stale_chart)
    # 5 h (and the milliseconds the page took) now: hours, up to the first round tick above.
    assert list(ticks)[-1] in ("5", "6") and axis_title(stale_chart, "y") == "exposure (h)"

    # The targets' size and duration charts: one of each per target, in the humanizer's units.
    targets = html[html.index('id="dash-targets"') :]
    targets = targets[: targets.index("</section>")]
    svgs = [parse(s) for s in re.findall(r"<svg.*?</svg>", targets, re.S)]
    assert sorted(axis_title(s, "y") for s in svgs) == ["duration (min)"] * 2 + ["size (MB)"] * 2
    assert all(axis_title(s, "x") == "day (UTC)" for s in svgs)
    assert 'class="target-row target-succeeded" data-target="fine"' in targets
