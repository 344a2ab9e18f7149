"""Pure helpers of the reply lifecycle: the chunk buffer between the engine thread and the UI,
what shapes a reply (for change markers), the fresh-seed lever source, code block extraction.
No widgets here."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace

from leverchat.levers import LEVER_SPECS, Levers, LiveLevers
from leverchat.safetext import single_line
from leverchat.ui.widgets.lever_field import format_lever_value

_CODE_BLOCK = re.compile(r"^(`{3,}|~{3,})[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a reply, in order (for "copy code block")."""
    return [match.group(2).rstrip("\n") for match in _CODE_BLOCK.finditer(markdown)]


class ChunkBuffer:
    """Chunks from the engine thread, drained by the UI thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: list[str] = []

    def append(self, chunk: str) -> None:
        with self._lock:
            self._parts.append(chunk)

    def drain(self) -> str:
        with self._lock:
            text = "".join(self._parts)
            self._parts.clear()
        return text


@dataclass(frozen=True)
class ReplySettings:
    """What shapes a reply besides the conversation: compared between replies for markers."""

    profile: str
    system_prompt: str
    levers: Levers


class FreshSeed:
    """The live levers with the seed replaced, so "regenerate" never repeats a fixed seed."""

    def __init__(self, live: LiveLevers, seed: int) -> None:
        self._live = live
        self._seed = seed

    def snapshot(self) -> tuple[int, Levers]:
        version, levers = self._live.snapshot()
        return version, replace(levers, seed=self._seed)


def describe_changes(before: ReplySettings, after: ReplySettings) -> str | None:
    """One line saying what changed between two replies, or None."""
    parts: list[str] = []
    if before.profile != after.profile:
        parts.append(
            f"profile {single_line(before.profile, 30)} → {single_line(after.profile, 30)}"
        )
    if before.system_prompt != after.system_prompt:
        parts.append("system prompt changed")
    specs = {spec.name: spec for spec in LEVER_SPECS}
    for name in after.levers.changed_names(before.levers):
        spec = specs[name]
        old = format_lever_value(spec, getattr(before.levers, name)) or "unset"
        new = format_lever_value(spec, getattr(after.levers, name)) or "unset"
        parts.append(f"{name} {old} → {new}")
    return "; ".join(parts) if parts else None
