"""The first hour in the TUI (issue 13): typing a lever value, unsaved edits, a rebound key,
the chat list's ends, and what messages, toasts and the help screen look like."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pilot_steps import (
    dialog_open,
    edit_temperature,
    notifications,
    open_chat_list,
    with_unsaved_edit,
)
from scripted_engine import ScriptedEngine
from textual.widgets._toast import Toast

from conftest import REPO, chat_screen, frame_text, wait_for
from leverchat import paths
from leverchat.history import HistoryStore
from leverchat.profiles import Profile
from leverchat.ui.commands import chat_commands
from leverchat.ui.config import load_config
from leverchat.ui.history_session import HistorySession
from leverchat.ui.key_names import key_display
from leverchat.ui.keymap import KEYS, key_list, parse_keymap
from leverchat.ui.screens.conflict import ConflictScreen
from leverchat.ui.screens.help import HelpScreen, free_example_key
from leverchat.ui.screens.unsaved import UnsavedEditsScreen
from leverchat.ui.unsaved_guard import unsaved_edits
from leverchat.ui.widgets.messages_view import Notice
from leverchat.wording import sentence


def write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- typing a lever value ----------------------------------------------------------------------


async def test_typing_into_a_lever_replaces_the_value_it_shows(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await pilot.press("ctrl+l")
        field = screen.panel.field("temperature")
        assert field.input.has_focus and field.input.value == "0.7"
        await pilot.press(*"0.3")
        assert field.input.value == "0.3"  # not "0.70.3"
        assert field.error is None and not field.has_class("-invalid")
        await pilot.press("enter")
        assert screen.live_levers.get().temperature == 0.3
        # After Enter the applied value is selected again: the next value replaces it too.
        await pilot.press(*"1.5", "enter")
        assert field.input.value == "1.5"
        assert screen.live_levers.get().temperature == 1.5


async def test_arrows_still_nudge_and_a_value_typed_after_a_nudge_replaces_it(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await pilot.press("ctrl+l", "up", "plus")
        field = screen.panel.field("temperature")
        assert field.input.value == "0.8"
        assert screen.live_levers.get().temperature == 0.8
        await pilot.press("2", "enter")
        assert field.input.value == "2.0"
        assert screen.live_levers.get().temperature == 2.0


async def test_backspace_clears_the_box_and_left_or_end_edit_in_place(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await pilot.press("ctrl+l", "backspace")
        field = screen.panel.field("temperature")
        assert field.input.value == ""
        await pilot.press(*"0.2", "enter")
        assert screen.live_levers.get().temperature == 0.2
        await pilot.press("end", "5", "enter")  # End: edit the value instead of replacing it
        assert field.input.value == "0.25"
        assert screen.live_levers.get().temperature == 0.25


async def test_escape_puts_back_the_applied_value_then_returns_to_the_prompt(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await pilot.press("ctrl+l", "9")
        field = screen.panel.field("temperature")
        assert field.input.value == "9" and field.error is not None  # out of range: 0 to 5
        await pilot.press("escape")
        assert field.input.value == "0.7"
        assert field.error is None and not field.query_one(".lever-error").display
        assert field.input.has_focus
        await pilot.press("3", "escape")
        assert field.input.value == "0.7"
        assert screen.live_levers.get().temperature == 0.7  # never applied
        await pilot.press("escape")
        assert screen.prompt.has_focus
        assert screen.live_levers.get().temperature == 0.7


# -- unsaved edits -------------------------------------------------------------------------------


def palette_switch(screen, name: str):
    """The palette's "Switch profile" command, as the user would pick it."""
    for command in chat_commands(screen):
        if command.label == f"Switch profile: {name}":
            return command.callback
    raise AssertionError(f"no palette command switches to {name}")


async def test_switching_profile_with_unsaved_edits_asks_and_cancel_keeps_them(make_app):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, screen):
        palette_switch(screen, "pirate")()
        await dialog_open(pilot)
        frame = frame_text(app)
        assert "Unsaved edits to profile default" in frame
        assert "the temperature lever" in frame
        assert "switch to profile pirate" in frame
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert screen.profiles.profile.name == "default"
        assert screen.live_levers.get().temperature == 1.0
        assert screen.panel.field("temperature").input.value == "1.0"
        assert screen.modified

        # The panel's selector asks too, and shows the current profile again on cancel.
        select = screen.panel.query_one("#profile-select")
        select.value = "pirate"
        await dialog_open(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert select.value == "default"
        assert screen.live_levers.get().temperature == 1.0


async def test_discard_switches_and_says_so(make_app, profile_store):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, screen):
        screen.panel.query_one("#profile-select").value = "pirate"
        await dialog_open(pilot)
        await pilot.press("d")
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "switched")
        assert screen.live_levers.get().temperature == 1.1
        assert "Discarded your edits to default." in notifications(app)
        assert profile_store.load("default").profile.levers.temperature == 0.7


async def test_save_writes_the_edits_then_switches(make_app, profile_store):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, screen):
        palette_switch(screen, "pirate")()
        await dialog_open(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "switched")
        assert profile_store.load("default").profile.levers.temperature == 1.0
        assert screen.live_levers.get().temperature == 1.1


async def test_a_switch_without_edits_does_not_ask(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        palette_switch(screen, "pirate")()
        await pilot.pause()
        assert screen.profiles.profile.name == "pirate"
        assert not isinstance(app.screen, UnsavedEditsScreen)


async def test_ctrl_q_with_unsaved_edits_asks_and_escape_keeps_the_app(make_app, profile_store):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, screen):
        await pilot.press("ctrl+q")
        await dialog_open(pilot)
        assert "before you quit?" in frame_text(app)
        await pilot.press("ctrl+q")  # asking already: a second Ctrl+Q changes nothing
        await pilot.press("escape")
        await pilot.pause()
        assert app.return_code is None  # still running
        assert app.screen is screen
        await pilot.press("ctrl+q")
        await dialog_open(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert app.return_code == 0
    assert profile_store.load("default").profile.levers.temperature == 1.0


async def test_ctrl_q_discard_quits_without_saving(make_app, profile_store):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, _screen):
        await pilot.press("ctrl+q")
        await dialog_open(pilot)
        await pilot.press("d")
        await pilot.pause()
        assert app.return_code == 0
    assert profile_store.load("default").profile.levers.temperature == 0.7


async def test_a_save_refused_by_a_change_on_disk_does_not_quit(make_app, profile_store):
    app = make_app()
    async with with_unsaved_edit(app, "1.3") as (pilot, screen):
        await pilot.press("ctrl+s")  # the user's own profile file exists now
        await pilot.pause()
        path = profile_store.load("default").path
        path.write_text(path.read_text().replace("1.3", "0.4"), encoding="utf-8")  # elsewhere
        await pilot.press("escape")
        await edit_temperature(pilot, "2")
        await pilot.press("ctrl+q")
        await dialog_open(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConflictScreen), "the conflict")
        assert app.return_code is None  # not quit: the edits would have been lost
        assert "0.4" in path.read_text()  # and the other change was not overwritten
        assert screen.live_levers.get().temperature == 2.0


async def test_a_terminate_signal_with_unsaved_edits_exits_without_asking(make_app):
    app = make_app()
    async with with_unsaved_edit(app) as (pilot, _screen):
        app._on_terminate(signal.SIGTERM)  # what the SIGTERM/SIGHUP handler calls
        await pilot.pause()
        assert app.return_code == 128 + signal.SIGTERM
        assert not any(isinstance(screen, UnsavedEditsScreen) for screen in app.screen_stack)


async def test_ctrl_q_without_edits_quits_at_once(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.return_code == 0


async def test_the_dialog_shows_a_markup_profile_name_literally(make_app, profile_store):
    name = "[/]x[bold]y[@click=app.quit]"
    profile_store.save_as(Profile(name, system_prompt="Be brief."))
    app = make_app(profile=name)
    async with with_unsaved_edit(app) as (pilot, screen):
        assert screen.profiles.profile.name == name
        await pilot.press("ctrl+q")
        await dialog_open(pilot)
        frame = frame_text(app)
        assert f"Unsaved edits to profile {name}" in frame
        assert app.return_code is None


def test_unsaved_edits_are_named():
    saved = Profile("p", system_prompt="a")
    levers = saved.levers
    assert unsaved_edits(saved, "a", levers) is None
    assert unsaved_edits(saved, "b", levers) == "the system prompt"
    changed = levers.with_value("top_p", 0.5).with_value("temperature", 1.0)
    assert unsaved_edits(saved, "b", changed) == (
        "the system prompt and 2 levers (temperature, top_p)"
    )


# -- the keymap -----------------------------------------------------------------------------------


def readme_config_example() -> str:
    """The config.toml example of README.md, as printed there."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = [block.split("```")[0] for block in text.split("```toml\n")[1:]]
    return next(block for block in blocks if "[keymap]" in block)


async def test_the_readme_keymap_example_works_while_the_prompt_has_focus(make_app):
    write_config(readme_config_example())
    config = load_config()
    assert config.problems == ()
    assert config.keymap["toggle_panel"] == "f12"
    app = make_app(config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        assert screen.prompt.has_focus and not screen.panel.display
        screen.prompt.insert("half a question")
        await pilot.press("f12")
        assert screen.panel.display  # F12 reached the screen: the prompt kept its text
        assert screen.prompt.selected_text == ""
        await pilot.press("f12")  # from the lever box it opened on, too
        assert not screen.panel.display
        assert screen.prompt.text == "half a question"
        await pilot.press("f2")
        assert not screen.panel.display  # the old key is free again
        assert app.return_code is None


async def test_every_hint_names_the_rebound_key(make_app):
    write_config('[keymap]\ntoggle_panel = "f12"\ncommand_palette = "ctrl+k"\nhelp = "f10"\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await pilot.pause()
        welcome = str(screen.query_one("#chat-hint").render())
        assert "F12 shows the levers, Ctrl+K the commands, F10 every key" in welcome
        footer = frame_text(app).splitlines()[-1]
        assert "f12" in footer and "f2" not in footer
        helps = {command.label: command.help for command in chat_commands(screen)}
        assert helps["Toggle panel"] == "Show or hide the levers (F12)"
        assert helps["Help"] == "Every key and its binding id (F10)"
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help opens")
        help_text = frame_text(app)
        assert "f12" in help_text.split("toggle_panel")[0].splitlines()[-1]
        example = str(app.screen.query_one(".dialog-detail").render())  # below the table
        free = free_example_key(app.keymap)
        assert free not in ("f6", "f12")  # F6 is the inspector's, F12 taken now
        assert f'toggle_panel = "{free}"' in example
        await pilot.press("f10")  # the help key closes the help too
        await pilot.pause()
        assert app.screen is screen


async def test_the_help_example_key_is_free():
    example = free_example_key({})
    assert example.startswith("f")  # a function key: F6 to F12, the first one left free
    assert all(example not in key_list({}, spec.id) for spec in KEYS)


def test_a_key_another_binding_keeps_is_refused_with_its_owner():
    keymap, problems = parse_keymap({"toggle_panel": "f3"}, "config.toml")
    assert keymap == {}
    assert len(problems) == 1
    assert "toggle_panel = 'f3'" in problems[0] and "provenance" in problems[0]
    assert "ignored" in problems[0]
    swapped, problems = parse_keymap({"toggle_panel": "f3", "provenance": "f2"}, "c")
    assert swapped == {"toggle_panel": "f3", "provenance": "f2"} and problems == []


def test_an_unknown_binding_points_to_the_help_key_the_keymap_gives():
    _keymap, problems = parse_keymap({"help": "f10", "zzz": "f9"}, "config.toml")
    assert problems == ["config.toml: [keymap] zzz: unknown binding id; see the help screen (F10)"]


def test_a_chat_key_that_would_stop_typing_is_refused():
    keymap, problems = parse_keymap({"new_chat": "n", "regenerate": "up"}, "config.toml")
    assert keymap == {}
    assert all("needed to type and edit text" in problem for problem in problems)
    assert len(problems) == 2


def test_the_stop_key_cannot_be_one_a_text_box_keeps():
    keymap, problems = parse_keymap({"stop": "ctrl+x"}, "config.toml")
    assert keymap == {}
    assert "'ctrl+x' is a key of the text boxes" in problems[0]
    assert parse_keymap({"stop": "f12"}, "config.toml") == ({"stop": "f12"}, [])


def test_keys_are_written_as_people_read_them():
    assert key_display("ctrl+p") == "Ctrl+P"
    assert key_display("f6") == "F6"
    assert key_display("shift+enter") == "Shift+Enter"
    assert key_display("slash") == "/"
    assert key_display("alt+left") == "Alt+Left"


# -- the chat list ---------------------------------------------------------------------------------


@pytest.fixture
def three_saved_chats(tmp_path: Path) -> Iterator[HistorySession]:
    """A history of three chats (the cake, the fruit, the rain: oldest first)."""
    db = tmp_path / "history.sqlite3"
    for question in ("How do I make a cake?", "Which fruit is yellow?", "Will it rain?"):
        with HistoryStore(db) as store:
            chat_id = store.create_conversation(profile="default")
            user = store.add_user_message(chat_id, question, parent_id=None)
            reply = store.start_reply(chat_id, parent_id=user.id)
            store.finish_reply(reply.id, "Yes.", status=reply.status.COMPLETE)
    history = HistorySession(HistoryStore(db))
    yield history
    history.close()


async def test_the_chat_list_stops_at_its_ends_instead_of_wrapping(make_app, three_saved_chats):
    app = make_app(history=three_saved_chats)
    async with app.run_test(size=(80, 24)) as pilot:
        chats = await open_chat_list(pilot)
        first = chats.chosen_id
        await pilot.press("up")
        assert chats.chosen_id == first  # not the last row
        await pilot.press("down", "down")
        last = chats.chosen_id
        assert last != first
        await pilot.press("down")
        assert chats.chosen_id == last  # not the first row


# -- cosmetic ----------------------------------------------------------------------------------


def test_a_sentence_gets_one_full_stop():
    assert sentence("Deleted How do I make a cake?") == "Deleted How do I make a cake?"
    assert sentence("such as SmolLM2-360M-Instruct.") == "such as SmolLM2-360M-Instruct."
    assert sentence("it said 'stop!'") == "it said 'stop!'"
    assert sentence("Saved profile pirate") == "Saved profile pirate."
    assert sentence("a long title…") == "a long title…"


async def test_deleting_a_chat_titled_with_a_question_says_it_once(make_app, three_saved_chats):
    app = make_app(history=three_saved_chats)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_chat_list(pilot)
        await pilot.press("end")  # the oldest chat: the cake
        await pilot.press("d", "shift+tab", "enter")
        await wait_for(pilot, lambda: "How do I make" not in frame_text(app), "deleted")
        deleted = [text for text in notifications(app) if text.startswith("Deleted")]
        assert deleted == ["Deleted How do I make a cake?"]


async def test_a_load_error_ending_a_sentence_is_not_followed_by_a_second_stop(make_app):
    error = "No such model; try a hub id such as HuggingFaceTB/SmolLM2-360M-Instruct."
    app = make_app(engine=ScriptedEngine(load_error=error))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: bool(screen.query(Notice)), "the load failed")
        text = str(screen.query_one(Notice).render())
        assert "SmolLM2-360M-Instruct. Load another one" in text
        assert ".." not in text
    app.engine.close()


async def toast_and_prompt(app, pilot):
    screen = chat_screen(app)
    screen.prompt.insert("what I am typing")
    app.notify("A notification long enough to wrap over two or three lines of a toast box.")
    await wait_for(pilot, lambda: bool(app.screen.query(Toast)), "the toast shows")
    await pilot.pause()
    return screen


async def test_a_toast_leaves_the_prompt_visible_at_80_and_100_columns(make_app):
    for size in ((80, 24), (100, 30)):
        app = make_app()
        async with app.run_test(size=size, notifications=True) as pilot:
            screen = await toast_and_prompt(app, pilot)
            prompt = screen.prompt.region
            for toast in app.screen.query(Toast):
                assert not toast.region.overlaps(prompt), (size, toast.region, prompt)
                if screen.panel.display:  # beside the chat: its profile state stays visible
                    assert not toast.region.overlaps(screen.panel.region)
            assert "what I am typing" in frame_text(app)
            await pilot.press(*" more")
            assert screen.prompt.text == "what I am typing more"


async def test_long_help_descriptions_wrap_under_their_own_column(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help opens")
        lines = frame_text(app).splitlines()
        row = next(i for i, line in enumerate(lines) if "Stop the reply" in line)
        column = lines[row].index("Stop the reply")
        following = lines[row + 1]
        # The rest of the description starts at the description's column, not under the keys.
        assert following[:column].strip(" │▊▎▕▏┃") == ""
        assert following[column:].strip()


def test_a_history_error_ending_a_sentence_gets_no_second_stop(tmp_path: Path):
    junk = tmp_path / "history.sqlite3"
    junk.write_bytes(b"not a database " * 100)
    problem = HistorySession.open(junk).problem
    assert problem is not None and "to start a new history. This chat" in problem
    assert ".." not in problem
