"""Small server-rendered SVG charts: no JavaScript, no CDN, readable without colour."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe


def bars(
    values: list[float | None],
    labels: list[str],
    *,
    width: int = 180,
    height: int = 40,
    color: str = "#417690",
    unit: str = "",
) -> SafeString:
    """A bar per value (None: a gap), each with a tooltip of its label and value."""
    count = max(len(values), 1)
    peak = max((v for v in values if v), default=0) or 1
    step = width / count
    rects = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        if not value:
            continue
        h = max(1.0, (value / peak) * (height - 2))
        rects.append(
            (
                f"{index * step + 0.5:.1f}",
                f"{height - h:.1f}",
                f"{max(step - 1, 1):.1f}",
                f"{h:.1f}",
                color,
                f"{label}: {_fmt(value)}{unit}",
            )
        )
    body = format_html_join("", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>', rects)
    return format_html(
        '<svg class="chart" role="img" width="{}" height="{}" viewBox="0 0 {} {}">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#ccc"/>{}</svg>',
        width,
        height,
        width,
        height,
        height - 0.5,
        width,
        height - 0.5,
        body,
    )


def sawtooth(
    points: list[tuple[float, float | None]], *, limit: float, width: int = 180, height: int = 40
) -> SafeString:
    """Exposure over time (x in [0,1], y seconds; None = no good copy) with the RPO as a dashed line."""
    values = [y for _, y in points if y is not None]
    peak = max(values + [limit * 1.2]) or 1
    coords = []
    for x, y in points:
        y = peak if y is None else y
        coords.append(f"{x * width:.1f},{height - (min(y, peak) / peak) * (height - 2):.1f}")
    limit_y = height - (limit / peak) * (height - 2)
    over = any(y is None or y > limit for _, y in points)
    return format_html(
        '<svg class="chart" role="img" width="{}" height="{}" viewBox="0 0 {} {}">'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#c0392b" stroke-dasharray="4 3">'
        "<title>RPO {}</title></line>"
        '<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/></svg>',
        width,
        height,
        width,
        height,
        f"{limit_y:.1f}",
        width,
        f"{limit_y:.1f}",
        _fmt(limit) + " s",
        "#c0392b" if over else "#2e8540",
        mark_safe(" ".join(coords)),
    )


def _fmt(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:.1f} G"
    if value >= 1e6:
        return f"{value / 1e6:.1f} M"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k"
    return f"{value:.1f}"
