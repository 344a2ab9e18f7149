"""The token inspector end to end on the real engine (the tiny model): F6, one reply, its
records saved in the history, the tints and the table showing the engine's own numbers, and the
saved chat showing them again."""

from __future__ import annotations

import pytest

from conftest import chat_screen, send, wait_for
from leverchat.engine.inspection import DEFAULT_TOP_N
from leverchat.ui import inspector_tints
from leverchat.ui.token_rows import percent
from leverchat.ui.widgets.tinted_reply import tinted_body
from leverchat.ui.widgets.token_table import InspectorPanel

pytestmark = pytest.mark.slow


async def test_the_inspector_shows_the_engines_records_on_the_tiny_model(
    real_engine_app, tiny_model_dir
):
    app, history = real_engine_app(tiny_model_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "model loaded", 3000)
        levers = screen.live_levers.get()
        for name, value in (("temperature", 1.0), ("top_k", 3), ("top_p", 1.0)):
            levers = levers.with_value(name, value)
        levers = levers.with_value("min_p", 0.0).with_value("max_new_tokens", 6)
        screen.live_levers.set(levers.with_value("seed", 7))
        await pilot.press("f6")
        await send(pilot, "Once upon a time")
        await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
        await pilot.pause()
        result = screen.last_result
        records = result.inspection
        assert len(records) == len(result.token_ids) > 0
        assert all(len(item.alternatives) == DEFAULT_TOP_N for item in records)
        reply_id = screen.conversation.messages[-1].id
        # Saved with the reply: the history has its rows.
        assert history.read(lambda store: store.inspection(reply_id)) == records

        # Tinted by each token's after-lever probability.
        styles = inspector_tints.tint_styles(app.theme_variables)
        body = tinted_body(screen.chat.reply(reply_id))
        spans = list(body.visual.spans)
        shown = [
            styles.buckets[inspector_tints.bucket(item.after)].background
            for item in records
            if item.text
        ]
        assert [span.style.background for span in spans] == shown

        # The table shows the engine's after-lever numbers and the top_k cut.
        await pilot.press("alt+t")
        await pilot.pause()
        panel = screen.query_one(InspectorPanel)
        for index, item in enumerate(records):
            assert panel.index == index
            table = panel.table
            cells = [
                [cell.plain for cell in table.get_row_at(row)] for row in range(table.row_count)
            ]
            listed = [row[4] for row in cells[: len(item.alternatives)]]
            assert listed == [percent(alt.after) for alt in item.alternatives]
            levers_shown = [row[5] for row in cells[: len(item.alternatives)]]
            # top_k = 3: three kept, the other seven removed by top_k.
            assert levers_shown.count("kept") == 3
            assert levers_shown.count("top_k") == DEFAULT_TOP_N - 3
            await pilot.press("right")
            await pilot.pause()

        # Reopened from the history (as F4 does): tinted again, same records.
        await pilot.press("escape")
        chat_id = screen.conversation.id
        await screen.action_new_chat()
        assert await screen.open_chat(chat_id)
        await pilot.pause()
        reopened = tinted_body(screen.chat.reply(reply_id))
        assert reopened is not None
        assert reopened.visual.plain == "".join(inspector_tints.token_spans(records))
        assert [span.style.background for span in reopened.visual.spans] == shown
        history.close()
