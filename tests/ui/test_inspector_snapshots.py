"""Snapshot tests of the token inspector. Each docstring says what you should see.

Update with ``pytest tests/ui/test_inspector_snapshots.py --snapshot-update`` after checking
the differences in the report by eye.
"""

from __future__ import annotations

from scripted_engine import Script
from test_inspector_view import CHUNKS, InspectingEngine
from test_snapshots import model_ready, steady

from conftest import reply_done, send


def test_token_cursor_at_80x24(snap_compare, make_app):
    """You should see, at 80x24 with the lever panel hidden, the question and the reply
    "Paris is the capital." drawn as plain text with each token on a tinted background: "Paris"
    and "." green (>= 90 %), " is" blue (>= 50 %), " the" amber (>= 20 %) and " capital" red
    (< 20 %), except " the", which is under the cursor (reversed, bold, underlined). Below the
    chat: the legend line (four tinted labels, then "chosen token's probability after levers ·
    replies shown as plain text"), the line "Token 3 of 5: ' the' · raw 24.0% (rank 1) · after
    levers 30.0% (rank 1)", and a table with the columns #, token, raw, after, removed by: the
    chosen ' the' marked ▶ and highlighted, ' alt2' kept, ' cut2' removed by top_k. The prompt
    box and the status line follow; the footer names the cursor's keys (Prev token, Next token,
    Branch, Own text, Leave)."""
    engine = InspectingEngine([Script(CHUNKS)])

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        await pilot.press("f6")
        await send(pilot, "What is the capital of France?")
        await reply_done(pilot)
        await pilot.press("alt+t", "right", "right")
        pilot.app.clear_notifications()  # "Token inspector on: ..." would time out mid-run
        await pilot.pause()

    try:
        app = make_app(engine=engine)
        assert snap_compare(app, terminal_size=(80, 24), run_before=steady(run_before))
    finally:
        engine.close()
