"""Snapshot tests of the sweep grid (F9) and the A/B screen (F8). Each docstring says what you
should see. Update with ``pytest tests/ui/test_sweep_ab_snapshots.py --snapshot-update`` after
checking the differences in the report by eye."""

from __future__ import annotations

from scripted_engine import Script

from conftest import chat_screen, wait_for
from leverchat.ui.screens.ab import ABScreen
from leverchat.ui.screens.sweep import SweepScreen

CELLS = [
    "To make a cake, mix flour, sugar and eggs.",
    "To make a cake, start with the oven: 180 °C.",
    "Cakes want patience, butter and a warm kitchen.",
    "No need for baking – a cake on a machine, [like] in the movie.",
]


async def prepared(pilot, text: str) -> None:
    screen = chat_screen(pilot.app)
    await wait_for(pilot, lambda: screen.model_info is not None, "the model loaded")
    screen.live_levers.set(screen.live_levers.get().with_value("seed", 7))
    screen.prompt.focus()
    await pilot.pause()
    screen.prompt.insert(text)


async def still(pilot) -> None:
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
    await pilot.pause()


def sweep_run(engine):
    engine.scripts.extend(Script([text]) for text in CELLS)

    async def run_before(pilot) -> None:
        await prepared(pilot, "How do I make a cake?")
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SweepScreen), "sweep")
        sweep = pilot.app.screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(sweep.cells) and not sweep.running, "filled")
        sweep.cells[0].focus()
        await still(pilot)

    return run_before


def test_sweep_grid_two_columns(snap_compare, make_app, engine):
    """You should see the sweep screen at 100x30: its title, "Prompt: How do I make a cake?",
    the lever select (Temperature) beside the values 0, 0.4, 0.8, 1.2, then four cells in two
    columns, each headed "temperature = <value> · seed 7" with its reply ("[like]" kept
    literally) and "N tokens · 42.0 tok/s · end of turn"; the first cell focused; the key hint
    at the bottom."""
    assert snap_compare(make_app(), run_before=sweep_run(engine), terminal_size=(100, 30))


def test_sweep_grid_stacked_at_80x24(snap_compare, make_app, engine):
    """You should see the same sweep at 80x24 with the cells stacked in one column, the first
    ones visible and a scroll bar for the rest; the hint on one line at the bottom."""
    assert snap_compare(make_app(), run_before=sweep_run(engine), terminal_size=(80, 24))


def test_ab_side_by_side(snap_compare, make_app, engine):
    """You should see the A/B screen at 100x30: "Message: How do I make a cake?", B's profile
    select on "pirate", the line "B: profile default → pirate; system prompt changed;
    temperature 0.7 → 1.1; top_p …", then A (profile default · seed 7) and B (profile pirate ·
    seed 7) side by side with their replies and stats, A focused (double border)."""
    engine.scripts.extend([Script(["Mix flour, sugar and eggs."]), Script(["Arr, matey!"])])

    async def run_before(pilot) -> None:
        await prepared(pilot, "How do I make a cake?")
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ABScreen), "A/B")
        screen = pilot.app.screen
        screen.query_one("#ab-profile").value = "pirate"
        screen.query_one("#ab-value").focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(screen.replies) and not screen.running, "written")
        await still(pilot)

    assert snap_compare(make_app(), run_before=run_before, terminal_size=(100, 30))
