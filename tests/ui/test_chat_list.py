"""The chat list (F4): browse by date, search message text, open, rename, delete; at 80x24,
keyboard only, with untrusted titles shown literally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import chat_screen, frame_text, wait_for
from leverchat.history import HistoryStore
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.chat_list import ChatListScreen
from leverchat.ui.widgets.messages_view import UserMessage

NOW = datetime.now(UTC)


def ticking(start: datetime) -> Iterator[datetime]:
    moment = start
    while True:
        yield moment
        moment += timedelta(seconds=1)


def fill(db: Path) -> dict[str, str]:
    """Three chats: two days ago, yesterday, today (ids by name)."""
    ids: dict[str, str] = {}
    chats = [
        ("fruit", NOW - timedelta(days=2), "Which fruit is yellow?", "A banana."),
        ("markup", NOW - timedelta(days=1), "[bold red]not markup[/] please", "Literal."),
        ("weather", NOW, "Will it rain today?", "Take an umbrella."),
    ]
    for name, when, question, answer in chats:
        clock = ticking(when)
        with HistoryStore(db, clock=lambda clock=clock: next(clock)) as store:
            chat_id = store.create_conversation(profile="default")
            user = store.add_user_message(chat_id, question, parent_id=None)
            reply = store.start_reply(chat_id, parent_id=user.id)
            store.finish_reply(reply.id, answer, status=reply.status.COMPLETE)
        ids[name] = chat_id
    return ids


def list_screen(app) -> ChatListScreen:
    screen = app.screen
    assert isinstance(screen, ChatListScreen)
    return screen


async def test_browse_search_open_rename_delete(make_app, tmp_path: Path):
    db = tmp_path / "history.sqlite3"
    ids = fill(db)
    history = HistorySession(HistoryStore(db))
    app = make_app(history=history)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = chat_screen(app)
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatListScreen), "the list opens")
        frame = frame_text(app)
        assert "Today" in frame and "Yesterday" in frame
        assert "[bold red]not markup[/] please" in frame  # literal, not interpreted
        assert frame.index("Will it rain") < frame.index("Which fruit")  # newest first
        assert list_screen(app).chosen_id == ids["weather"]

        # Search message text (replies included), then open the hit.
        await pilot.press("slash")
        await pilot.press(*"banana")
        await wait_for(pilot, lambda: "Will it rain" not in frame_text(app), "filtered")
        assert "Which fruit is yellow?" in frame_text(app)
        await pilot.press("enter", "enter")
        await wait_for(pilot, lambda: chat.conversation.id == ids["fruit"], "the chat opened")
        assert [w.text for w in chat.query(UserMessage)] == ["Which fruit is yellow?"]

        # Rename the chosen chat (the first row: today's).
        await pilot.press("f4")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatListScreen), "the list opens")
        await pilot.press("r")
        await pilot.press("ctrl+a", "ctrl+k", *"Rainy days", "enter")
        await wait_for(pilot, lambda: "Rainy days" in frame_text(app), "the new title shows")

        # Delete asks first; Enter alone (on Cancel) deletes nothing.
        await pilot.press("d")
        await pilot.pause()
        assert "Delete this chat?" in frame_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert "Rainy days" in frame_text(app)
        await pilot.press("d", "shift+tab", "enter")
        await wait_for(pilot, lambda: "Rainy days" not in frame_text(app), "deleted")

        # Deleting the chat that is open starts a new one.
        assert list_screen(app).chosen_id == ids["markup"]
        await pilot.press("down")  # the day heading in between is skipped
        assert list_screen(app).chosen_id == ids["fruit"]
        await pilot.press("delete", "shift+tab", "enter")
        await wait_for(pilot, lambda: chat.conversation.id != ids["fruit"], "a new chat")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is chat
    history.close()
    with HistoryStore(db) as store:
        assert [info.id for info in store.list_conversations()] == [ids["markup"]]
        assert store.search("rain") == []


async def test_the_palette_opens_the_chat_list(make_app, tmp_path: Path):
    history = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
    app = make_app(history=history)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Open chat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatListScreen), "the list opens")
        assert "No saved chats yet." in frame_text(app)
    history.close()
