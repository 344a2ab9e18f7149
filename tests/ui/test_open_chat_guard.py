"""F4 (open a saved chat) restores that chat's levers and system prompt: unsaved lever-panel
edits are asked about first, with the same dialog as a profile switch or quit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pilot_steps import dialog_open, notifications, open_chat_list, with_unsaved_edit
from scripted_engine import Script

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.history import HistoryStore
from leverchat.ui import hints
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.unsaved import UnsavedEditsScreen
from leverchat.ui.widgets.messages_view import UserMessage

QUESTION = "Which fruit is yellow?"


@pytest.fixture
def saved_chat(tmp_path: Path) -> Iterator[tuple[HistorySession, str]]:
    """A history with one saved chat (made with the profile's default levers)."""
    db = tmp_path / "history.sqlite3"
    with HistoryStore(db) as store:
        chat_id = store.create_conversation(profile="default")
        user = store.add_user_message(chat_id, QUESTION, parent_id=None)
        reply = store.start_reply(chat_id, parent_id=user.id)
        store.finish_reply(reply.id, "A banana.", status=reply.status.COMPLETE)
    history = HistorySession(HistoryStore(db))
    yield history, chat_id
    history.close()


@pytest.fixture
def app_and_chat(make_app, saved_chat):
    """The app on that history, and the saved chat's id."""
    history, chat_id = saved_chat
    return make_app(history=history), chat_id


async def choose_the_saved_chat(pilot) -> None:
    await open_chat_list(pilot)
    await pilot.press("enter")
    await pilot.pause()


@asynccontextmanager
async def asked_on_f4(app) -> AsyncIterator[tuple[Any, Any]]:
    """Edit a lever, choose the saved chat with F4: the unsaved-edits dialog is open."""
    async with with_unsaved_edit(app) as (pilot, screen):
        await choose_the_saved_chat(pilot)
        await dialog_open(pilot)
        yield pilot, screen


async def test_f4_with_unsaved_edits_asks_and_cancel_keeps_them(app_and_chat):
    app, chat_id = app_and_chat
    async with asked_on_f4(app) as (pilot, screen):
        before = screen.conversation.id
        frame = frame_text(app)
        assert "Unsaved edits to profile default" in frame
        assert "the temperature lever" in frame
        assert "before you open another chat?" in frame
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert screen.conversation.id == before != chat_id  # the saved chat did not open
        assert screen.live_levers.get().temperature == 1.0
        assert screen.panel.field("temperature").input.value == "1.0"
        assert not screen.query(UserMessage)


async def test_f4_discard_opens_the_chat_with_its_own_levers(app_and_chat, profile_store):
    app, chat_id = app_and_chat
    async with asked_on_f4(app) as (pilot, screen):
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.conversation.id == chat_id, "the chat opened")
        await pilot.pause()
        assert [view.text for view in screen.query(UserMessage)] == [QUESTION]
        assert screen.live_levers.get().temperature == 0.7
        assert "Discarded your edits to default." in notifications(app)
        assert profile_store.load("default").profile.levers.temperature == 0.7


async def test_f4_save_writes_the_edits_then_opens(app_and_chat, profile_store):
    app, chat_id = app_and_chat
    async with asked_on_f4(app) as (pilot, screen):
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.conversation.id == chat_id, "the chat opened")
        assert profile_store.load("default").profile.levers.temperature == 1.0


async def test_f4_without_edits_opens_at_once(app_and_chat):
    app, chat_id = app_and_chat
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await choose_the_saved_chat(pilot)
        await wait_for(pilot, lambda: screen.conversation.id == chat_id, "the chat opened")
        assert not any(isinstance(s, UnsavedEditsScreen) for s in app.screen_stack)


async def test_f4_while_a_reply_streams_says_so_and_asks_nothing(app_and_chat, engine):
    # Opening is refused while a reply is written: asking first would make the user decide
    # about edits for nothing (and "discard" would not even discard them).
    app, chat_id = app_and_chat
    script = Script(["one ", "two ", "three"], hold_after=1)
    engine.scripts.append(script)
    async with with_unsaved_edit(app) as (pilot, screen):
        await send(pilot, "count")
        await wait_for(pilot, script.reached_hold.is_set, "the reply is streaming")
        await open_chat_list(pilot)
        await pilot.press("end", "enter")  # the saved chat: this one is listed first now
        await pilot.pause()
        assert hints.busy(app) in notifications(app)
        assert not any(isinstance(s, UnsavedEditsScreen) for s in app.screen_stack)
        assert screen.conversation.id != chat_id
        assert screen.live_levers.get().temperature == 1.0
        script.release.set()
        await reply_done(pilot)
