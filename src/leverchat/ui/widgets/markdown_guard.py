"""Decide when a reply is too heavy to lay out as Markdown.

Textual lays a Markdown table out cell by cell (about 1.6 ms a cell here), and a streaming
reply re-lays the growing table on every batch: a 200x200 table froze the UI for 40 s. Past
these limits a reply is shown as plain text instead, which costs almost nothing.
"""

from __future__ import annotations

MAX_TABLE_CELLS = 200
MAX_MARKDOWN_CHARS = 60_000


def table_cells(text: str) -> int:
    """A cheap upper bound of the table cells in ``text``: pipes on lines that start with one."""
    cells = 0
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("|"):
            cells += max(stripped.count("|") - 1, 1)
    return cells


def too_heavy_for_markdown(text: str) -> bool:
    return len(text) > MAX_MARKDOWN_CHARS or table_cells(text) > MAX_TABLE_CELLS
