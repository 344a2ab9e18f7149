"""Profiles in the panel: switch, modified marker, save, save as, revert, conflict on disk."""

from __future__ import annotations

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.ui.screens.conflict import ConflictScreen
from leverchat.ui.screens.save_as import SaveAsScreen
from leverchat.ui.widgets.lever_panel import LeverPanel
from leverchat.ui.widgets.status_line import StatusLine


def status_text(screen) -> str:
    return str(screen.query_one(StatusLine).render())


def profile_state(screen) -> str:
    return str(screen.panel.query_one("#profile-state").render())


async def edit_temperature(pilot, value: str) -> None:
    screen = chat_screen(pilot.app)
    field = screen.panel.field("temperature")
    field.input.focus()
    field.input.value = value
    await pilot.press("enter")
    await pilot.pause()


async def test_switching_profile_changes_the_system_prompt_and_levers_of_the_next_reply(
    make_app, engine
):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        assert screen.profiles.profile.name == "default"
        screen.panel.query_one("#profile-select").value = "pirate"
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "the switch")
        assert screen.panel.field("temperature").input.value == "1.1"
        assert "pirate" in str(screen.panel.query_one("#system-prompt").text)
        assert "profile pirate" in status_text(screen)
        await send(pilot, "Ahoy?")
        await reply_done(pilot)
        request = engine.last.request
        assert request.messages[0].content == "You are a pirate. Answer like one."
        assert engine.last.levers_per_chunk[0].temperature == 1.1
        assert engine.last.levers_per_chunk[0].top_p == 0.9


async def test_an_edit_shows_the_modified_marker_and_revert_restores_the_saved_values(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        assert not screen.modified and "profile default *" not in status_text(screen)
        await edit_temperature(pilot, "1.3")
        assert screen.modified
        assert "profile default *" in status_text(screen)
        assert "modified" in profile_state(screen)
        screen.action_revert_profile()
        await pilot.pause()
        assert not screen.modified
        assert screen.live_levers.get().temperature == 0.7
        assert screen.panel.field("temperature").input.value == "0.7"


async def test_save_writes_the_profile_file_and_clears_the_marker(make_app, profile_store):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await edit_temperature(pilot, "1.3")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not screen.modified
        saved = profile_store.load("default")
        assert saved.profile.levers.temperature == 1.3
        assert saved.path.is_file() and not saved.builtin


async def test_save_as_creates_a_new_profile_and_switches_to_it(make_app, profile_store):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await edit_temperature(pilot, "0.2")
        screen.action_save_profile_as()
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        name_box = app.screen.query_one("#save-as-name")
        name_box.value = "careful"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SaveAsScreen)
        assert profile_store.load("careful").profile.levers.temperature == 0.2
        assert screen.profiles.profile.name == "careful"
        assert "careful" in [
            value for _label, value in screen.panel.query_one("#profile-select")._options
        ]


async def test_save_as_with_a_taken_name_explains_in_place(make_app, profile_store):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        screen.action_save_profile_as()
        await pilot.pause()
        app.screen.query_one("#save-as-name").value = "pirate"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)  # still open, nothing lost
        error = app.screen.query_one("#save-as-error")
        assert error.display and "pirate" in str(error.render())
        await pilot.press("escape")
        await pilot.pause()
        assert profile_store.load("pirate").builtin  # untouched


async def test_a_save_refused_because_the_file_changed_on_disk_offers_reload(
    make_app, profile_store
):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await edit_temperature(pilot, "1.3")
        await pilot.press("ctrl+s")  # now a user file exists
        await pilot.pause()
        # another program edits the same profile
        path = profile_store.load("default").path
        path.write_text(path.read_text().replace("1.3", "0.4"), encoding="utf-8")
        await edit_temperature(pilot, "2.0")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ConflictScreen)
        assert "0.4" in path.read_text()  # nothing was overwritten
        await pilot.click("#conflict-reload")
        await pilot.pause()
        assert screen.live_levers.get().temperature == 0.4
        assert not screen.modified


async def test_a_conflict_can_be_saved_under_a_new_name(make_app, profile_store):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await edit_temperature(pilot, "1.3")
        await pilot.press("ctrl+s")
        await pilot.pause()
        path = profile_store.load("default").path
        path.write_text(path.read_text().replace("1.3", "0.4"), encoding="utf-8")
        await edit_temperature(pilot, "2.0")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.click("#conflict-save-as")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        app.screen.query_one("#save-as-name").value = "mine"
        await pilot.press("enter")
        await pilot.pause()
        assert profile_store.load("mine").profile.levers.temperature == 2.0
        assert "0.4" in path.read_text()


async def test_a_missing_start_profile_is_reported_and_the_default_used(make_app):
    app = make_app(profile="nope")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = chat_screen(app)
        assert screen.profiles.profile.name == "default"
        assert any("nope" in str(n.message) for n in app._notifications)


async def test_the_panel_lists_every_profile(make_app):
    app = make_app(profile="pirate")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        select = app.screen.query_one(LeverPanel).query_one("#profile-select")
        assert [value for _label, value in select._options] == ["default", "pirate"]
        assert select.value == "pirate"


async def test_save_as_with_an_empty_name_explains_in_place(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        chat_screen(app).action_save_profile_as()
        await pilot.pause()
        app.screen.query_one("#save-as-name").value = "   "
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
        error = str(app.screen.query_one("#save-as-error").render())
        assert "name" in error


async def test_the_panel_buttons_save_and_revert(make_app, profile_store):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await edit_temperature(pilot, "1.4")
        await pilot.click("#profile-revert")
        await pilot.pause()
        assert screen.live_levers.get().temperature == 0.7 and not screen.modified
        await edit_temperature(pilot, "1.6")
        await pilot.click("#profile-save")
        await pilot.pause()
        assert profile_store.load("default").profile.levers.temperature == 1.6
        await pilot.click("#profile-save-as")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsScreen)
