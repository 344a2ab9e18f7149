"""Persona depth: a short instruction re-inserted a few messages from the end of every prompt.

What SillyTavern calls an author's note at a depth. A small model reads its system prompt at
the top of the prompt, and after a few exchanges in one voice it keeps that voice: a new
system prompt set mid-chat reaches the model (see tests/test_persona.py) but is mostly
ignored (benchmarks/persona_switch.py measures how often). The same instruction placed near
the end of the prompt is much harder to overlook.

The note is added to the messages sent to the model only: the conversation and its history
are never rewritten. Pure data; both engines call :func:`with_persona_note`.
"""

from __future__ import annotations

from typing import cast

from leverchat.engine.types import ChatMessage, Role
from leverchat.levers import Levers


def persona_text(levers: Levers) -> str:
    """The note, "" when there is none (blank counts as none)."""
    return levers.persona_note.strip()


def with_persona_note(messages: tuple[ChatMessage, ...], levers: Levers) -> tuple[ChatMessage, ...]:
    """``messages`` with the persona note inserted ``persona_depth`` messages from the end.

    Depth counts the conversation's messages (not the system prompt): 0 puts the note after
    the last message, 1 before the last one (the user's new message), and so on. A history
    shorter than the depth gets no note: it would land above the start of the conversation,
    where the system prompt already speaks.
    """
    text = persona_text(levers)
    if not text:
        return messages
    head = 1 if messages and messages[0].role == "system" else 0
    conversation = len(messages) - head
    depth = levers.persona_depth
    if depth > conversation:
        return messages
    at = len(messages) - depth
    # Levers validated the role: one of system, user, assistant.
    return (*messages[:at], ChatMessage(cast(Role, levers.persona_role), text), *messages[at:])
