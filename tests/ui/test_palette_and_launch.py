"""The command palette, the TUI entry point, and the import-time promise (no torch)."""

from __future__ import annotations

import argparse
import subprocess
import sys

from scripted_engine import Script
from textual.command import CommandPalette

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.ui.commands import chat_commands
from leverchat.ui.launch import run_tui


async def run_palette_command(pilot, query: str) -> None:
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "palette")
    await pilot.press(*query)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause()


async def test_the_palette_offers_the_required_commands(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)):
        labels = [command.label for command in chat_commands(chat_screen(app))]
        for required in (
            "Switch profile: pirate",
            "New chat",
            "Save profile",
            "Save profile as…",
            "Toggle panel",
            "Change theme",
            "Copy last reply",
            "Regenerate",
        ):
            assert required in labels


async def test_the_palette_switches_profile(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await run_palette_command(pilot, "switch profile: pirate")
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "switched")


async def test_the_palette_regenerates(make_app, engine):
    engine.scripts += [Script(["one"]), Script(["two"])]
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "hi")
        await reply_done(pilot)
        await run_palette_command(pilot, "regenerate")
        await wait_for(pilot, lambda: screen.conversation.messages[-1].content == "two", "redo")


async def test_a_profile_name_with_markup_is_literal_in_the_palette(make_app, profile_store):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    (profile_store.directory / "odd.toml").write_text(
        'name = "[/]odd[@click=app.quit]"\n', encoding="utf-8"
    )
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await run_palette_command(pilot, "odd")
        screen = chat_screen(app)
        assert app.is_running
        await wait_for(
            pilot, lambda: screen.profiles.profile.name == "[/]odd[@click=app.quit]", "switched"
        )


def test_run_tui_refuses_without_a_terminal():
    # stdin and stdout are pipes here
    code = (
        "import argparse, sys; from leverchat.ui.launch import run_tui;"
        "sys.exit(run_tui(argparse.Namespace(model=None, device='auto', dtype='auto',"
        "trust_remote_code=False, allow_pickle=False, profile=None, theme=None)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.PIPE,
    )
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr
    assert result.stdout == ""


def test_run_tui_refuses_in_process_too(capsys):
    args = argparse.Namespace(model=None, profile=None, theme=None)
    assert run_tui(args) == 2  # pytest captures stdout: not a terminal
    assert "ssh -t" in capsys.readouterr().err


def test_importing_the_app_does_not_import_torch():
    code = (
        "import sys; import leverchat.ui.app, leverchat.ui.launch, leverchat.engine.worker;"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
