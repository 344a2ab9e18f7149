"""Snapshot of the version tree (F7) at 80x24. Each docstring says what you should see.

Update with ``pytest tests/ui/test_branch_snapshots.py --snapshot-update`` after checking the
differences in the report by eye.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scripted_engine import Script

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.history import HistoryStore
from leverchat.ui import branching
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.version_tree import VersionTreeScreen


def test_the_version_tree_at_80x24(
    snap_compare: Any, make_app: Any, engine: Any, tmp_path: Path
) -> None:
    """You should see a dialog "Versions of this reply (3)" over the chat, one line per
    version: "v1: Hello there, friend. How are you today?"; under it, indented with "└",
    "v2 from v1 at character 5 ' Arr': Hello Arr matey, how…"; under that, indented once more,
    "v3 from v2 at character 9 ', ahoy': Hello Arr, ahoy!…", marked with "●" and highlighted
    (the version shown). No line wraps. Below the list: "Up/Down choose · Enter opens it (the
    chat continues from it) · Esc closes". No notification is left over the dialog."""
    engine.scripts += [
        Script(["Hello there, friend.", " How are you today?"]),
        Script(["Hello Arr", " matey, how be ye?"]),
        Script(["Hello Arr, ahoy!", " [/] stays literal"]),
    ]
    history = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))

    async def run_before(pilot: Any) -> None:
        screen = chat_screen(pilot.app)
        await wait_for(pilot, lambda: screen.model_info is not None, "the model loaded")
        await send(pilot, "Greet me like a pirate")
        await reply_done(pilot)
        first = screen.conversation.messages[-1].id
        await branching.branch_at_offset(screen, first, 5, " Arr")
        await reply_done(pilot)
        second = screen.conversation.messages[-1].id
        await branching.branch_at_offset(screen, second, 9, ", ahoy")
        await reply_done(pilot)
        for widget in screen.query("Input, TextArea"):
            widget.cursor_blink = False  # the frame must not depend on timing
        await pilot.press("f7")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, VersionTreeScreen), "tree")
        pilot.app.clear_notifications()
        await wait_for(pilot, lambda: not screen.query("Toast"), "the notices gone")
        await pilot.pause()

    try:
        assert snap_compare(
            make_app(history=history), terminal_size=(80, 24), run_before=run_before
        )
    finally:
        history.close()
