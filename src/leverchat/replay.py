"""Reproducing a recorded reply: replay its lever changes at the tokens they first applied to,
and say whether the new text is the same.

The engine (engine/generate.py) reads ``request.levers.snapshot()``:

1. once before the prompt is encoded (the levers the reply starts with);
2. once per decoding step, before it picks token ``i`` (``i`` = tokens so far). A change of
   version here is recorded as ``LeverChange(token_index=i)``: it applied from token ``i`` on;
3. once more right after token ``i`` was appended when ``i + 1 >= max_new_tokens`` (the levers
   of step 2): if the version is unchanged the reply ends there, else decoding goes on and step
   2 for token ``i + 1`` records the change.

:class:`ReplayLevers` follows the same sequence, so each recorded change reaches the engine at
the exact step it did the first time. No Textual, no torch here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from leverchat.engine.types import LeverChange
from leverchat.levers import Levers


class ReplayLevers:
    """A LeverSource that replays recorded lever changes by token index.

    ``stop_after_tokens`` (with ``cancel``): end the reply after that many tokens, as a reply
    the user stopped did; the event is set while the last of them is being picked, so the
    engine stops at its next step. ``first_token``: the index of the first sampled token (a
    branch's given start is that many tokens).
    """

    def __init__(
        self,
        start: Levers,
        changes: Iterable[LeverChange] = (),
        *,
        cancel: threading.Event | None = None,
        stop_after_tokens: int | None = None,
        first_token: int = 0,
    ) -> None:
        self._start = start
        self._changes = {change.token_index: change.levers for change in changes}
        self._cancel = cancel
        self._stop_after = stop_after_tokens
        self._lock = threading.Lock()
        self._started = False
        # The token index of the next per-step read: after a branch's given start (whose
        # tokens the engine feeds without reading the levers), its length.
        self._next_token = first_token
        self._check_pending = False  # the next read is the "is it done?" check (3. above)
        self._version = 0
        self._levers = start

    def snapshot(self) -> tuple[int, Levers]:
        with self._lock:
            if not self._started:
                self._started = True
                return 0, self._start
            if self._check_pending:
                self._check_pending = False
                upcoming = self._changes.get(self._next_token)
                if upcoming is not None:
                    # The first time, a change had arrived here: tell the engine to go on.
                    return self._version + 1, upcoming
                return self._version, self._levers
            index = self._next_token
            change = self._changes.get(index)
            if change is not None:
                self._version += 1
                self._levers = change
            self._next_token = index + 1
            self._check_pending = index + 1 >= self._levers.max_new_tokens
            if (
                self._cancel is not None
                and self._stop_after is not None
                and index + 1 >= self._stop_after
            ):
                self._cancel.set()
            return self._version, self._levers


def replay_start_levers(levers: Levers, seed: int | None) -> Levers:
    """The levers a reproduction starts with: the recorded ones with the recorded seed."""
    return levers if seed is None else replace(levers, seed=seed)


@dataclass(frozen=True)
class Comparison:
    """How a reproduced text compares with the recorded one."""

    identical: bool
    diverged_at: int | None = None  # the first differing character index
    prefix_only: bool = False  # the recorded text was cut short and the new one continues it

    def describe(self, original: str, reproduced: str) -> str:
        if self.identical:
            return f"Reproduced exactly: the same {len(original)} characters."
        if self.prefix_only:
            return (
                f"Reproduced exactly up to where the recorded reply ended ({len(original)} "
                f"characters); this one goes on to {len(reproduced)}."
            )
        index = self.diverged_at or 0
        line = original.count("\n", 0, index) + 1
        return (
            f"Diverged at character {index} (line {line}): recorded "
            f"{_excerpt(original, index)!r}, reproduced {_excerpt(reproduced, index)!r}."
        )


def compare_texts(original: str, reproduced: str, *, original_complete: bool) -> Comparison:
    """Compare a reproduction with the recorded text.

    When the recorded reply did not end by itself (interrupted, stopped at an unknown token),
    a reproduction that starts with it counts as a match up to there.
    """
    if original == reproduced:
        return Comparison(identical=True)
    if not original_complete and reproduced.startswith(original):
        return Comparison(identical=False, prefix_only=True)
    index = 0
    limit = min(len(original), len(reproduced))
    while index < limit and original[index] == reproduced[index]:
        index += 1
    return Comparison(identical=False, diverged_at=index)


def _excerpt(text: str, index: int, width: int = 24) -> str:
    return text[index : index + width]
