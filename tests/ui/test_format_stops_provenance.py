"""The instruction format's own stop string shows in a reply's provenance (why it stopped)."""

from __future__ import annotations

import pytest

from conftest import chat_screen, send, wait_for
from leverchat.engine.types import ModelSpec
from leverchat.engine.worker import EngineThread
from leverchat.ui.screens.provenance import provenance_lines

pytestmark = pytest.mark.slow


async def test_a_reply_in_the_instruction_format_records_the_formats_stops(
    make_app, tiny_plain_model_dir
):
    engine = EngineThread()
    try:
        app = make_app(
            engine=engine, model_spec=ModelSpec(source=str(tiny_plain_model_dir), device="cpu")
        )
        async with app.run_test(size=(100, 30)) as pilot:
            screen = chat_screen(app)
            await wait_for(
                pilot, lambda: screen.model_info is not None, "the tiny model loaded", 3000
            )
            screen.live_levers.set(screen.live_levers.get().with_value("max_new_tokens", 8))
            await send(pilot, "Hello there")
            await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
            provenance = screen.conversation.messages[-1].provenance
            assert provenance.format_stops == ("### Instruction:",)
            assert provenance.levers.stop == ()  # the user's own stops are untouched
            assert (
                "Format stops:    '### Instruction:' (the prompt format's own)"
                in provenance_lines(provenance)
            )
    finally:
        engine.close()
