"""Pilot steps several UI tests share: edit a lever, wait for the unsaved-edits dialog, open
the chat list, read the toasts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from conftest import chat_screen, wait_for
from leverchat.ui.screens.chat_list import ChatListScreen
from leverchat.ui.screens.unsaved import UnsavedEditsScreen


async def edit_temperature(pilot: Any, keys: str = "1") -> None:
    """Type ``keys`` into the temperature lever and apply it: an unsaved profile edit."""
    await pilot.press("ctrl+l", *keys, "enter")
    await pilot.pause()


@asynccontextmanager
async def with_unsaved_edit(app: Any, keys: str = "1") -> AsyncIterator[tuple[Any, Any]]:
    """Run ``app`` at 80x24 with the temperature lever edited to ``keys`` and not saved;
    yields (pilot, chat screen)."""
    async with app.run_test(size=(80, 24)) as pilot:
        await edit_temperature(pilot, keys)
        yield pilot, chat_screen(app)


async def dialog_open(pilot: Any) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UnsavedEditsScreen), "asked")
    await pilot.pause()


def notifications(app: Any) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


async def open_chat_list(pilot: Any) -> Any:
    """Press F4 and wait for the chat list; returns it."""
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatListScreen), "the list opens")
    return pilot.app.screen
