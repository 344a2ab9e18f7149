"""History in the TUI: every message saved as it happens, chats resumed with their settings,
versions of a reply, reproducing a reply, and a refused database that never stops the chat."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted_engine import Script

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.chat import MessageStatus
from leverchat.history import HistoryStore
from leverchat.ui.history_session import HistorySession
from leverchat.ui.widgets.messages_view import ReplyView, UserMessage


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


def session(db: Path) -> HistorySession:
    return HistorySession(HistoryStore(db))


def stored(db: Path, chat_id: str):
    with HistoryStore(db) as store:
        return store.load_conversation(chat_id), store.get_info(chat_id)


async def test_messages_and_replies_are_saved_with_provenance(make_app, engine, db):
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "first question")
        await reply_done(pilot)
        screen.live_levers.set(screen.live_levers.get().with_value("seed", 42))
        await send(pilot, "second question")
        await reply_done(pilot)
        chat_id = screen.conversation.id
    history.close()
    conversation, info = stored(db, chat_id)
    assert [(m.role, m.content, m.status) for m in conversation.messages] == [
        ("user", "first question", MessageStatus.COMPLETE),
        ("assistant", "Hello there!", MessageStatus.COMPLETE),
        ("user", "second question", MessageStatus.COMPLETE),
        ("assistant", "Hello there!", MessageStatus.COMPLETE),
    ]
    last = conversation.messages[-1].provenance
    assert last is not None
    assert (last.model, last.profile, last.seed) == ("scripted-model", "default", 42)
    assert last.system_prompt == "You are a helpful assistant."
    assert last.levers.seed == 42 and last.stats.new_tokens == 2
    assert info.title == "first question" and info.levers.seed == 42


async def test_opening_and_quitting_leaves_no_empty_chat(make_app, db):
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
    with HistoryStore(db) as store:
        assert store.list_conversations() == []
    history.close()


async def test_a_streaming_reply_is_saved_while_it_streams_then_finished(make_app, engine, db):
    script = Script(["part one ", "part two ", "part three"], hold_after=2)
    engine.scripts.append(script)
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "stream please")
        await wait_for(pilot, script.reached_hold.is_set, "the reply is half-way")
        reply_id = screen.conversation.messages[-1].id

        def saved_text() -> str:
            row = history.store._conn.execute(  # the raw row: opening a store marks it
                "SELECT content, status FROM messages WHERE id = ?", (reply_id,)
            ).fetchone()
            return f"{row[1]}:{row[0]}"

        await wait_for(pilot, lambda: saved_text() == "streaming:part one part two ", "saved")
        await pilot.press("escape")
        await reply_done(pilot)
        assert saved_text() == "stopped:part one part two "
    history.close()


async def test_a_resumed_chat_restores_profile_prompt_levers_and_every_message(
    make_app, engine, db
):
    engine.scripts.extend([Script(["Arr, ", "hello"]), Script(["cut ", "short"], hold_after=1)])
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        screen.switch_profile("pirate")
        screen.live_levers.set(screen.live_levers.get().with_value("top_k", 17))
        await send(pilot, "ahoy")
        await reply_done(pilot)
        await send(pilot, "tell me more")
        await wait_for(pilot, lambda: engine.scripts == [], "the second reply started")
        await wait_for(pilot, lambda: screen.query(ReplyView).last().text == "cut ", "streamed")
        await pilot.press("escape")
        await reply_done(pilot)
        chat_id = screen.conversation.id
        # Edits after the last reply are the chat's settings too.
        screen.live_levers.set(screen.live_levers.get().with_value("top_k", 23))
    history.close()

    resumed = session(db)
    app = make_app(history=resumed, resume_id=chat_id)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: len(screen.query(ReplyView)) == 2, "the chat is shown")
        assert screen.profiles.profile.name == "pirate"
        assert screen.system_prompt == "You are a pirate. Answer like one."
        assert screen.live_levers.get().top_k == 23
        assert [w.text for w in screen.query(UserMessage)] == ["ahoy", "tell me more"]
        replies = list(screen.query(ReplyView))
        assert replies[0].text == "Arr, hello"
        assert (replies[1].text, replies[1].status) == ("cut ", MessageStatus.STOPPED)
        assert "■ stopped" in frame_text(app)
        # Chatting on continues the same saved chat.
        await send(pilot, "and then?")
        await reply_done(pilot)
    resumed.close()
    conversation, _ = stored(db, chat_id)
    assert [m.content for m in conversation.messages][-2:] == ["and then?", "Hello there!"]
    assert conversation.messages[3].status is MessageStatus.STOPPED


async def test_a_reply_cut_off_by_a_crash_shows_as_interrupted_with_its_text(make_app, db):
    with HistoryStore(db) as store:  # what a killed leverchat leaves behind
        chat_id = store.create_conversation(profile="default")
        question = store.add_user_message(chat_id, "explain", parent_id=None)
        reply = store.start_reply(chat_id, parent_id=question.id)
        store.update_reply(reply.id, "It all started")
    history = session(db)
    app = make_app(history=history, resume_id=chat_id)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: len(screen.query(ReplyView)) == 1, "the chat is shown")
        view = screen.query_one(ReplyView)
        assert (view.text, view.status) == ("It all started", MessageStatus.INTERRUPTED)
        assert "■ interrupted" in frame_text(app)
        await pilot.press("f5")  # no recorded seed: refused with a reason, nothing changes
        await pilot.pause()
        assert any("cannot be reproduced" in str(n.message) for n in app._notifications)
    history.close()


async def test_regenerate_keeps_versions_and_the_user_steps_between_them(make_app, engine, db):
    engine.scripts.extend([Script(["first answer"]), Script(["second answer"])])
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "question")
        await reply_done(pilot)
        await pilot.press("ctrl+r")
        await reply_done(pilot)
        assert screen.query_one(ReplyView).text == "second answer"
        assert "version 2/2" in frame_text(app)
        await pilot.press("alt+left")
        await wait_for(
            pilot, lambda: screen.query_one(ReplyView).text == "first answer", "version 1"
        )
        assert "version 1/2" in frame_text(app)
        await pilot.press("alt+left")  # already the first: nothing changes
        await pilot.pause()
        assert screen.query_one(ReplyView).text == "first answer"
        # Continue from version 1: the next message follows it.
        await send(pilot, "follow-up")
        await reply_done(pilot)
        chat_id = screen.conversation.id
        await pilot.press("alt+right")  # the last reply has one version
        await pilot.pause()
    history.close()
    conversation, _ = stored(db, chat_id)
    assert [m.content for m in conversation.messages] == [
        "question",
        "first answer",
        "follow-up",
        "Hello there!",
    ]
    assert conversation.messages[1].version == 1 and conversation.messages[1].version_count == 2


async def test_reproduce_says_where_a_different_reply_diverged(make_app, engine, db):
    engine.scripts.extend([Script(["The cat ", "sat."]), Script(["The cat ", "ran."])])
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "story")
        await reply_done(pilot)
        await pilot.press("f5")
        await reply_done(pilot)
        text = frame_text(app)
        assert "Diverged at character 8" in text
        # The reproduction is a new version; the recorded one is kept.
        assert "version 2/2" in text
        assert engine.last.request.levers.snapshot()[1].seed == 1234  # the recorded seed
    history.close()


async def test_a_refused_history_never_stops_the_chat_and_is_left_untouched(make_app, engine, db):
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, keep it")
    history = HistorySession.open(db)
    assert not history.enabled
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        assert any("History is off" in str(n.message) for n in app._notifications)
        await send(pilot, "still works?")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].content == "Hello there!"
        await pilot.press("f4")
        await pilot.pause()
        assert not any(type(s).__name__ == "ChatListScreen" for s in app.screen_stack)
    assert db.read_bytes() == b"this is not a database, keep it"


async def test_a_reproduction_does_not_change_the_chat_settings(make_app, engine, db):
    engine.scripts.extend([Script(["same"]), Script(["same"])])
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "hi")
        await reply_done(pilot)
        await pilot.press("f5")
        await reply_done(pilot)
        assert "Reproduced exactly: the same 4 characters." in frame_text(app)
        chat_id = screen.conversation.id
    history.close()
    _, info = stored(db, chat_id)
    assert info.levers.seed is None  # the recorded seed was the reproduction's, not the user's


async def test_a_failing_history_turns_saving_off_and_the_chat_goes_on(make_app, engine, db):
    history = session(db)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded")
        await send(pilot, "saved")
        await reply_done(pilot)
        history.store.close()  # e.g. the disk went away
        await send(pilot, "not saved")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].content == "Hello there!"
        assert not history.enabled
        assert any("History stopped saving" in str(n.message) for n in app._notifications)
        chat_id = screen.conversation.id
    conversation, _ = stored(db, chat_id)
    assert [m.content for m in conversation.messages] == ["saved", "Hello there!"]


def test_continue_and_chat_flags_pick_the_chat_to_resume(db):
    from leverchat.cli import build_parser
    from leverchat.ui.launch import _chat_to_resume

    parser = build_parser()
    history = session(db)
    assert _chat_to_resume(parser.parse_args([]), history) == (None, None)
    chat_id, problem = _chat_to_resume(parser.parse_args(["-c"]), history)
    assert chat_id is None and "no saved chat" in problem
    older = history.store.create_conversation(conversation_id="abc123" + "0" * 26)
    newer = history.store.create_conversation(conversation_id="abd456" + "0" * 26)
    assert _chat_to_resume(parser.parse_args(["--continue"]), history) == (newer, None)
    assert _chat_to_resume(parser.parse_args(["--chat", "abc"]), history) == (older, None)
    chat_id, problem = _chat_to_resume(parser.parse_args(["--chat", "ab"]), history)
    assert chat_id is None and "matches several chats" in problem
    with pytest.raises(SystemExit):
        parser.parse_args(["-c", "--chat", "abc"])
    history.close()
