"""The token inspector and branching together, as a user drives them: F6, a reply, Alt+T to
its third token, Down to an alternative the reply did not take, Enter: the model goes on from
the kept tokens and that alternative as a new version of the reply (the two features were built
apart and meet only at ``BranchRequested``; this proves the seam holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import chat_screen, send, wait_for
from leverchat.ui.widgets.token_table import InspectorPanel

pytestmark = pytest.mark.slow


async def test_enter_on_an_alternative_continues_the_reply_from_it(
    real_engine_app: Any, tiny_long_model_dir: Path
) -> None:
    app, history = real_engine_app(tiny_long_model_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded", 3000)
        levers = screen.live_levers.get().with_value("temperature", 1.0)
        screen.live_levers.set(levers.with_value("max_new_tokens", 12).with_value("seed", 5))
        await pilot.press("f6")
        await send(pilot, "Tell me a story")
        await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
        await pilot.pause()
        original = screen.conversation.messages[-1]
        first = screen.last_result
        assert len(first.inspection) == len(first.token_ids) == 12

        await pilot.press("alt+t", "right", "right")
        await pilot.pause()
        panel = screen.query_one(InspectorPanel)
        assert panel.index == 2
        rows = panel.rows
        pick = next(index for index, row in enumerate(rows) if not row.chosen)
        moves = pick - panel.table.cursor_row
        for _ in range(abs(moves)):
            await pilot.press("down" if moves > 0 else "up")
        picked = rows[panel.table.cursor_row]
        assert not picked.chosen and picked.token_id is not None
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: screen.conversation.messages[-1].id != original.id and not screen.streaming,
            "the branch finished",
            3000,
        )
        branch = screen.conversation.messages[-1]
        result = screen.last_result
        # The kept tokens, then the alternative picked in the table, then the model's own.
        assert result.token_ids[:3] == (*first.token_ids[:2], picked.token_id)
        assert result.token_ids[2] != first.token_ids[2]
        assert branch.provenance is not None and branch.provenance.branch is not None
        assert branch.provenance.branch.token_index == 2
        # A new version of the same reply; the first one is kept as it was.
        versions = history.versions(branch.id)
        assert [version.id for version in versions] == [original.id, branch.id]
        assert versions[0].content == original.content
