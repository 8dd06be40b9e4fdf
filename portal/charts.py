"""Small server-rendered SVG charts with axes: no JavaScript, no CDN, readable without colour.

Each chart has a labelled x axis (dates or times, UTC) and y axis (the quantity and its unit, e.g.
"size (MB)", "duration (min)", "exposure (h)"), tick labels written by the one humanizer
(:mod:`drportal.humanize`), and a ``<title>`` on every bar and on the target line. The exposure chart
draws its objective's target as a labelled dashed line; the parts of the line above it are red *and*
thicker, and the chart says in words whether the newest point is over or within the target (or has no copy).

The pieces carry classes (``axis-x``, ``axis-y``, ``tick``, ``axis-title``, ``target``, ``over``,
``within``, ``status``) so that tests, and people reading the source of the page, can find them.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from drportal import humanize

# Room around the plot for the tick labels and the axis titles.
LEFT, RIGHT, TOP, BOTTOM = 50, 10, 14, 34
FONT = 'font-family="sans-serif" font-size="10" fill="#333"'
OVER_COLOR, WITHIN_COLOR, TARGET_COLOR = "#c0392b", "#2e8540", "#c0392b"


def nice_ticks(peak: float, most: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 × 10ⁿ) up to the first tick at or above ``peak``; at most ``most`` steps."""
    if peak <= 0 or not math.isfinite(peak):
        return [0.0, 1.0]
    raw = peak / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    count = math.ceil(peak / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


class _Frame:
    """The plot area of a ``width`` × ``height`` chart and the y scale of its ticks."""

    def __init__(self, width: int, height: int, ticks: list[float], factor: float) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = LEFT, width - RIGHT
        self.y0, self.y1 = TOP, height - BOTTOM  # top and bottom of the plot
        self.ticks, self.factor = ticks, factor
        self.top = ticks[-1] * factor  # the y axis' highest value, in the data's own unit

    def y(self, value: float) -> float:
        """The y coordinate of ``value`` (seconds, bytes), clamped to the plot."""
        share = min(max(value / self.top, 0.0), 1.0) if self.top else 0.0
        return self.y1 - share * (self.y1 - self.y0)

    def y_axis(self, title: str) -> SafeString:
        ticks = format_html_join(
            "",
            '<g class="tick" data-value="{}"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#eee"/>'
            '<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle" {}>{}</text></g>',
            (
                (
                    _num(tick * self.factor),
                    self.x0,
                    f"{self.y(tick * self.factor):.1f}",
                    self.x1,
                    f"{self.y(tick * self.factor):.1f}",
                    self.x0 - 4,
                    f"{self.y(tick * self.factor):.1f}",
                    mark_safe(FONT),
                    humanize.number(tick),
                )
                for tick in self.ticks
            ),
        )
        middle = (self.y0 + self.y1) / 2
        return format_html(
            '<g class="axis-y"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#666"/>{}'
            '<text class="axis-title" x="10" y="{}" text-anchor="middle" transform="rotate(-90 10 {})" {}>{}</text>'
            "</g>",
            self.x0,
            self.y0,
            self.x0,
            self.y1,
            ticks,
            f"{middle:.1f}",
            f"{middle:.1f}",
            mark_safe(FONT),
            title,
        )

    def x_axis(self, ticks: list[tuple[float, str]], title: str) -> SafeString:
        """``ticks``: (x coordinate, label)."""
        marks = format_html_join(
            "",
            '<g class="tick" data-x="{}"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#666"/>'
            '<text x="{}" y="{}" text-anchor="{}" {}>{}</text></g>',
            (
                (
                    f"{x:.1f}",
                    f"{x:.1f}",
                    self.y1,
                    f"{x:.1f}",
                    self.y1 + 3,
                    f"{x:.1f}",
                    self.y1 + 13,
                    # The end labels stay inside the chart.
                    "start" if index == 0 else "end" if index == len(ticks) - 1 else "middle",
                    mark_safe(FONT),
                    label,
                )
                for index, (x, label) in enumerate(ticks)
            ),
        )
        return format_html(
            '<g class="axis-x"><line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#666"/>{}'
            '<text class="axis-title" x="{}" y="{}" text-anchor="middle" {}>{}</text></g>',
            self.x0,
            self.y1,
            self.x1,
            self.y1,
            marks,
            f"{(self.x0 + self.x1) / 2:.1f}",
            self.height - 4,
            mark_safe(FONT),
            title,
        )

    def svg(self, label: str, body: SafeString) -> SafeString:
        return format_html(
            '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" width="{}" height="{}"'
            ' viewBox="0 0 {} {}"><title>{}</title>{}</svg>',
            label,
            self.width,
            self.height,
            self.width,
            self.height,
            label,
            body,
        )


def _num(value: float) -> str:
    return f"{value:g}"


def _unit(kind: str, peak: float) -> tuple[str, int]:
    if kind == "size":
        return humanize.size_unit(peak)
    if kind in ("duration", "exposure"):
        return humanize.duration_unit(peak)
    raise ValueError(f"unknown chart quantity {kind!r}: size, duration or exposure")


def _exact(kind: str, value: float) -> str:
    return humanize.size(int(value)) if kind == "size" else humanize.duration(value)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def bars(
    values: list[float | None],
    days: list[date],
    *,
    kind: str,
    width: int = 270,
    height: int = 130,
    color: str = "#417690",
) -> SafeString:
    """A bar per day (None: no bar) of ``kind`` "size" (bytes) or "duration" (seconds), with axes."""
    if len(values) != len(days):
        raise ValueError(f"{len(values)} values for {len(days)} days")
    peak = max((v for v in values if v), default=0)
    unit, factor = _unit(kind, peak)
    frame = _Frame(width, height, nice_ticks(peak / factor), factor)
    step = (frame.x1 - frame.x0) / max(len(values), 1)
    rects = [
        (
            f"{frame.x0 + index * step + 0.5:.1f}",
            f"{frame.y(value):.1f}",
            f"{max(step - 1, 1):.1f}",
            f"{frame.y1 - frame.y(value):.1f}",
            color,
            _num(value),
            f"{day:%d %b}: {_exact(kind, value)}",
        )
        for index, (value, day) in enumerate(zip(values, days, strict=True))
        if value
    ]
    body = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" data-value="{}"><title>{}</title></rect>',
        rects,
    )
    count = len(days)
    # First, middle and last day: more would overlap at this width.
    picks = sorted({0, (count - 1) // 2, count - 1}) if count else []
    x_ticks = [(frame.x0 + (i + 0.5) * step, f"{days[i]:%d %b}") for i in picks]
    label = f"{kind} per day, last {count} days"
    if not rects:
        label += ": none"
    return frame.svg(
        label,
        format_html(
            "{}{}{}",
            frame.y_axis(f"{kind} ({unit})"),
            body,
            frame.x_axis(x_ticks, "day (UTC)"),
        ),
    )


def sawtooth(
    points: list[tuple[datetime, float | None]],
    *,
    limit: float,
    width: int = 360,
    height: int = 140,
) -> SafeString:
    """Exposure over time (seconds; None = no good copy yet) with the target ``limit`` as a labelled dashed line.

    The line is green and thin within the target, red and thick above it; a period with no good copy
    is a shaded band. The chart's corner says "over target", "within target" or "no verified copy" for the
    newest point.
    """
    values = [y for _, y in points if y is not None]
    peak = max(values + [limit * 1.2, 1.0])
    unit, factor = _unit("exposure", peak)
    frame = _Frame(width, height, nice_ticks(peak / factor), factor)
    start, end = (points[0][0], points[-1][0]) if points else (datetime.now(UTC),) * 2
    span = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return frame.x0 + (moment - start).total_seconds() / span * (frame.x1 - frame.x0)

    pieces: list[SafeString] = []
    # Periods with no good copy: shaded bands (exposure unbounded).
    for band_start, band_end in _gaps(points):
        pieces.append(
            format_html(
                '<rect class="no-copy" x="{}" y="{}" width="{}" height="{}" fill="{}" fill-opacity="0.15">'
                "<title>no verified copy</title></rect>",
                f"{x(band_start):.1f}",
                frame.y0,
                f"{max(x(band_end) - x(band_start), 1):.1f}",
                frame.y1 - frame.y0,
                OVER_COLOR,
            )
        )
    for over, run in _segments(points, limit):
        coords = " ".join(f"{x(t):.1f},{frame.y(v):.1f}" for t, v in run)
        pieces.append(
            format_html(
                '<polyline class="{}" fill="none" stroke="{}" stroke-width="{}" points="{}"/>',
                "over" if over else "within",
                OVER_COLOR if over else WITHIN_COLOR,
                "2.5" if over else "1.5",
                coords,
            )
        )
    target_y = frame.y(limit)
    target_text = f"target {humanize.duration(limit)}"
    pieces.append(
        format_html(
            '<line class="target" x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-dasharray="4 3" data-value="{}">'
            "<title>{}</title></line>"
            '<text class="target" x="{}" y="{}" text-anchor="end" {}>{}</text>',
            frame.x0,
            f"{target_y:.1f}",
            frame.x1,
            f"{target_y:.1f}",
            TARGET_COLOR,
            _num(limit),
            target_text,
            frame.x1 - 2,
            f"{target_y - 3:.1f}",
            mark_safe(FONT),
            target_text,
        )
    )
    newest = points[-1][1] if points else None
    over_now = newest is None or newest > limit
    status = "no verified copy" if newest is None else "over target" if over_now else "within target"
    pieces.append(
        format_html(
            '<text class="status {}" x="{}" y="10" text-anchor="end" font-family="sans-serif" font-size="10"'
            ' font-weight="bold" fill="{}">now: {}</text>',
            "over" if over_now else "within",
            frame.x1,
            OVER_COLOR if over_now else WITHIN_COLOR,
            status,
        )
    )
    x_ticks = [(x(moment), label) for moment, label in _time_ticks(start, end)]
    return frame.svg(
        f"exposure from {_utc(start):%Y-%m-%d %H:%M} to {_utc(end):%Y-%m-%d %H:%M} UTC; {target_text}; now {status}",
        format_html(
            "{}{}{}",
            frame.y_axis(f"exposure ({unit})"),
            mark_safe("".join(pieces)),
            frame.x_axis(x_ticks, "date (UTC)" if span >= 2 * 86400 else "time (UTC)"),
        ),
    )


def _time_ticks(start: datetime, end: datetime, count: int = 5) -> list[tuple[datetime, str]]:
    """``count`` evenly spaced moments from ``start`` to ``end``: dates for a long span, times for a short one."""
    span = end - start
    fmt = "%d %b" if span >= timedelta(days=2) else "%H:%M"
    if span <= timedelta(0):
        return [(start, f"{_utc(start):{fmt}}")]
    return [(start + span * i / (count - 1), f"{_utc(start + span * i / (count - 1)):{fmt}}") for i in range(count)]


def _gaps(points: list[tuple[datetime, float | None]]) -> list[tuple[datetime, datetime]]:
    """The (from, to) spans where the exposure is None, each to the next sample."""
    gaps, begin = [], None
    for index, (moment, value) in enumerate(points):
        if value is None and begin is None:
            begin = moment
        if begin is not None and (value is not None or index == len(points) - 1):
            gaps.append((begin, moment))
            begin = None
    return gaps


def _segments(points: list[tuple[datetime, float | None]], limit: float) -> list[tuple[bool, list]]:
    """The line's runs as (over the limit?, [(moment, value), ...]), split where it crosses the limit or a gap."""
    runs: list[tuple[bool, list]] = []
    previous: tuple[datetime, float] | None = None
    for moment, value in points:
        if value is None:
            previous = None
            continue
        over = value > limit
        if previous is None:
            runs.append((over, [(moment, value)]))
        else:
            (p_moment, p_value), (run_over, run) = previous, runs[-1]
            if run_over == over:
                run.append((moment, value))
            else:
                # Where the straight segment meets the limit: the end of one run, the start of the next.
                share = (limit - p_value) / (value - p_value)
                crossing = (p_moment + (moment - p_moment) * share, limit)
                run.append(crossing)
                runs.append((over, [crossing, (moment, value)]))
        previous = (moment, value)
    return runs
