"""The versions of one turn as a tree: each branched version under the version it grew from.

Pure data (no Textual): the version tree view (ui/screens/version_tree.py) draws these lines.
A version that was not branched (the first reply, a regenerated one, a reproduction) is a root;
a branched one hangs under its source, or is a root when its source is not among the versions
(a record that lost it).
"""

from __future__ import annotations

from dataclasses import dataclass

from leverchat.chat import Message
from leverchat.safetext import single_line

INDENT = 2  # columns per level of branching
MARKER = 2  # columns before every line: "● " marks the version shown


@dataclass(frozen=True)
class TreeLine:
    """One version: its id, depth in the tree, and its one-line description."""

    message_id: str
    depth: int
    number: int  # its version number (1-based, oldest first)
    label: str  # "v3 from v2 at token 14 'Arr': first words…"


def tree_lines(versions: tuple[Message, ...], width: int = 76) -> tuple[TreeLine, ...]:
    """Every version, parents before their branches, each branch indented under its source.

    ``width``: the most columns a line takes, its marker and indentation included (untrusted
    text is made single-line and visible with safetext; the caller still shows it as plain
    text).
    """
    numbers = {message.id: index for index, message in enumerate(versions, start=1)}
    children: dict[str | None, list[Message]] = {}
    for message in versions:
        point = message.provenance.branch if message.provenance else None
        parent = point.source_id if point is not None and point.source_id in numbers else None
        if parent == message.id:
            parent = None  # malformed: a version cannot grow from itself
        children.setdefault(parent, []).append(message)
    out: list[TreeLine] = []
    seen: set[str] = set()

    def visit(message: Message, depth: int) -> None:
        if message.id in seen:
            return  # a cycle in a damaged record: each version is listed once
        seen.add(message.id)
        number = numbers[message.id]
        room = max(width - MARKER - depth * INDENT, 20)
        out.append(TreeLine(message.id, depth, number, _label(message, number, numbers, room)))
        for child in children.get(message.id, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    for message in versions:  # versions only reachable through a cycle
        if message.id not in seen:
            visit(message, 0)
    return tuple(out)


def _label(message: Message, number: int, numbers: dict[str, int], room: int) -> str:
    point = message.provenance.branch if message.provenance else None
    head = f"v{number}"
    if point is not None:
        source = numbers.get(point.source_id)
        origin = f"v{source}" if source is not None else "a lost version"
        head += f" from {origin} {single_line(point.where())}"
    words = single_line(message.content) or "(empty)"
    return single_line(f"{head}: {words}", room)
