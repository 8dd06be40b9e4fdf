"""The one Markdown table writer: the living plan (exportplan), incident reports, drill reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_RULE = {"l": "---", "r": "---:", "c": ":---:"}


def cell(value, empty: str = "-") -> str:
    """One table cell: on one line (runs of whitespace, newlines included, become one space), pipes escaped;
    ``empty`` for None or blank text."""
    if value is None:
        return empty
    return " ".join(str(value).split()).replace("|", "\\|") or empty


def table(
    headers: Sequence[str], rows: Iterable[Iterable], *, align: str = "", none: str | None = "(none)"
) -> list[str]:
    """The lines of a Markdown table; every cell goes through :func:`cell`.

    ``align`` gives each column's alignment in turn, ``l`` (the default), ``r`` or ``c`` (``"lrr"``).
    ``none``: with no rows, one row saying so (its text in the first column), so an empty table reads as
    empty rather than broken; None leaves the table without rows.
    """
    rules = [_RULE[align[i]] if i < len(align) else _RULE["l"] for i in range(len(headers))]
    lines = [_row(headers), _row(rules)]
    lines += [_row([cell(value) for value in row]) for row in rows]
    if len(lines) == 2 and none is not None:
        lines.append(_row([none] + ["" for _ in headers[1:]]))
    return lines


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
