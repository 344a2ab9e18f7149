"""The one policy for control characters in untrusted text: shown visibly, never raw.

Model output, chat titles, profile names, file paths and error texts can carry terminal
control sequences: OSC 52 writes the user's clipboard, OSC 0 changes the window title, CSI
moves the cursor, clears the screen or asks the terminal to type an answer (ESC[6n), and the
8-bit C1 bytes do the same on some terminals. Bidi overrides and zero-width characters do not
move the cursor, but they reorder or hide what the user reads ("trojan source").

Every such character (see :data:`UNSAFE`) is shown as something the user can see, and the
stored text is never changed; only what is displayed is. Three forms of the same policy:

- :func:`visible` for text shown as text (replies, messages, CLI output, error messages):
  each character becomes its Python escape, ``\\x1b``, ``\\x9b``, ``\\u202e``; newline and tab
  are kept. :func:`single_line` is the same on one line, for names, titles and table cells.
- :func:`visible_glyphs` for editors (TextArea, Input), where one character must stay one
  cell so the cursor stays aligned: C0 controls become Unicode Control Pictures (``␛``),
  DEL ``␡``, every other one ``�``.
- :func:`plain` wraps :func:`visible` in a Textual ``Content``, so the text is never read as
  markup either.

:func:`strip_control` is the other side: it *removes* the same characters, and whole escape
sequences, for text that is to be *kept* neutralised (an imported persona), never for display.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.content import Content

__all__ = [
    "UNSAFE",
    "plain",
    "single_line",
    "strip_control",
    "visible",
    "visible_glyphs",
    "visible_json",
]

# Unicode categories Cc (controls, but tab and newline), Cf (format: bidi marks, overrides and
# isolates, zero-width space/joiners, word joiner, BOM, soft hyphen, tag characters), Zl and Zp
# (line and paragraph separators: Python's splitlines and some terminals break lines there)
# and Cs (lone surrogates, which cannot even be encoded for the terminal). Written out as
# ranges (Unicode 14, Python 3.11) because scanning unicodedata at import costs a quarter of a
# second; tests/test_safetext.py checks the ranges against unicodedata.
UNSAFE = re.compile(
    "["
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline, DEL, C1 (8-bit CSI, OSC, ST...)
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f"  # zero-width space, non-joiner, joiner; left-to-right / right-to-left mark
    "\u2028-\u202e"  # line and paragraph separators; bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u206f"  # word joiner, invisible operators; bidi isolates
    "\ud800-\udfff"  # lone surrogates
    "\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"  # tag characters (invisible "ASCII smuggling")
    "]"
)
# Quoted inside one line, newline and tab are escaped too.
_UNSAFE_IN_ONE_LINE = re.compile(r"[\t\n]|" + UNSAFE.pattern)
# In an editor line a newline is drawn as a glyph too (an Input's value can hold one).
_UNSAFE_IN_AN_EDITOR = re.compile(r"\n|" + UNSAFE.pattern)

# Whole escape sequences, for strip_control only: removed with their parameters, so no "[31m"
# debris is left in text that is kept.
_ESCAPE_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]     # CSI: cursor moves, colours
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                    # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)                      # ... up to BEL or ST
    | \x1b [\x20-\x2f]* [\x30-\x7e]                              # any other escape sequence
    """,
    re.VERBOSE,
)

_REPLACEMENT = "\ufffd"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    # "unicode_escape" gives \x1b, \r, \x9b, \u202e, \U000e0041 and \udcff (lone surrogates).
    return char.encode("unicode_escape").decode("ascii")


def _glyph(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␀ ... ␛ ... ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return _REPLACEMENT


def visible(text: str, *, multiline: bool = True) -> str:
    """``text`` as it may be shown: every :data:`UNSAFE` character as its escape (``\\x1b``).

    Newline and tab are kept, so multi-line text keeps its lines; with ``multiline=False``
    they are escaped too (``\\n``), for a path or name quoted inside one line of a message.
    Text without such characters comes back unchanged (the same object).
    """
    pattern = UNSAFE if multiline else _UNSAFE_IN_ONE_LINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def single_line(text: str, limit: int | None = None) -> str:
    """``text`` made visible and put on one line (titles, names in tables, notifications).

    Runs of whitespace, line breaks (``\\n``, ``\\r\\n``) and tabs included, become one
    space. With ``limit`` the result is cut to at most that many characters, ending with an
    ellipsis when it was cut.
    """
    # Split only on real whitespace: str.split() would also split on \x1c-\x1f and \x85, which
    # are shown as escapes here, not hidden.
    line = " ".join(visible(text.replace("\r\n", "\n")).split())
    if limit is not None and len(line) > limit:
        return line[: max(limit - 1, 0)].rstrip() + "…"
    return line


def visible_glyphs(text: str) -> str:
    """``text`` with each :data:`UNSAFE` character (and newline) as one visible one-cell glyph.

    For editors: the result has the same length as ``text`` and each replaced character takes
    exactly one terminal cell, so a cursor index in the real text is the same index (and, tabs
    aside, the same cell) in what is drawn. Tab is kept: editors expand it themselves.
    """
    if _UNSAFE_IN_AN_EDITOR.search(text) is None:
        return text
    return _UNSAFE_IN_AN_EDITOR.sub(_glyph, text)


def visible_json(data: Any) -> str:
    """``data`` as indented JSON in which every :data:`UNSAFE` character is a ``\\uXXXX``
    escape: the same data for a program that reads it, nothing raw for a terminal that shows
    it (``json.dumps`` escapes C0 but writes C1, bidi and zero-width characters as they are)."""
    return UNSAFE.sub(_json_escape, json.dumps(data, ensure_ascii=False, indent=2))


def _json_escape(match: re.Match[str]) -> str:
    # Outside the BMP, JSON spells a character as its UTF-16 surrogate pair.
    encoded = match.group().encode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(encoded[i : i + 2], "little") for i in range(0, len(encoded), 2)]
    return "".join(f"\\u{unit:04x}" for unit in units)


def plain(text: str) -> Content:
    """Untrusted text as literal ``Content``: never markup, controls shown visibly."""
    from textual.content import Content  # Textual only where a widget needs it.

    return Content(visible(text))


def strip_control(text: str) -> str:
    """``text`` without :data:`UNSAFE` characters and without whole escape sequences.

    Not for display (use :func:`visible`): for neutralising text that is kept, such as the
    system prompt of an imported Modelfile, where the caller also says what was removed.
    Newlines and tabs are kept.
    """
    return UNSAFE.sub("", _ESCAPE_SEQUENCE.sub("", text))
