"""A structured-output change the engine refused mid-reply (engine/structured.py) is shown in
the chat as a notice, literally: its text quotes the user's regex or grammar, which may look
like markup."""

from __future__ import annotations

import dataclasses
from typing import Any

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.ui.widgets.messages_view import Notice

NOTICE = (
    "regex was changed mid-reply, but the 3 tokens written so far do not fit it: the reply "
    "stays free; it applies from the next reply [/] [bold]x[/]"
)


async def test_a_refused_constraint_change_is_shown_as_a_notice(
    make_app: Any, engine: Any, monkeypatch: Any
) -> None:
    original = engine._run

    def with_notice(script: Any, request: Any, on_chunk: Any) -> Any:
        return dataclasses.replace(original(script, request, on_chunk), notices=(NOTICE,))

    monkeypatch.setattr(engine, "_run", with_notice)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "Hi")
        await reply_done(pilot)
        await wait_for(pilot, lambda: bool(screen.query(Notice)), "the notice")
        assert [str(notice.render()) for notice in screen.query(Notice)] == [NOTICE]
        # Kept with the reply (its provenance, saved in the history): F3 shows it later too.
        assert screen.conversation.messages[-1].provenance.notices == (NOTICE,)
