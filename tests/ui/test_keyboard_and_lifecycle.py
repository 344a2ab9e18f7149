"""Keyboard-only use of the transcript, loading another model, and shutting down cleanly."""

from __future__ import annotations

import signal

from scripted_engine import Script

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.ui.screens.load_model import LoadModelScreen
from leverchat.ui.screens.provenance import ProvenanceScreen
from leverchat.ui.widgets.messages_view import ReplyView


async def test_page_keys_scroll_a_long_chat_and_new_text_follows_the_end(make_app, engine):
    engine.scripts += [Script(["line\n\n" * 40]) for _ in range(2)]
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "long")
        await reply_done(pilot)
        chat = screen.chat
        assert chat.max_scroll_y > 0
        assert chat.scroll_y == chat.max_scroll_y  # followed the stream to the end
        await pilot.press("pageup")
        await pilot.pause()
        assert chat.scroll_y < chat.max_scroll_y
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")
        await pilot.pause()
        assert chat.scroll_y == chat.max_scroll_y


async def test_the_focus_moves_onto_a_reply_which_can_be_copied_and_explained(make_app, engine):
    engine.scripts.append(Script(["A reply to copy."]))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "hi")
        await reply_done(pilot)
        view = screen.query_one(ReplyView)
        view.focus()
        await pilot.press("c")
        assert app.clipboard == "A reply to copy."
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, ProvenanceScreen)


async def test_load_model_asks_for_a_source_and_loads_it(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "first load")
        screen.ask_model_path()
        await wait_for(pilot, lambda: isinstance(app.screen, LoadModelScreen), "the dialog")
        app.screen.query_one("#load-model-source").value = "/models/other"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(engine.specs) == 2, "second load")
        assert engine.specs[-1].source == "/models/other"
        await wait_for(pilot, lambda: screen.model_info is not None, "second load done")


async def test_sigterm_or_sighup_stops_the_reply_and_exits(make_app, engine):
    script = Script(["a", "b", "c"], hold_after=1)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        chat_screen(app)
        await send(pilot, "go")
        await wait_for(pilot, script.reached_hold.is_set, "mid-reply")
        request = engine.last.request
        app._on_terminate(signal.SIGTERM)  # what the SIGTERM / SIGHUP handler calls
        await pilot.pause()
        assert request.cancel.is_set()
    # 128 + the signal, as a shell reports it: a script can tell it was terminated.
    assert app.return_code == 128 + signal.SIGTERM


async def test_quitting_mid_reply_cancels_the_generation(make_app, engine):
    script = Script(["a", "b", "c"], hold_after=1)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "go")
        await wait_for(pilot, script.reached_hold.is_set, "mid-reply")
        request = engine.last.request
        await pilot.press("ctrl+q")
    assert request.cancel.is_set()
