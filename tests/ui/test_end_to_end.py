"""The TUI on the real engine (EngineThread) with the tiny random model built by the tests."""

from __future__ import annotations

import pytest

from conftest import chat_screen, send, wait_for
from leverchat.chat import MessageStatus
from leverchat.engine.types import ModelSpec, StopReason
from leverchat.engine.worker import EngineThread
from leverchat.ui.widgets.messages_view import ReplyView

pytestmark = pytest.mark.slow


async def test_ask_stream_stop_and_regenerate_on_the_tiny_model(make_app, tiny_long_model_dir):
    engine = EngineThread()
    try:
        app = make_app(
            engine=engine, model_spec=ModelSpec(source=str(tiny_long_model_dir), device="cpu")
        )
        async with app.run_test(size=(100, 30)) as pilot:
            screen = chat_screen(app)
            await wait_for(
                pilot, lambda: screen.model_info is not None, "the tiny model loaded", 3000
            )
            levers = screen.live_levers.get().with_value("max_new_tokens", 12)
            screen.live_levers.set(levers.with_value("seed", 3))
            await send(pilot, "Hello there")
            await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
            reply = screen.conversation.messages[-1]
            assert reply.status is MessageStatus.COMPLETE
            assert screen.last_result.stop_reason in (StopReason.MAX_TOKENS, StopReason.END_OF_TURN)
            assert screen.query_one(ReplyView).text == reply.content == screen.last_result.text
            assert reply.provenance.seed == 3
            # a long reply (4096-token context), stopped with Escape once text has streamed
            screen.live_levers.set(screen.live_levers.get().with_value("max_new_tokens", 100_000))
            await send(pilot, "Go on")
            await wait_for(
                pilot,
                lambda: screen._reply is not None and bool(screen._reply.view.text),
                "text streamed",
                3000,
            )
            await pilot.press("escape")
            await wait_for(pilot, lambda: not screen.streaming, "the reply stopped", 3000)
            assert screen.conversation.messages[-1].status is MessageStatus.STOPPED
            # regenerate works on the real engine too
            await pilot.press("ctrl+r")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not screen.streaming, "stopped again", 3000)
            assert [m.role for m in screen.conversation.messages] == [
                "user",
                "assistant",
                "user",
                "assistant",
            ]
    finally:
        engine.close()
