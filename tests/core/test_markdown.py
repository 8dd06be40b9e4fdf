"""The one Markdown table helper."""

from __future__ import annotations

from drportal.markdown import cell, table


def test_cells_stay_on_one_line_and_escape_pipes():
    assert cell("a | b\n  c") == "a \\| b c"
    assert cell(None) == "-" and cell("  ") == "-" and cell(0) == "0"


def test_table_with_alignment():
    assert table(["Table", "Rows"], [("users", 3), ("a|b", None)], align="lr") == [
        "| Table | Rows |",
        "| --- | ---: |",
        "| users | 3 |",
        "| a\\|b | - |",
    ]


def test_an_empty_table_says_so():
    assert table(["A", "B"], []) == ["| A | B |", "| --- | --- |", "| (none) |  |"]
    assert table(["A", "B"], [], none=None) == ["| A | B |", "| --- | --- |"]
