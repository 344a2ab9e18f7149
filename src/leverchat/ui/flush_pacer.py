"""Decide when a streaming reply's buffered text is next drawn on screen.

Drawing costs the UI thread a full layout of the screen (5-7 ms on the 2-core development
machine with the lever panel open, more as the transcript grows). That time holds the GIL the
engine thread needs between its torch calls, so every millisecond the UI spends slows the
tokens down: flushing every 75 ms took 19 % of a core and cost the reply 22 % of its speed.

The pacer keeps the UI thread's share of a core near ``budget_share`` while a reply streams:
after a flush, the next is due once the CPU time the UI thread spent since the last one (the
layout it caused, key presses, anything) is at most ``budget_share`` of the time elapsed. A fast
machine therefore draws at the ``min_interval`` rate, a slow one draws less often, and never
less often than ``max_interval`` so the reply never looks stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_BUDGET_SHARE = 0.05
DEFAULT_MIN_INTERVAL_S = 0.05
DEFAULT_MAX_INTERVAL_S = 0.25


class FlushPacer:
    """Spaces screen updates so the UI thread stays within a CPU budget while a reply streams.

    Call :meth:`start` when a reply starts, :meth:`due` on every tick of a timer that runs at
    ``min_interval``, and :meth:`flushed` after drawing.
    """

    def __init__(
        self,
        *,
        budget_share: float = DEFAULT_BUDGET_SHARE,
        min_interval: float = DEFAULT_MIN_INTERVAL_S,
        max_interval: float = DEFAULT_MAX_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        if not 0 < budget_share <= 1:
            raise ValueError(f"budget_share must be in (0, 1], not {budget_share}")
        if not 0 < min_interval <= max_interval:
            raise ValueError(
                f"intervals must satisfy 0 < min <= max, not {min_interval}, {max_interval}"
            )
        self.budget_share = budget_share
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._clock = clock
        # thread_time is per thread: the pacer must be used from the UI thread only.
        self._cpu_clock = cpu_clock
        self._last_flush = clock()
        self._cpu_at_last_flush = cpu_clock()

    def start(self) -> None:
        """A reply starts: its first text is drawn as soon as it arrives."""
        self._last_flush = self._clock() - self.max_interval
        self._cpu_at_last_flush = self._cpu_clock()

    def next_interval(self) -> float:
        """How long after the last flush the next one is due, given the UI's CPU since then."""
        spent = max(0.0, self._cpu_clock() - self._cpu_at_last_flush)
        return min(self.max_interval, max(self.min_interval, spent / self.budget_share))

    def due(self) -> bool:
        return self._clock() - self._last_flush >= self.next_interval()

    def flushed(self) -> None:
        self._last_flush = self._clock()
        self._cpu_at_last_flush = self._cpu_clock()
