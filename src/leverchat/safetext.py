"""Make untrusted text safe to print to a terminal.

Model output, chat titles, profile names and file paths can carry terminal control sequences:
OSC 52 writes the user's clipboard, OSC 0 changes the window title, CSI moves the cursor or
clears the screen, and 8-bit C1 bytes do the same on some terminals. Anything shown to a
terminal goes through :func:`strip_control` first; the stored text itself is never changed.
"""

from __future__ import annotations

import re

# Whole escape sequences are removed, not just their ESC byte, so no "[31m" debris is left.
_ESCAPE_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b) [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]     # CSI: cursor moves, colours
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                    # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)                      # ... up to BEL or ST
    | \x1b [\x20-\x2f]* [\x30-\x7e]                              # any other escape sequence
    """,
    re.VERBOSE,
)
# Every C0 control but tab and newline, DEL, and every C1 control. An unterminated OSC string
# is not swallowed: its introducer goes here and the rest is shown as plain text.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """``text`` without terminal control sequences; newlines and tabs are kept."""
    return _CONTROL_CHARACTER.sub("", _ESCAPE_SEQUENCE.sub("", text))


def single_line(text: str, limit: int | None = None) -> str:
    """``text`` made safe and put on one line (titles, names in tables).

    Runs of whitespace, newlines included, become one space. With ``limit`` the result is cut
    to at most that many characters, ending with an ellipsis when it was cut.
    """
    line = " ".join(strip_control(text).split())
    if limit is not None and len(line) > limit:
        return line[: max(limit - 1, 0)].rstrip() + "…"
    return line
