"""Notice a terminal that closes without a signal, and never hang writing to it.

An SSH drop normally sends SIGHUP (app.py handles it). When the pty is not the process's
controlling terminal, it just closes: measured with Textual 8.2, its writer thread died on the
first EIO, the UI thread then blocked for ever on the writer's full queue, the input thread spun
on end-of-file, and the app never exited (a streaming reply stayed unsaved).

Two guards, for the real terminal only (tests run headless):
- :class:`HangupSafeDriver` writes through :class:`TerminalOutput`, which drops output once the
  terminal is gone instead of raising, so nothing blocks on it;
- :func:`watch_for_hangup` polls the terminal for a hangup from a daemon thread.
Either one calls ``on_lost`` once; the app then stops and saves as for SIGHUP.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from textual.driver import Driver

OnLost = Callable[[], None]


class TerminalOutput:
    """The driver's output file. After the first failed write the terminal is gone: later
    output is dropped (a raise would kill Textual's writer thread and block the UI thread)."""

    def __init__(self, file: TextIO, on_lost: OnLost) -> None:
        self._file = file
        self._on_lost = on_lost
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._file.write(text)
            except (OSError, ValueError):
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._lose()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def _lose(self) -> None:
        self.lost = True
        self._on_lost()


def hangup_safe_driver(on_lost: OnLost) -> type[Driver] | None:
    """A driver class for ``App(driver_class=...)`` whose output survives a closed terminal;
    None where Textual's own choice should stay (Windows)."""
    if sys.platform == "win32":
        return None
    from textual.drivers.linux_driver import LinuxDriver

    class HangupSafeDriver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The writer thread is created later (application mode) and writes to this.
            if self._file is not None:
                self._file = TerminalOutput(self._file, on_lost)  # type: ignore[assignment]

    return HangupSafeDriver


def watch_for_hangup(stream: TextIO | None, on_lost: OnLost) -> threading.Thread | None:
    """Call ``on_lost`` (from a daemon thread) when the terminal ``stream`` reads hangs up.

    Linux only: macOS's poll() does not support terminals. Elsewhere the output guard still
    notices a closed terminal at the next frame drawn.
    """
    if stream is None or not sys.platform.startswith("linux"):
        return None
    try:
        fd = stream.fileno()
        if not os.isatty(fd):
            return None
    except (OSError, ValueError):  # closed, or not a real file
        return None

    def watch() -> None:
        poller = select.poll()
        # No input events asked for: the thread wakes only on hangup or error, never on keys.
        poller.register(fd, select.POLLHUP | select.POLLERR)
        while True:
            try:
                events = poller.poll()
            except OSError:
                return
            for _fd, mask in events:
                if mask & select.POLLNVAL:
                    return  # the descriptor was closed by the app itself: nothing to watch
                if mask & (select.POLLHUP | select.POLLERR):
                    on_lost()
                    return

    thread = threading.Thread(target=watch, name="leverchat-hangup-watch", daemon=True)
    thread.start()
    return thread
