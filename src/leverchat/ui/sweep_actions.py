"""Opening the lever sweep (F9) from the chat: what it answers and with which levers.

The sweep answers the text in the prompt, after the chat's history; with an empty prompt it
answers the last user message again, with the history before it. It runs with the panel's
current levers and system prompt; nothing it writes enters the chat (Enter on a cell copies
the reply).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from leverchat.chat import Conversation
from leverchat.engine.types import ChatMessage
from leverchat.ui import hints, reply_lifecycle
from leverchat.ui.screens.sweep import SweepScreen, SweepSetup

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def sweep_messages(
    conversation: Conversation, system_prompt: str, prompt_text: str
) -> tuple[tuple[ChatMessage, ...], str] | None:
    """The messages a sweep sends and the prompt it answers, or None when there is none."""
    if prompt_text.strip():
        history = conversation.to_chat_messages(system_prompt)
        return (*history, ChatMessage("user", prompt_text)), prompt_text
    for index in range(len(conversation.messages) - 1, -1, -1):
        message = conversation.messages[index]
        if message.role == "user":
            upto = replace(conversation, messages=conversation.messages[: index + 1])
            return upto.to_chat_messages(system_prompt), message.content
    return None


def open_sweep(screen: ChatScreen) -> None:
    if screen.streaming:
        screen.notify(hints.busy(screen.app))
        return
    if screen.model_info is None:
        screen.notify("Wait for the model to load, then sweep.")
        return
    found = sweep_messages(screen.conversation, screen.system_prompt, screen.prompt.text)
    if found is None:
        screen.notify("Type a prompt first: the sweep answers it once per value.")
        return
    messages, prompt = found
    settings = reply_lifecycle.panel_settings(screen)
    setup = SweepSetup(
        messages,
        prompt,
        settings.levers,
        prompt_format=screen.profiles.profile.prompt_format,
    )
    screen.app.push_screen(SweepScreen(screen.engine, setup))
