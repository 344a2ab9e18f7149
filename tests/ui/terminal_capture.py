"""What an app writes to the terminal, byte for byte, while a Pilot test drives it.

``run_test`` uses Textual's HeadlessDriver, which renders nothing. :func:`capture_terminal`
swaps in a driver that renders like a real one (the app's ``_display`` writes whole frames to
it) and records every write. :func:`foreign_sequences` then removes the sequences Textual
itself writes for a frame (colours, cursor moves, synchronized update) and returns whatever
else could act on a terminal: ESC or CSI (0x9b) anywhere else, OSC, DCS, any other C0/C1
control, and bidi or zero-width characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from textual.drivers import headless_driver

from leverchat.safetext import UNSAFE

# What Textual 8.2 writes itself: SGR colours and attributes, cursor positioning, synchronized
# output (mode 2026), cursor show/hide, and the mouse pointer's shape (OSC 22, a fixed word).
_TEXTUAL_SEQUENCE = re.compile(
    r"\x1b\[(?:[0-9;:]*m|\d+;\d+H|\?2026[hl]|\?25[hl])|\x1b\]22;[a-z-]+\x07"
)


class RecordingDriver(headless_driver.HeadlessDriver):
    """A headless driver that says it is not headless, so the app renders into ``write``."""

    output: list[str]

    @property
    def is_headless(self) -> bool:
        return False

    def write(self, data: str) -> None:
        self.output.append(data)


@contextmanager
def capture_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record what apps started with ``run_test`` inside the block write to the terminal."""
    written: list[str] = []

    class Recorder(RecordingDriver):
        output = written

    monkeypatch.setattr(headless_driver, "HeadlessDriver", Recorder)
    try:
        yield written
    finally:
        monkeypatch.undo()


def foreign_sequences(output: str) -> list[str]:
    """Everything in ``output`` that Textual did not write as frame formatting, and that a
    terminal would act on (each with a little context)."""
    rest = _TEXTUAL_SEQUENCE.sub("", output)
    # Tab and newline are not in UNSAFE: Textual separates a frame's lines with newlines.
    found = []
    for match in UNSAFE.finditer(rest):
        found.append(repr(rest[max(match.start() - 10, 0) : match.end() + 10]))
    return found
