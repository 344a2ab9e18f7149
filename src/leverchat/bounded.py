"""Bounded work on structures parsed from untrusted files.

A 100 KB file of ``[[[[...`` nests 50,000 levels deep: tomllib and PyYAML parse it by
recursion, and so do ``repr()``, ``==`` and every validator that walks the value, so each of
them can die with RecursionError (or, for YAML aliases, expand a few hundred bytes into
gigabytes). Files are therefore checked here before and after parsing, without recursion, and
values are shown with :func:`short_repr`, whose work is bounded whatever the value.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from typing import Final

# No leverchat file needs more than 3 levels (a profile's [levers] table holding the stop
# array); 32 leaves room for anything hand-written, and keeps every recursive walk of the
# parsed value far from Python's recursion limit.
MAX_NESTING: Final = 32

# What moves the nesting level in TOML text. Strings and comments are matched whole first, so
# brackets and dots inside them do not count. Unterminated strings fall through to the
# single-character tokens: that can only over-count, on a file tomllib rejects anyway.
_TOML_TOKEN: Final = re.compile(
    # (written as "unrolled loops": a long string is skipped in one step, not per character)
    r'"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    r"|'''[^']*(?:'(?!'')[^']*)*'''"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|[\[\]{}.=,\n]",
    re.DOTALL,
)


def toml_nesting_depth(text: str, *, stop_above: int = MAX_NESTING) -> int:
    """How deeply ``text`` nests arrays, inline tables and dotted keys, counted on the text.

    Brackets count one level each; the dots of a dotted key (``a.b.c``, also in a table header)
    count one each on top. Stops counting once the depth passes ``stop_above``.
    """
    depth = 0  # open brackets and braces
    dots = 0  # dots since the last separator: the parts of the current dotted key
    deepest = 0
    for match in _TOML_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            dots = 0
        elif token in ("]", "}"):
            depth = max(depth - 1, 0)
            dots = 0
        elif token == ".":  # noqa: S105 - a TOML token, not a password
            dots += 1
        elif token in ("=", ",", "\n"):
            dots = 0
        else:
            continue
        deepest = max(deepest, depth + dots)
        if deepest > stop_above:
            break
    return deepest


def value_depth(value: object, *, stop_above: int = MAX_NESTING) -> int:
    """How deeply lists, tuples and mappings nest in ``value`` (a scalar is 0), found without
    recursion. Stops once the depth passes ``stop_above``."""
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, Mapping):
            children: list[object] = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > stop_above:
            return deepest
        pending.extend((child, level) for child in children)
    return deepest


def nesting_message(limit: int = MAX_NESTING) -> str:
    return (
        f"nests too deeply (more than {limit} levels of arrays, tables or lists); "
        "no leverchat file needs that many: is it the right file?"
    )


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 5


def short_repr(value: object, limit: int = 60) -> str:
    """A ``repr`` of ``value`` cut to ``limit`` characters, whose cost does not depend on the
    size or depth of ``value`` (reprlib looks at a few items of a few levels only)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
