"""The token inspector in the TUI, on a scripted engine that returns inspection records.

F6 turns it on: the next reply is asked for its top 10 alternatives per token and its records
are saved with it; Alt+T walks the focused (or last) reply token by token with a table of
alternatives; Enter or ``e`` there posts BranchRequested. Off, requests ask for nothing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from scripted_engine import Script, ScriptedEngine
from terminal_capture import capture_terminal, foreign_sequences

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.engine.inspection import DEFAULT_TOP_N, Alternative, TokenInspection
from leverchat.engine.types import GenerationRequest, GenerationResult
from leverchat.history import HistoryStore
from leverchat.ui import inspector_tints
from leverchat.ui.branch_request import BranchRequested
from leverchat.ui.history_session import HistorySession
from leverchat.ui.token_rows import percent
from leverchat.ui.widgets.messages_view import ReplyView
from leverchat.ui.widgets.tinted_reply import TintedBody, tinted_body
from leverchat.ui.widgets.token_table import InspectorPanel, TokenTable

CHUNKS = ["Paris", " is", " the", " capital", "."]
# The chosen token's after-lever probability at each step: one per bucket, and a boundary.
AFTER = [0.95, 0.6, 0.3, 0.05, 0.9]


def record(index: int, text: str, after: float) -> TokenInspection:
    """A token chosen at rank 1, with one kept and one removed (by top_k) alternative."""
    return TokenInspection(
        token_id=100 + index,
        text=text,
        raw=after * 0.8,
        after=after,
        raw_rank=1,
        after_rank=1,
        alternatives=(
            Alternative(100 + index, text, after * 0.8, after),
            Alternative(200 + index, f" alt{index}", 0.1, round(1 - after, 6)),
            Alternative(300 + index, f" cut{index}", 0.05, 0.0, removed_by="top_k"),
        ),
    )


def records_for(chunks: list[str]) -> tuple[TokenInspection, ...]:
    return tuple(record(i, text, AFTER[i % len(AFTER)]) for i, text in enumerate(chunks))


class InspectingEngine(ScriptedEngine):
    """The scripted engine, plus one record per chunk when the request asks for inspection."""

    def __init__(self, *args: Any, records: Any = records_for, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.make_records = records

    def _run(self, script: Script, request: GenerationRequest, on_chunk: Any) -> GenerationResult:
        result = super()._run(script, request, on_chunk)
        if request.inspect > 0:
            result = replace(result, inspection=self.make_records(script.chunks))
        return result


@pytest.fixture
def history(tmp_path: Path):
    session = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
    yield session
    session.close()


def notifications(app) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def table_cells(table: TokenTable) -> list[list[str]]:
    return [[cell.plain for cell in table.get_row_at(row)] for row in range(table.row_count)]


async def ready(pilot) -> Any:
    screen = chat_screen(pilot.app)
    await wait_for(pilot, lambda: screen.model_info is not None, "the model loaded")
    return screen


async def inspected_reply(pilot, chunks: list[str] = CHUNKS) -> Any:
    """F6, then one reply: returns the screen."""
    screen = await ready(pilot)
    await pilot.press("f6")
    await send(pilot, "What is the capital of France?")
    await reply_done(pilot)
    return screen


async def test_off_asks_for_nothing_and_on_asks_for_the_top_ten(make_app):
    engine = InspectingEngine([Script(["Hi"]), Script(["Hi"]), Script(["Hi"])])
    try:
        async with make_app(engine=engine).run_test(size=(100, 30)) as pilot:
            screen = await ready(pilot)
            await send(pilot, "one")
            await reply_done(pilot)
            assert engine.last.request.inspect == 0
            await pilot.press("f6")
            await send(pilot, "two")
            await reply_done(pilot)
            assert engine.last.request.inspect == DEFAULT_TOP_N == 10
            await pilot.press("f6")  # off again
            await send(pilot, "three")
            await reply_done(pilot)
            assert engine.last.request.inspect == 0
            assert not screen.query_one(InspectorPanel).display
    finally:
        engine.close()


async def test_an_inspected_reply_is_saved_tinted_and_shown_again_when_reopened(make_app, history):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine, history=history)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply = screen.conversation.messages[-1]
            expected = records_for(CHUNKS)
            # Saved with the reply, after it finished.
            assert history.read(lambda store: store.inspection(reply.id)) == expected
            chat_id = screen.conversation.id
            await check_tints(pilot, reply.id, expected)
            # A new chat, then the saved one again (as from F4): its reply is tinted again.
            await screen.action_new_chat()
            assert not screen.query(TintedBody)
            assert await screen.open_chat(chat_id)
            await pilot.pause()
            await check_tints(pilot, reply.id, expected)
            # Off: the Markdown is back, the tints gone.
            await pilot.press("f6")
            await pilot.pause()
            view = screen.chat.reply(reply.id)
            assert tinted_body(view) is None
            assert view.query_one(".reply-body").display
            assert "Paris is the capital." in frame_text(app)
    finally:
        engine.close()


async def check_tints(pilot, reply_id: str, expected: tuple[TokenInspection, ...]) -> None:
    """Each token's span has its bucket's tint: the probability after the levers decides."""
    screen = chat_screen(pilot.app)
    view = screen.chat.reply(reply_id)
    body = tinted_body(view)
    assert body is not None, "the reply is not tinted"
    assert not view.query_one(".reply-body").display  # the Markdown is hidden meanwhile
    content = body.visual
    assert content.plain == "".join(item.text for item in expected)
    styles = inspector_tints.tint_styles(pilot.app.theme_variables)
    buckets = [span.style.background for span in content.spans]
    wanted = [styles.buckets[inspector_tints.bucket(item.after)].background for item in expected]
    assert buckets == wanted
    # 0.95 and 0.9: the likeliest bucket; 0.6; 0.3; 0.05: the least likely.
    assert [inspector_tints.bucket(a) for a in AFTER] == [0, 1, 2, 3, 0]
    assert len(set(wanted)) == 4


async def test_a_reply_without_records_says_so_plainly(make_app):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await ready(pilot)
            await send(pilot, "hello")  # the inspector is off
            await reply_done(pilot)
            await pilot.press("alt+t")
            await pilot.pause()
            said = " ".join(notifications(app))
            assert "generated with the token inspector off" in said
            assert "no token data" in said
            assert not screen.query_one(InspectorPanel).in_cursor_mode
    finally:
        engine.close()


async def test_the_cursor_walks_the_tokens_and_the_table_shows_their_records(make_app):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply_id = screen.conversation.messages[-1].id
            expected = records_for(CHUNKS)
            await pilot.press("alt+t")
            await pilot.pause()
            panel = screen.query_one(InspectorPanel)
            assert panel.in_cursor_mode and panel.reply_id == reply_id
            assert isinstance(screen.focused, TokenTable)
            moves = [("right", 1), ("right", 2), ("left", 1), ("end", 4), ("home", 0)]
            for key, index in moves:
                await pilot.press(key)
                await pilot.pause()
                assert panel.index == index
                check_table(panel, expected[index], index)
                # The token under the cursor is drawn with the cursor style in the reply.
                body = tinted_body(screen.chat.reply(reply_id))
                cursor = inspector_tints.tint_styles(app.theme_variables).cursor
                start = sum(len(item.text) for item in expected[:index])
                cursor_spans = [s for s in body.visual.spans if s.style == cursor]
                assert [(s.start, s.end) for s in cursor_spans] == [
                    (start, start + len(expected[index].text))
                ]
            await pilot.press("right", "right")
            await pilot.pause()
            frame = frame_text(app)
            assert "Token 3 of 5: ' the'" in frame
            assert "top_k" in frame
            assert "kept" in frame
            # Escape leaves cursor mode; the reply keeps its tints, without the cursor.
            await pilot.press("escape")
            await pilot.pause()
            assert not panel.in_cursor_mode
            assert isinstance(screen.focused, ReplyView)
            body = tinted_body(screen.chat.reply(reply_id))
            cursor = inspector_tints.tint_styles(app.theme_variables).cursor
            assert all(span.style != cursor for span in body.visual.spans)
    finally:
        engine.close()


def check_table(panel: InspectorPanel, item: TokenInspection, index: int) -> None:
    cells = table_cells(panel.table)
    assert len(cells) == len(item.alternatives)
    for row, alt in zip(cells, item.alternatives, strict=True):
        mark, _rank, text, raw, after, lever = row
        assert text == f"'{alt.text}'"
        assert raw == percent(alt.raw)
        assert after == percent(alt.after)  # the engine's after-lever record, as it is
        assert lever == ("top_k" if alt.removed_by == "top_k" else "kept")
        assert (mark == "▶") == (alt.token_id == item.token_id)
    header = panel.query_one("#inspector-header").visual.plain
    assert header.startswith(f"Token {index + 1} of 5: '{item.text}'")
    assert f"after levers {percent(item.after)} (rank 1)" in header


class Captured:
    def __init__(self) -> None:
        self.requests: list[BranchRequested] = []


def capture_branches(screen, monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Every BranchRequested that reaches the screen (the branches' handler lives there)."""
    captured = Captured()
    original = screen.post_message

    def post(message):
        if isinstance(message, BranchRequested):
            captured.requests.append(message)
        return original(message)

    monkeypatch.setattr(screen, "post_message", post)
    return captured


async def test_enter_branches_with_the_chosen_alternative(make_app, monkeypatch):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        async with make_app(engine=engine).run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply_id = screen.conversation.messages[-1].id
            captured = capture_branches(screen, monkeypatch)
            await pilot.press("alt+t", "right", "right")
            await pilot.pause()
            # Enter on the token the reply has: nothing to branch to, and it says so.
            await pilot.press("enter")
            await pilot.pause()
            assert captured.requests == []
            assert any("already has" in text for text in notifications(pilot.app))
            await pilot.press("down")  # the second likeliest: " alt2"
            await pilot.press("enter")
            await wait_for(pilot, lambda: captured.requests, "the branch request")
            [request] = captured.requests
            assert (request.reply_id, request.token_index) == (reply_id, 2)
            assert (request.text, request.token_id) == (" alt2", 202)
            assert not screen.query_one(InspectorPanel).in_cursor_mode
    finally:
        engine.close()


async def test_e_branches_with_your_own_text(make_app, monkeypatch):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        async with make_app(engine=engine).run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply_id = screen.conversation.messages[-1].id
            captured = capture_branches(screen, monkeypatch)
            await pilot.press("alt+t", "right", "e")
            await pilot.pause()
            # Escape in the box goes back to the table, nothing posted.
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(screen.focused, TokenTable)
            await pilot.press("e")
            await pilot.pause()
            await pilot.press(*" Arr")
            await pilot.press("enter")
            await wait_for(pilot, lambda: captured.requests, "the branch request")
            [request] = captured.requests
            assert (request.reply_id, request.token_index) == (reply_id, 1)
            assert (request.text, request.token_id) == (" Arr", None)
    finally:
        engine.close()


async def test_at_80x24_the_table_shows_and_the_prompt_stays_reachable(make_app):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await inspected_reply(pilot)
            await pilot.press("alt+t")
            await pilot.pause()
            table = screen.query_one(TokenTable)
            screen_region = app.screen.region
            assert table.region.height >= 4
            assert screen_region.contains_region(table.region)
            assert screen_region.contains_region(screen.prompt.region)
            frame = frame_text(app)
            assert "removed by" in frame and "top_k" in frame
            assert "Token 1 of 5" in frame
            # Escape leaves the table; Escape again is back in the prompt, which types.
            await pilot.press("escape", "escape")
            await pilot.pause()
            assert screen.focused is screen.prompt
            await pilot.press("o", "k")
            assert screen.prompt.text == "ok"
    finally:
        engine.close()


HOSTILE = ["Hi", "\x1b]0;pwned\x07", "\u202eevil", "\x9b2J"]


async def test_hostile_token_text_is_shown_visibly_never_raw(make_app, monkeypatch):
    with capture_terminal(monkeypatch) as written:
        engine = InspectingEngine([Script(HOSTILE)])
        try:
            app = make_app(engine=engine)
            async with app.run_test(size=(100, 30)) as pilot:
                screen = await inspected_reply(pilot, HOSTILE)
                await pilot.press("alt+t", "right")
                await pilot.pause()
                frame = frame_text(app)
                assert "\\x1b]0;pwned\\x07" in frame  # in the table and the tinted reply
                await pilot.press("right")
                await pilot.pause()
                frame = frame_text(app)
                assert "\\u202eevil" in frame
                assert "[" not in screen.query_one("#inspector-legend").visual.plain
        finally:
            engine.close()
    assert foreign_sequences("".join(written)) == []


def remote_records(chunks: list[str]) -> tuple[TokenInspection, ...]:
    note = "reported by vllm: its own log-probabilities; the raw and after-lever probabilities"
    return tuple(
        TokenInspection(
            token_id=None,
            text=text,
            raw=None,
            after=None,
            raw_rank=None,
            after_rank=None,
            alternatives=(
                Alternative(None, text, None, None, reported=0.7),
                Alternative(None, " other", None, None, reported=0.2),
            ),
            note=note,
            reported=0.7,
        )
        for text in chunks
    )


async def test_a_remote_reply_shows_what_the_server_reported_and_what_is_missing(make_app):
    engine = InspectingEngine([Script(CHUNKS)], records=remote_records)
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            await pilot.press("alt+t")
            await pilot.pause()
            panel = screen.query_one(InspectorPanel)
            cells = table_cells(panel.table)
            assert [row[3:] for row in cells] == [["70.0%", "—", "?"], ["20.0%", "—", "?"]]
            header = panel.query_one("#inspector-header").visual.plain
            assert "server 70.0%" in header
            assert "after-lever probabilities" in header  # what is missing, said
            legend = panel.query_one("#inspector-legend").visual.plain
            assert "probability the server reported" in legend
            # Tinted by what the server reported (0.7: the >= 50 % bucket).
            body = tinted_body(screen.chat.reply(panel.reply_id))
            styles = inspector_tints.tint_styles(app.theme_variables)
            assert body.visual.spans[-1].style == styles.buckets[1]
    finally:
        engine.close()


async def test_the_palette_and_help_list_the_inspector(make_app):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await ready(pilot)
            from leverchat.ui.commands import chat_commands

            labels = {command.label: command for command in chat_commands(screen)}
            assert "(F6)" in labels["Token inspector"].help
            assert "(Alt+T)" in labels["Inspect tokens of the reply"].help
            labels["Token inspector"].callback()
            await pilot.pause()
            assert screen.inspector.on
            from leverchat.ui.screens.help import help_rows

            rows = {binding_id: (keys, text) for keys, binding_id, text in help_rows({})}
            assert rows["inspect"][0] == "f6"
            assert rows["inspect"][1].startswith("Token inspector: tint replies by probability")
            assert rows["inspect_tokens"][0] == "alt+t"
            assert rows["tokens.branch"] == (
                "enter",
                "Branch: continue the reply with the chosen alternative (token table)",
            )
    finally:
        engine.close()


async def test_a_new_theme_retints_the_replies(make_app):
    engine = InspectingEngine([Script(CHUNKS)])
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply_id = screen.conversation.messages[-1].id
            app.theme = "leverchat-high-contrast"
            await pilot.pause()
            await pilot.pause()
            body = tinted_body(screen.chat.reply(reply_id))
            first = body.visual.spans[0].style.background
            assert first.hex.lower() == "#005f00"  # the high-contrast theme's inspector-sure
    finally:
        engine.close()


async def test_regenerating_the_reply_under_the_cursor_closes_the_table(make_app):
    engine = InspectingEngine([Script(CHUNKS), Script(["Rome", "."])])
    try:
        async with make_app(engine=engine).run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            await pilot.press("alt+t", "right")
            await pilot.pause()
            panel = screen.query_one(InspectorPanel)
            assert panel.in_cursor_mode
            await pilot.press("ctrl+r")
            await reply_done(pilot)
            assert not panel.in_cursor_mode
            # The new reply was inspected too (the inspector is still on) and is tinted.
            new_id = screen.conversation.messages[-1].id
            assert tinted_body(screen.chat.reply(new_id)).visual.plain == "Rome."
    finally:
        engine.close()


async def test_unreadable_saved_records_leave_the_chat_readable(make_app, tmp_path):
    """A damaged inspector row is extra data lost, never the chat: it opens, as Markdown."""
    import sqlite3

    path = tmp_path / "history.sqlite3"
    engine = InspectingEngine([Script(CHUNKS)])
    first = HistorySession(HistoryStore(path))
    try:
        async with make_app(engine=engine, history=first).run_test(size=(100, 30)) as pilot:
            screen = await inspected_reply(pilot)
            reply_id = screen.conversation.messages[-1].id
            chat_id = screen.conversation.id
    finally:
        first.close()
    conn = sqlite3.connect(path)
    with conn:
        assert conn.execute("UPDATE token_inspections SET data = '[{\"raw\": 7}'").rowcount == 1
    conn.close()
    second = HistorySession(HistoryStore(path))
    try:
        app = make_app(engine=engine, history=second)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await ready(pilot)
            await pilot.press("f6")
            assert await screen.open_chat(chat_id)
            await pilot.pause()
            view = screen.chat.reply(reply_id)
            assert tinted_body(view) is None and view.query_one(".reply-body").display
            assert "Paris is the capital." in frame_text(app)
            await pilot.press("alt+t")
            await pilot.pause()
            assert any("no token data" in text for text in notifications(app))
    finally:
        second.close()
        engine.close()


async def test_the_chat_scrolls_to_keep_the_cursors_token_in_view(make_app):
    long_reply = ["START", *[f" word{i}" for i in range(400)], " END"]
    engine = InspectingEngine([Script(long_reply)])
    engine.chunk_delay = 0
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(80, 24)) as pilot:
            await inspected_reply(pilot, long_reply)
            await pilot.press("alt+t")
            await pilot.pause()
            await pilot.pause()
            frame = frame_text(app)
            assert "START" in frame.split("≥90%")[0]  # the first token, in the chat above
            await pilot.press("end")
            await pilot.pause()
            await pilot.pause()
            chat_part = frame_text(app).split("≥90%")[0]
            assert "END" in chat_part and "START" not in chat_part
            await pilot.press("home")
            await pilot.pause()
            await pilot.pause()
            chat_part = frame_text(app).split("≥90%")[0]
            assert "START" in chat_part and " END" not in chat_part
    finally:
        engine.close()
