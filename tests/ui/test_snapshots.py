"""Snapshot tests: how the TUI looks. Each docstring says what you should see.

Update with ``pytest tests/ui/test_snapshots.py --snapshot-update`` after checking the
differences in the report by eye.
"""

from __future__ import annotations

import pytest
from scripted_engine import Script

from conftest import chat_screen, reply_done, send, wait_for

CODE_REPLY = [
    "Here is a function that adds two numbers:\n\n",
    "```python\ndef add(a: int, b: int) -> int:\n",
    "    return a + b\n```\n\n",
    "Call it as `add(2, 3)`; it returns **5**.",
]


async def model_ready(pilot) -> None:
    screen = chat_screen(pilot.app)
    await wait_for(pilot, lambda: screen.model_info is not None, "the model loaded")
    await pilot.pause()


def steady(run_before):
    """Run ``run_before``, then stop cursor blinking so the frame does not depend on timing."""

    async def wrapped(pilot) -> None:
        await run_before(pilot)
        for widget in pilot.app.screen.query("Input, TextArea"):
            widget.cursor_blink = False
        await pilot.pause()

    return wrapped


@pytest.fixture
def ask(engine):
    """A run_before that asks one question and waits for the scripted reply."""

    def factory(question: str, chunks: list[str]):
        engine.scripts.append(Script(chunks))

        async def run_before(pilot) -> None:
            await model_ready(pilot)
            await send(pilot, question)
            await reply_done(pilot)

        return run_before

    return factory


def test_empty_chat(snap_compare, make_app):
    """You should see an empty transcript holding only a dim hint (F2 levers, Ctrl+P commands,
    F1 keys, Escape stops), the focused prompt with its placeholder at the bottom, the lever
    panel on the right (profile "default", saved; the system prompt; the first levers with
    ranges and help), the status line (scripted-model cpu, profile default) and the footer
    with Send, Levers, Save, Regenerate and Help."""
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(model_ready))


def test_streamed_reply_with_code_block(snap_compare, make_app, ask):
    """You should see the user's question, then the reply rendered as Markdown: a paragraph,
    a highlighted Python code block, and a last line with inline code and bold 5. The status
    line shows 42.0 tok/s, TTFT 0.05 s, ctx, seed 1234 and "end of turn"."""
    run_before = ask("Write an add function", CODE_REPLY)
    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(run_before))


def test_panel_with_a_modified_lever_and_an_invalid_one(snap_compare, make_app):
    """You should see the panel with the profile marked "modified: not saved yet", the status
    line showing "profile default *", temperature at 1.2, and top-p showing "1.5" flagged in
    red with the reason "top_p = 1.5 is out of range: allowed 0 to 1"."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        screen = chat_screen(pilot.app)
        field = screen.panel.field("temperature")
        field.input.focus()
        await pilot.press(*"1.2", "enter")  # typing replaces the value shown
        top_p = screen.panel.field("top_p")
        top_p.input.focus()
        await pilot.press(*"1.5")
        await pilot.pause()
        screen.panel.scroll_to_widget(top_p, animate=False, top=False)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(run_before))


def test_save_as_dialog(snap_compare, make_app):
    """You should see the "Save profile as" dialog over the dimmed chat, its name box holding
    the suggested name "default 2", and the Save and Cancel buttons."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        chat_screen(pilot.app).action_save_profile_as()
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(run_before))


def test_light_theme(snap_compare, make_app, ask):
    """You should see the same chat in the light theme: a near-white background, dark text,
    blue accents, with a question and a short Markdown reply."""
    run_before = ask("Hello?", ["Hello! How can I **help** today?"])
    assert snap_compare(
        make_app(theme="leverchat-light"), terminal_size=(100, 30), run_before=steady(run_before)
    )


def test_80x24_hides_the_panel(snap_compare, make_app, ask):
    """You should see an 80x24 chat without the side panel: the question, the reply with its
    code block, the prompt, the status line and the footer, nothing cut off on the left."""
    run_before = ask("Write an add function", CODE_REPLY)
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=steady(run_before))


def test_80x24_panel_opens_over_the_chat(snap_compare, make_app):
    """You should see the lever panel opened with F2 over the right part of the 80x24 chat,
    the temperature box focused; the status line and footer stay visible below it."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        await pilot.press("f2")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=steady(run_before))


def test_stopped_reply_and_change_marker(snap_compare, make_app, engine):
    """You should see a first reply marked "■ stopped" after its partial text, then a dim
    italic marker line "⟳ temperature 0.7 → 1.5", then the second exchange."""
    script = Script(["Once upon ", "a time ", "there was"], hold_after=2)
    engine.scripts += [script, Script(["The end."])]

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        screen = chat_screen(pilot.app)
        await send(pilot, "Tell me a story")
        await wait_for(pilot, script.reached_hold.is_set, "mid-reply")
        await pilot.press("escape")
        await reply_done(pilot)
        screen.live_levers.set(screen.live_levers.get().with_value("temperature", 1.5))
        screen.panel.show_levers(screen.live_levers.get())
        await send(pilot, "Finish it")
        await reply_done(pilot)

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(run_before))


def test_help_screen(snap_compare, make_app):
    """You should see the help dialog listing every binding as a table: keys, binding id and
    what it does (Enter send, Escape stop, F2 toggle_panel, ...); a long description wraps
    inside its own column, under its first line, never back under the keys."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=steady(run_before))


def test_80x24_unsaved_edits_dialog(snap_compare, make_app):
    """You should see, over the dimmed 80x24 chat, the "Unsaved edits to profile default"
    dialog: "Your edits to the temperature lever are not saved. Save them to default before you
    quit?", and three buttons, "Save  S", "Discard  D" and "Cancel  Esc" (focused), all inside
    the screen."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        await pilot.press("ctrl+l", "1", "enter", "ctrl+q")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=steady(run_before))


def test_80x24_toast_leaves_the_prompt_visible(snap_compare, make_app):
    """You should see a notification at the top right of the 80x24 chat, and below, the prompt
    box holding "half a question" in full, with the status line and footer under it."""

    async def run_before(pilot) -> None:
        await model_ready(pilot)
        chat_screen(pilot.app).prompt.insert("half a question")
        pilot.app.notify("Saved profile default. A second sentence makes this toast wrap.")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=steady(run_before))
