"""The conversation: send, stream, stop, regenerate, edit and resend, model loading."""

from __future__ import annotations

from scripted_engine import Script, ScriptedEngine

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.chat import MessageStatus
from leverchat.engine.types import StopReason
from leverchat.ui.widgets.messages_view import ReplyView, UserMessage
from leverchat.ui.widgets.status_line import StatusLine


async def test_a_sent_message_streams_a_reply_and_the_status_shows_its_stats(make_app, engine):
    # 120 columns: the status line has room for its long labels
    engine.scripts.append(Script(["The answer", " is ", "**42**."]))
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "What is the answer?")
        await reply_done(pilot)
        assert [m.role for m in screen.conversation.messages] == ["user", "assistant"]
        reply = screen.conversation.messages[1]
        assert reply.content == "The answer is **42**."
        assert reply.status is MessageStatus.COMPLETE
        assert reply.provenance is not None and reply.provenance.seed == 1234
        assert screen.prompt.text == ""  # sent, so cleared
        view = screen.query_one(ReplyView)
        assert view.text == "The answer is **42**."
        status = str(screen.query_one(StatusLine).render())
        for piece in ("scripted-model", "42.0 tok/s", "TTFT 0.05 s", "seed 1234", "end of turn"):
            assert piece in status
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        status = str(screen.query_one(StatusLine).render())
        for piece in ("scripted-model", "42 t/s", "ttft 0.05s", "ctx 16/2048", "seed 1234"):
            assert piece in status
        # the engine saw the system prompt of the default profile, then the user's message
        messages = engine.last.request.messages
        assert messages[0].role == "system" and messages[-1].content == "What is the answer?"


async def test_escape_stops_the_reply_and_keeps_the_partial_text(make_app, engine):
    script = Script(["one ", "two ", "three ", "four"], hold_after=2)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "count")
        await wait_for(pilot, script.reached_hold.is_set, "the engine reached the hold")
        await pilot.press("escape")
        await reply_done(pilot)
        reply = screen.conversation.messages[-1]
        assert reply.status is MessageStatus.STOPPED
        assert reply.content == "one two "
        assert engine.last.chunks_sent == 2  # stopped within one chunk
        assert "stopped" in str(screen.query_one(ReplyView).query_one(".reply-status").render())
        assert screen.last_result.stop_reason is StopReason.CANCELLED


async def test_a_message_sent_while_a_reply_streams_is_refused_and_kept(make_app, engine):
    script = Script(["a", "b"], hold_after=1)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "first")
        await wait_for(pilot, script.reached_hold.is_set, "hold")
        await send(pilot, "second")
        await pilot.pause()
        assert screen.prompt.text == "second"  # never lost
        assert [m.content for m in screen.conversation.messages if m.role == "user"] == ["first"]
        script.release.set()
        await reply_done(pilot)


async def test_a_message_sent_before_the_model_is_ready_is_answered_once_it_is(make_app):
    engine = ScriptedEngine(hold_load=True)
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = chat_screen(app)
            assert "Loading scripted-model" in str(screen.query_one(StatusLine).render())
            await send(pilot, "are you there?")
            await pilot.pause()
            view = screen.query_one(ReplyView)
            assert "waiting for the model" in str(view.query_one(".reply-status").render())
            assert engine.seen == []
            engine.load_gate.set()
            await wait_for(pilot, lambda: len(engine.seen) == 1, "the reply started")
            await reply_done(pilot)
            assert screen.conversation.messages[-1].content == "Hello there!"
    finally:
        engine.close()


async def test_a_model_that_fails_to_load_is_reported_and_the_app_stays_usable(make_app):
    engine = ScriptedEngine(load_error="no model at /nowhere [bold]x[/]")
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = chat_screen(app)
            await wait_for(pilot, lambda: screen.load_error is not None, "the load failed")
            await pilot.pause()
            transcript = " ".join(str(w.render()) for w in screen.chat.query(".notice"))
            assert "no model at /nowhere [bold]x[/]" in transcript
            assert "model not loaded" in str(screen.query_one(StatusLine).render())
            await send(pilot, "hello?")
            await wait_for(pilot, lambda: not screen.streaming, "the reply ended")
            assert screen.conversation.messages[-1].status is MessageStatus.FAILED
            # load another model: the app is still in charge
            engine.load_error = None
            screen.load_model(screen.model_spec)
            await wait_for(pilot, lambda: screen.model_info is not None, "the second load")
            await send(pilot, "now?")
            await reply_done(pilot)
            assert screen.conversation.messages[-1].content == "Hello there!"
    finally:
        engine.close()


async def test_a_failure_mid_reply_marks_it_failed_and_keeps_the_partial_text(make_app, engine):
    engine.scripts.append(
        Script(["partial ", "text", "never"], fail_after=2, error="out of memory")
    )
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "go")
        await reply_done(pilot)
        reply = screen.conversation.messages[-1]
        assert reply.status is MessageStatus.FAILED
        assert reply.content == "partial text"
        status = str(screen.query_one(ReplyView).query_one(".reply-status").render())
        assert "failed" in status and "out of memory" in status
        await send(pilot, "again")  # the app and the engine still work
        await reply_done(pilot)
        assert screen.conversation.messages[-1].status is MessageStatus.COMPLETE


async def test_an_exception_from_the_engine_marks_the_reply_failed_and_keeps_the_app(
    make_app, engine
):
    engine.scripts.append(
        Script(["some ", "text", "x"], fail_after=2, error="CUDA out of memory", raise_error=True)
    )
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "go")
        await reply_done(pilot)
        reply = screen.conversation.messages[-1]
        assert reply.status is MessageStatus.FAILED
        assert reply.content == "some text"
        assert "CUDA out of memory" in reply.provenance.error
        assert app.is_running
        await send(pilot, "again")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].status is MessageStatus.COMPLETE


async def test_regenerate_replaces_the_last_reply_with_a_new_one(make_app, engine):
    engine.scripts += [Script(["first take"]), Script(["second take"])]
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "tell me")
        await reply_done(pilot)
        await pilot.press("ctrl+r")
        await reply_done(pilot)
        assert [m.content for m in screen.conversation.messages] == ["tell me", "second take"]
        assert [v.text for v in screen.query(ReplyView)] == ["second take"]
        # the engine did not see the replaced reply
        assert [m.content for m in engine.last.request.messages if m.role != "system"] == [
            "tell me"
        ]


async def test_regenerate_uses_a_new_seed_even_when_the_seed_is_fixed(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        screen.live_levers.set(screen.live_levers.get().with_value("seed", 7))
        await send(pilot, "tell me")
        await reply_done(pilot)
        assert engine.last.levers_per_chunk[0].seed == 7
        await pilot.press("ctrl+r")
        await reply_done(pilot)
        assert engine.last.levers_per_chunk[0].seed != 7


async def test_edit_last_puts_the_message_back_and_resending_replaces_the_exchange(
    make_app, engine
):
    engine.scripts += [Script(["reply one"]), Script(["reply two"])]
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "What is 2+2?")
        await reply_done(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert screen.prompt.text == "What is 2+2?"
        assert screen.conversation.messages == ()
        assert not screen.query(UserMessage) and not screen.query(ReplyView)
        screen.prompt.insert(" Show your work.")
        await pilot.press("enter")
        await reply_done(pilot)
        assert [m.content for m in screen.conversation.messages] == [
            "What is 2+2? Show your work.",
            "reply two",
        ]


async def test_prompt_newline_keys_and_recall_of_the_previous_message(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        screen.prompt.focus()
        await pilot.press("a", "ctrl+j", "b")
        assert screen.prompt.text == "a\nb"
        await pilot.press("enter")
        await reply_done(pilot)
        assert screen.conversation.messages[0].content == "a\nb"
        assert screen.prompt.text == ""
        await pilot.press("up")
        assert screen.prompt.text == "a\nb"


async def test_new_chat_starts_an_empty_conversation(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "hi")
        await reply_done(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.conversation.messages == ()
        assert [child.id for child in screen.chat.children] == ["chat-hint"]


async def test_copy_last_reply_uses_the_clipboard(make_app, engine):
    engine.scripts.append(Script(["Use this:\n\n```python\nprint('hi')\n```\n"]))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "code please")
        await reply_done(pilot)
        await pilot.press("ctrl+t")
        assert app.clipboard == "Use this:\n\n```python\nprint('hi')\n```\n"
        screen.copy_code_block(0)
        assert app.clipboard == "print('hi')"


async def test_provenance_shows_levers_seed_and_changes(make_app, engine):
    from leverchat.ui.screens.provenance import ProvenanceScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "hi")
        await reply_done(pilot)
        await pilot.press("f3")
        await pilot.pause()
        assert isinstance(app.screen, ProvenanceScreen)
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Seed:            1234" in text and "temperature" in text and "42.0" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ProvenanceScreen)


async def test_enter_typed_in_the_same_burst_as_the_text_sends_the_whole_text(make_app, engine):
    """A pasted or fast-typed "hi<Enter>" arrives in one read: Enter must not overtake the keys
    before it (a priority binding did, and sent nothing)."""
    from textual import events

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        screen.prompt.focus()
        await pilot.pause()
        for key, character in [("h", "h"), ("i", "i"), ("enter", "\r")]:
            app.post_message(events.Key(key, character))
        await wait_for(pilot, lambda: bool(screen.conversation.messages), "the message was sent")
        assert screen.conversation.messages[0].content == "hi"
        await reply_done(pilot)


async def test_the_send_key_can_be_rebound_and_enter_then_inserts_a_newline(make_app, engine):
    from leverchat import paths
    from leverchat.ui.config import load_config

    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text('[keymap]\nsend = "ctrl+s"\nsave_profile = "f12"\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        screen.prompt.focus()
        await pilot.press("a", "enter", "b")
        assert screen.prompt.text == "a\nb"
        await pilot.press("ctrl+s")
        await reply_done(pilot)
        assert screen.conversation.messages[0].content == "a\nb"
