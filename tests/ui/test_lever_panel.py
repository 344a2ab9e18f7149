"""The lever panel: live edits, validation in place, nudges, system prompt, change markers."""

from __future__ import annotations

import pytest
from scripted_engine import Script

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.levers import SPECS_BY_NAME, LeverError
from leverchat.ui.widgets.lever_field import (
    LeverField,
    format_lever_value,
    nudged,
    parse_lever_text,
)
from leverchat.ui.widgets.lever_panel import LeverPanel
from leverchat.ui.widgets.messages_view import ChangeMarker


async def type_into_lever(pilot, name: str, text: str, *, confirm: bool = True) -> LeverField:
    """Clear a lever's box, type ``text`` key by key, then press Enter."""
    screen = chat_screen(pilot.app)
    field = screen.panel.field(name)
    field.input.focus()
    field.input.value = ""
    if text:
        await pilot.press(*text)
    if confirm:
        await pilot.press("enter")
    await pilot.pause()
    return field


async def test_a_lever_changed_mid_reply_reaches_the_engine_before_the_reply_ends(make_app, engine):
    script = Script(["a ", "b ", "c ", "d"], hold_after=2)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "go")
        await wait_for(pilot, script.reached_hold.is_set, "the engine is mid-reply")
        await type_into_lever(pilot, "temperature", "1.5")
        assert screen.live_levers.get().temperature == 1.5
        script.release.set()
        await reply_done(pilot)
        seen = [levers.temperature for levers in engine.last.levers_per_chunk]
        assert seen == [0.7, 0.7, 1.5, 1.5]
        provenance = screen.conversation.messages[-1].provenance
        assert provenance.lever_changes[0].token_index == 2
        assert provenance.lever_changes[0].changed == ("temperature",)


@pytest.mark.parametrize(
    ("name", "typed", "reason"),
    [
        ("temperature", "hot", "temperature must be a number in 0 to 5"),
        ("top_p", "1.5", "top_p = 1.5 is out of range: allowed 0 to 1"),
        ("max_new_tokens", "0", "max_new_tokens = 0 is out of range"),
        ("top_k", "2.5", "top_k must be a whole number"),
        ("temperature", "nan", "temperature must be a finite number"),
    ],
)
async def test_an_invalid_value_is_flagged_in_place_and_never_applied(
    make_app, engine, name, typed, reason
):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        before = screen.live_levers.get()
        field = await type_into_lever(pilot, name, typed)
        assert field.has_class("-invalid")
        assert reason in str(field.query_one(".lever-error").render())
        assert field.query_one(".lever-error").display
        assert screen.live_levers.get() == before
        await send(pilot, "go")
        await reply_done(pilot)
        assert getattr(engine.last.levers_per_chunk[0], name) == getattr(before, name)


async def test_fixing_an_invalid_value_clears_the_error_and_applies_it(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        field = await type_into_lever(pilot, "top_p", "1.5")
        assert field.error is not None
        await type_into_lever(pilot, "top_p", "0.5")
        assert field.error is None and not field.query_one(".lever-error").display
        assert screen.live_levers.get().top_p == 0.5


async def test_plus_minus_and_arrows_nudge_a_lever_by_its_step(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        field = screen.panel.field("temperature")
        field.input.focus()
        await pilot.press("plus", "plus")
        assert screen.live_levers.get().temperature == 0.8
        assert field.input.value == "0.8"
        await pilot.press("minus", "down")
        assert screen.live_levers.get().temperature == 0.7
        await pilot.press("up")
        assert screen.live_levers.get().temperature == 0.75


async def test_a_typed_value_applies_when_confirmed_not_at_every_keystroke(make_app, engine):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await type_into_lever(pilot, "top_p", "0.5", confirm=False)
        assert screen.live_levers.get().top_p == 0.95  # "0" was never applied on the way
        await send(pilot, "go")  # sending confirms what the panel shows
        await reply_done(pilot)
        assert engine.last.levers_per_chunk[0].top_p == 0.5


async def test_minus_types_a_sign_at_the_start_of_a_lever_that_allows_negatives(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        field = await type_into_lever(pilot, "frequency_penalty", "-0.5")
        assert field.error is None
        assert screen.live_levers.get().frequency_penalty == -0.5


async def test_seed_and_stop_strings_are_edited_as_text(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await type_into_lever(pilot, "seed", "42")
        assert screen.live_levers.get().seed == 42
        await type_into_lever(pilot, "seed", "")
        assert screen.live_levers.get().seed is None
        await type_into_lever(pilot, "stop", "User:, ###")
        assert screen.live_levers.get().stop == ("User:", "###")
        await type_into_lever(pilot, "stop", "--+")  # + and - are text here, not nudges
        assert screen.live_levers.get().stop == ("--+",)


async def test_the_system_prompt_edit_applies_to_the_next_reply_with_a_marker(make_app, engine):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "one")
        await reply_done(pilot)
        editor = screen.panel.query_one("#system-prompt")
        editor.load_text("Answer in French.")
        await pilot.pause()
        await type_into_lever(pilot, "temperature", "1.2")
        await send(pilot, "two")
        await reply_done(pilot)
        assert engine.last.request.messages[0].content == "Answer in French."
        markers = [str(marker.render()) for marker in screen.query(ChangeMarker)]
        assert len(markers) == 1
        assert "system prompt changed" in markers[0]
        assert "temperature 0.7 → 1.2" in markers[0]


async def test_f2_toggles_the_panel_and_it_is_hidden_by_default_at_80_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.screen.query_one(LeverPanel)
        assert not panel.display
        await pilot.press("f2")
        assert panel.display
        assert panel.has_focus_within  # it opens over the chat, ready to edit
        await pilot.press("f2")
        assert not panel.display
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        assert app.screen.query_one(LeverPanel).display


def test_lever_text_parsing_and_formatting_round_trip():
    temperature = SPECS_BY_NAME["temperature"]
    assert parse_lever_text(temperature, " 2 ") == 2.0
    assert format_lever_value(temperature, 2.0) == "2.0"
    stop = SPECS_BY_NAME["stop"]
    assert parse_lever_text(stop, '["a, b", "\\n"]') == ("a, b", "\n")
    assert parse_lever_text(stop, "") == ()
    with pytest.raises(LeverError, match="must be a list"):
        parse_lever_text(stop, "[broken")
    assert nudged(SPECS_BY_NAME["top_p"], 1.0, 1) == 1.0  # clamped to the range
    assert nudged(SPECS_BY_NAME["seed"], None, 1) == 1


async def test_a_nudge_typed_right_after_digits_applies_to_the_typed_value(make_app):
    from textual import events

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        field = screen.panel.field("temperature")
        field.input.focus()
        field.input.value = ""
        await pilot.pause()
        for key, character in [("1", "1"), ("plus", "+")]:
            app.post_message(events.Key(key, character))
        await wait_for(pilot, lambda: field.input.value == "1.05", "the nudge from 1")
        assert screen.live_levers.get().temperature == 1.05


async def test_escape_in_the_panel_stops_a_reply_then_returns_to_the_prompt(make_app, engine):
    script = Script(["a ", "b ", "c"], hold_after=1)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "go")
        await wait_for(pilot, script.reached_hold.is_set, "mid-reply")
        await pilot.press("f2")  # the panel opens over the chat, focused
        assert screen.panel.has_focus_within
        await pilot.press("escape")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].content == "a "
        assert screen.panel.display  # the first Escape only stopped the reply
        await pilot.press("escape")
        assert not screen.panel.display
        assert screen.prompt.has_focus


async def test_a_system_prompt_edit_marks_the_profile_modified(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        editor = screen.panel.query_one("#system-prompt")
        editor.focus()
        await pilot.press("end", "!", "!")
        await pilot.pause()
        assert screen.system_prompt == "You are a helpful assistant.!!"
        assert screen.modified
        assert "default *" in str(screen.query_one("StatusLine").render())


async def test_more_levers_are_folded_away_and_apply_mid_reply_once_opened(make_app, engine):
    from textual.widgets import Collapsible

    script = Script(["a ", "b ", "c ", "d"], hold_after=2)
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        more = screen.panel.query_one("#more-levers", Collapsible)
        contents = more.query_one(Collapsible.Contents)
        # The common levers first; DRY, XTC, mirostat... start folded (80x24 stays usable).
        assert more.collapsed and not contents.display
        assert screen.panel.field("temperature").region.area > 0
        more.collapsed = False
        await pilot.pause()
        assert contents.display
        await send(pilot, "go")
        await wait_for(pilot, script.reached_hold.is_set, "the engine is mid-reply")
        await type_into_lever(pilot, "dry_multiplier", "0.8")
        script.release.set()
        await reply_done(pilot)
        seen = [levers.dry_multiplier for levers in engine.last.levers_per_chunk]
        assert seen == [0.0, 0.0, 0.8, 0.8]
        provenance = screen.conversation.messages[-1].provenance
        assert provenance.lever_changes[0].changed == ("dry_multiplier",)
        assert provenance.levers.dry_multiplier == 0.0  # the levers the reply started with
