"""Editors (TextArea, Input) show control, bidi and zero-width characters as visible glyphs,
never write them raw to the terminal, keep the cursor on the character it is on, and keep the
text itself unchanged. Checked on the widgets and on the three ways hostile text gets into an
editor: a profile's system prompt, a resumed chat's system prompt, and Ctrl+O."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scripted_engine import Script
from terminal_capture import capture_terminal, foreign_sequences
from textual.app import App, ComposeResult
from textual.widgets import Input, TextArea

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.history import HistoryStore
from leverchat.safetext import visible_glyphs
from leverchat.ui.history_session import HistorySession
from leverchat.ui.widgets.visible_editors import VisibleInput, VisibleTextArea

# 13 kinds of sequence: OSC 0 title, OSC 52 clipboard, OSC 8 link, clear screen, cursor
# position request, DCS, 8-bit CSI and OSC, colours, alternate screen, full reset, C1 NEL,
# plus bidi overrides and zero-width characters.
HOSTILE = (
    "a\x1b]0;pwned\x07b\x1b]52;c;aGVsbG8=\x07c\x1b]8;;https://evil.example\x07d\x1b]8;;\x07"
    "e\x1b[2Jf\x1b[6ng\x1bPq#0\x1b\\h\x9b31mi\x9d0;t\x9cj\x1b[31mk\x1b[?1049hl\x1bcm\x85n"
    "\u202eo\u2066p\u200bq\u200dr\ufeffs"
)


class EditorApp(App[None]):
    def __init__(self, text: str, *, visible: bool = True) -> None:
        super().__init__()
        self.text = text
        self.visible = visible

    def compose(self) -> ComposeResult:
        area = VisibleTextArea if self.visible else TextArea
        line = VisibleInput if self.visible else Input
        yield area(self.text, id="area", soft_wrap=True)
        yield line(self.text, id="line")


def cell_at(app: App[None], x: int, y: int) -> str:
    return app.screen._compositor.render_strips()[y].crop(x, x + 1).text


async def misplaced_cursor_cells(app: App[None], pilot, text: str) -> list[int]:
    """Indexes where the cell under the cursor is not the glyph of that character."""
    glyphs = visible_glyphs(text)
    area = app.query_one("#area", TextArea)
    line = app.query_one("#line", Input)
    wrong = []
    area.focus()
    for index in range(len(text)):
        area.move_cursor((0, index))
        await pilot.pause()
        if cell_at(app, *area.cursor_screen_offset) != glyphs[index]:
            wrong.append(index)
    line.focus()
    await pilot.pause()  # focusing selects the whole value; then the cursor is placed
    for index in range(len(text)):
        line.cursor_position = index
        await pilot.pause()
        if cell_at(app, *line.cursor_screen_offset) != glyphs[index]:
            wrong.append(index)
    return wrong


@pytest.mark.parametrize("visible", [True, False], ids=["visible-editors", "textual-editors"])
async def test_editors_draw_glyphs_and_the_cursor_stays_on_its_character(monkeypatch, visible):
    with capture_terminal(monkeypatch) as written:
        app = EditorApp(HOSTILE, visible=visible)
        async with app.run_test(size=(150, 12)) as pilot:
            await pilot.pause()
            wrong = await misplaced_cursor_cells(app, pilot, HOSTILE)
            text = app.query_one("#area", TextArea).text
            assert app.query_one("#line", Input).value == HOSTILE
            frame = frame_text(app)
    leaks = foreign_sequences("".join(written))
    if visible:
        assert text == HOSTILE  # what is saved or sent is the text itself (\x85 kept)
        assert wrong == []
        assert leaks == []
        assert visible_glyphs(HOSTILE) in frame  # ␛]0;pwned␇b␛]52;... on one line
    else:  # Textual's own editors: raw sequences reach the terminal, the cursor drifts
        assert leaks and wrong


async def test_typing_beside_a_control_character_edits_the_right_place():
    app = EditorApp("x\x1by\u202ez")
    async with app.run_test(size=(60, 12)) as pilot:
        area = app.query_one("#area", TextArea)
        area.focus()
        area.move_cursor((0, 2))  # after the ESC, before "y"
        await pilot.press("A")
        line = app.query_one("#line", Input)
        line.focus()
        await pilot.pause()
        line.cursor_position = 4  # after the RLO, before "z"
        await pilot.press("B")
        await pilot.pause()
        assert area.text == "x\x1bAy\u202ez"
        assert line.value == "x\x1by\u202eBz"
        assert cell_at(app, *area.cursor_screen_offset) == "y"
        assert cell_at(app, *line.cursor_screen_offset) == "z"


async def test_pasted_line_separators_stay_in_their_line_and_are_sent_as_typed():
    # Textual splits inserted text with str.splitlines, which also breaks at \u2028, \x85 and
    # \x1c: the message sent then held newlines the user never typed.
    app = EditorApp("")
    async with app.run_test(size=(60, 12)) as pilot:
        area = app.query_one("#area", TextArea)
        area.focus()
        area.insert("a\u2028b\x85c\x1cd\ne")
        await pilot.pause()
        assert area.text == "a\u2028b\x85c\x1cd\ne"
        assert area.document.line_count == 2
        area.move_cursor((0, 2))  # after the line separator
        await pilot.press("X")
        assert area.text == "a\u2028Xb\x85c\x1cd\ne"


async def test_a_wrapped_line_of_controls_stays_aligned(monkeypatch):
    text = ("\x1b]0;t\x07\u202e" * 30) + "end"
    with capture_terminal(monkeypatch) as written:
        app = EditorApp(text)
        async with app.run_test(size=(30, 20)) as pilot:
            area = app.query_one("#area", TextArea)
            area.focus()
            area.move_cursor((0, len(text) - 1))
            await pilot.pause()
            assert cell_at(app, *area.cursor_screen_offset) == "d"
            assert area.wrapped_document.height > 1
    assert foreign_sequences("".join(written)) == []


async def test_a_click_puts_the_input_cursor_on_the_clicked_character():
    app = EditorApp("\x1b\x1b\x1bX")
    async with app.run_test(size=(40, 12)) as pilot:
        line = app.query_one("#line", Input)
        line.focus()
        await pilot.pause()
        x = line.content_region.x + 3  # the fourth cell: "X", after three ␛
        await pilot.click(offset=(x, line.content_region.y))
        await pilot.pause()
        assert line.cursor_position == 3


EVIL_PROFILE = (
    'name = "evil"\n'
    'system_prompt = "Be kind.\\u001b]0;pwned\\u0007 \\u001b]52;c;aGVsbG8=\\u0007 '
    '\\u001b[2J\\u001b[6n \u009b31m \u202ertl"\n'
)
EVIL_PROMPT = "Be kind.\x1b]0;pwned\x07 \x1b]52;c;aGVsbG8=\x07 \x1b[2J\x1b[6n \x9b31m \u202ertl"


async def test_starting_with_a_profile_whose_system_prompt_holds_escapes(
    make_app, profile_store, monkeypatch
):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    (profile_store.directory / "evil.toml").write_text(EVIL_PROFILE, encoding="utf-8")
    with capture_terminal(monkeypatch) as written:
        app = make_app(profile="evil")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            await pilot.pause()
            editor = screen.query_one("#system-prompt", TextArea)
            assert isinstance(editor, VisibleTextArea) and editor.text == EVIL_PROMPT
            assert "␛]0;pwned␇" in frame_text(app)
    assert foreign_sequences("".join(written)) == []


async def test_resuming_a_chat_whose_system_prompt_holds_escapes(make_app, tmp_path, monkeypatch):
    db = tmp_path / "data" / "history.sqlite3"
    with HistoryStore(db) as store:
        chat_id = store.create_conversation(title="t", profile="default", system_prompt=EVIL_PROMPT)
        store.add_user_message(chat_id, "hi \x1b]0;title\x07", parent_id=None)
    history = HistorySession(HistoryStore(db))
    with capture_terminal(monkeypatch) as written:
        app = make_app(history=history, resume_id=chat_id)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            await wait_for(pilot, lambda: screen.system_prompt == EVIL_PROMPT, "resumed")
            await pilot.pause()
            assert "␛]0;pwned␇" in frame_text(app)
    history.close()
    assert foreign_sequences("".join(written)) == []


async def test_ctrl_o_puts_a_message_with_escapes_into_the_prompt_visibly(
    make_app, engine, monkeypatch
):
    message = "edit me \x1b]0;pwned\x07 \x1b]8;;https://x\x07link \x9b2J \u202e"
    engine.scripts.append(Script(["ok"]))
    with capture_terminal(monkeypatch) as written:
        app = make_app()
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            await send(pilot, message)
            await reply_done(pilot)
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: screen.prompt.text == message, "the message is back")
            await pilot.pause()
            assert "edit me ␛]0;pwned␇ ␛]8;;https://x␇link �2J �" in frame_text(app)
    assert foreign_sequences("".join(written)) == []


def test_every_editor_of_the_app_is_a_visible_one() -> None:
    """The app's code neither creates nor subclasses Textual's own Input or TextArea (one of
    those would write control characters raw again): only the Visible ones."""
    source = Path(__file__).resolve().parents[2] / "src" / "leverchat" / "ui"
    plain_editor = re.compile(r"(?<![\w.])(?:Input|TextArea)\(|class \w+\((?:Input|TextArea)\)")
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in source.rglob("*.py")
        if path.name != "visible_editors.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if plain_editor.search(line)
    ]
    assert offenders == []
