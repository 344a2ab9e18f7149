"""Pilot steps the unsaved-edits tests share: edit a lever, wait for the dialog, read toasts."""

from __future__ import annotations

from typing import Any

from conftest import wait_for
from leverchat.ui.screens.unsaved import UnsavedEditsScreen


async def edit_temperature(pilot: Any, keys: str = "1") -> None:
    """Type ``keys`` into the temperature lever and apply it: an unsaved profile edit."""
    await pilot.press("ctrl+l", *keys, "enter")
    await pilot.pause()


async def dialog_open(pilot: Any) -> None:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, UnsavedEditsScreen), "asked")
    await pilot.pause()


def notifications(app: Any) -> list[str]:
    return [str(notification.message) for notification in app._notifications]
