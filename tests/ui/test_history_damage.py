"""`leverchat -c` on a chat with a damaged row: the rest of the chat opens, the user is told."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import chat_screen, wait_for
from leverchat.chat import MessageStatus
from leverchat.history import HistoryStore
from leverchat.ui.history_session import HistorySession
from leverchat.ui.widgets.messages_view import ReplyView, UserMessage


async def test_a_blob_message_is_skipped_and_the_rest_of_the_chat_opens(make_app, tmp_path):
    db = tmp_path / "data" / "history.sqlite3"
    with HistoryStore(db) as store:
        chat_id = store.create_conversation(profile="default")
        parent = None
        ids = []
        for turn in range(2):
            user = store.add_user_message(chat_id, f"question {turn}", parent_id=parent)
            reply = store.start_reply(chat_id, parent_id=user.id)
            store.finish_reply(reply.id, f"answer {turn}", status=MessageStatus.COMPLETE)
            ids += [user.id, reply.id]
            parent = reply.id
    conn = sqlite3.connect(db)  # a damaged or foreign-written row
    conn.execute("UPDATE messages SET content = x'1b5b324a00ff' WHERE id = ?", (ids[1],))
    conn.commit()
    conn.close()

    history = HistorySession(HistoryStore(db))
    app = make_app(history=history, resume_id=chat_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: len(screen.query(ReplyView)) == 1, "the chat is shown")
        assert [view.text for view in screen.query(ReplyView)] == ["answer 1"]
        assert len(screen.query(UserMessage)) == 2
        notes = [str(n.message) for n in app._notifications]
        assert any(f"message {ids[1]} was skipped (content: a BLOB of 6 bytes" in n for n in notes)
    history.close()


def test_history_list_in_the_ui_session_keeps_an_unreadable_chat(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    with HistoryStore(db) as store:
        good = store.create_conversation(title="good")
        bad = store.create_conversation(title="bad")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE conversations SET levers = 'nope' WHERE id = ?", (bad,))
    conn.commit()
    conn.close()
    session = HistorySession(HistoryStore(db))
    try:
        listed = {info.id: info.problem for info in session.list_chats()}
        assert set(listed) == {good, bad} and listed[good] is None
        assert "levers: not valid JSON" in (listed[bad] or "")
        assert session.delete(bad)
        assert [info.id for info in session.list_chats()] == [good]
    finally:
        session.close()


def test_the_f4_row_of_an_unreadable_chat_says_so(tmp_path: Path) -> None:
    from leverchat.ui.screens.chat_list import chat_row

    db = tmp_path / "history.sqlite3"
    with HistoryStore(db) as store:
        bad = store.create_conversation(title="my chat")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE conversations SET levers = x'00' WHERE id = ?", (bad,))
    conn.commit()
    conn.close()
    with HistoryStore(db) as store:
        [info] = store.list_conversations()
    row = chat_row(info, current=False).plain
    assert "(unreadable) my chat" in row


async def test_a_chat_with_an_unreadable_title_and_levers_still_opens_and_says_so(
    make_app, tmp_path
):
    db = tmp_path / "data" / "history.sqlite3"
    with HistoryStore(db) as store:
        chat_id = store.create_conversation(system_prompt="Be brief.")
        user = store.add_user_message(chat_id, "hello", parent_id=None)
        reply = store.start_reply(chat_id, parent_id=user.id)
        store.finish_reply(reply.id, "hi there", status=MessageStatus.COMPLETE)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE conversations SET title = x'ff', levers = '{' WHERE id = ?", (chat_id,))
    conn.commit()
    conn.close()

    history = HistorySession(HistoryStore(db))
    app = make_app(history=history, resume_id=chat_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: len(screen.query(ReplyView)) == 1, "the chat is shown")
        assert screen.system_prompt == "Be brief."  # what could be read is restored
        notes = " ".join(str(n.message) for n in app._notifications)
        assert f"chat {chat_id}: some stored settings cannot be read (title: a BLOB" in notes
        assert "levers: not valid JSON" in notes
    history.close()
