"""Suggest persona depth when a persona changed mid-chat is likely to be ignored.

Measured on the bundled model (benchmarks/persona_switch.py, README): after one exchange a new
system prompt or profile reaches the model but mostly does not change its voice; a persona
note re-inserted near the end of the prompt does. So once per chat, when the system prompt is
edited or the profile switched after the model has answered, the user is told about the
lever. Nothing is rewritten: the history stays as it was.
"""

from __future__ import annotations

import weakref
from typing import Any

from leverchat.chat import Conversation
from leverchat.levers import Levers
from leverchat.persona import persona_text

HINT = (
    "The model has already answered in this chat: small models often keep their earlier "
    "voice after a system prompt or profile change. To make the change stick, write a short "
    "instruction in the Persona note lever (panel): it is re-inserted near the end of every "
    "prompt. The chat history itself is not changed."
)


# Per screen: the chats that were already told (once per chat is enough).
_told: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def hint_for(conversation: Conversation, levers: Levers) -> str | None:
    """The hint, when the chat has at least one answer and no persona note is set."""
    answered = any(m.role == "assistant" and m.content for m in conversation.messages)
    if not answered or persona_text(levers):
        return None
    return HINT


def suggest_persona_note(screen: object) -> None:
    """Notify ``screen`` (a chat screen) of the persona note lever, once per chat."""
    conversation = getattr(screen, "conversation", None)
    live = getattr(screen, "live_levers", None)
    if not isinstance(conversation, Conversation) or live is None:
        return
    told = _told.setdefault(screen, set())
    if conversation.id in told:
        return
    hint = hint_for(conversation, live.get())
    if hint is None:
        return
    told.add(conversation.id)
    notify = getattr(screen, "notify")  # noqa: B009 - any screen-like object
    notify(hint, title="Persona change mid-chat", markup=False, timeout=12)
