"""Reproduce a reply on the real engine (the tiny model, sampling on): identical text, and the
app says so. The recorded seed was picked by the engine (the seed lever was unset)."""

from __future__ import annotations

import pytest

from conftest import chat_screen, frame_text, send, wait_for
from leverchat.ui.widgets.messages_view import ReplyView

pytestmark = pytest.mark.slow


async def test_reproduce_gives_identical_text_on_the_tiny_model(real_engine_app, tiny_model_dir):
    app, history = real_engine_app(tiny_model_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded", 3000)
        levers = screen.live_levers.get()
        levers = levers.with_value("temperature", 1.0).with_value("max_new_tokens", 24)
        screen.live_levers.set(levers.with_value("seed", None))
        await send(pilot, "Once upon a time")
        await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
        original = screen.conversation.messages[-1]
        assert original.provenance.seed is not None and original.content
        # Another reply in between moves the engine's cache on.
        await send(pilot, "And then?")
        await wait_for(pilot, lambda: not screen.streaming, "the second reply", 3000)
        first_view = screen.query(ReplyView).first()
        first_view.focus()
        await pilot.press("f5")
        await wait_for(pilot, lambda: not screen.streaming, "the reproduction", 3000)
        reproduced = screen.conversation.messages[-1]
        assert reproduced.id != original.id
        assert reproduced.content == original.content
        assert reproduced.provenance.seed == original.provenance.seed
        assert "Reproduced exactly" in frame_text(app)
        assert len(screen.conversation.messages) == 2  # it replaced the reply it reproduced
        # Both versions are kept.
        assert [m.content for m in history.versions(reproduced.id)] == [original.content] * 2
