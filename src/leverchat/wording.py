"""Sentences built around text that comes from elsewhere (titles, names, error messages).

A message that adds a full stop after such text doubled the stop when the text already
ended a sentence ("Deleted How do I make a cake?.", "...SmolLM2-360M-Instruct.. Load").
"""

from __future__ import annotations

_ENDS = (".", "?", "!", "…")
_CLOSERS = "\"')]}»”’"


def sentence(text: str) -> str:
    """``text`` ending as a sentence: a full stop is added only when it has none of its own
    (".", "?", "!" or "…", also just before a closing quote or bracket)."""
    stripped = text.rstrip()
    if stripped.rstrip(_CLOSERS).endswith(_ENDS):
        return stripped
    return stripped + "."
