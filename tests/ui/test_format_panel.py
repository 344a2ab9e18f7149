"""The prompt format in the panel: the built-ins plus the profile's own, applied from the
next reply, saved with the profile; and shown in F3."""

from __future__ import annotations

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.chat import ReplyProvenance
from leverchat.engine.custom_format import CustomFormat
from leverchat.levers import Levers
from leverchat.ui.screens.provenance import provenance_lines

VICUNA_PROFILE = """\
name = "vicuna"
[prompt_format]
name = "vicuna [v1]"
user_prefix = "USER: "
user_suffix = "\\n"
assistant_prefix = "ASSISTANT: "
generation_prefix = "ASSISTANT:"
"""


def options(screen) -> list[str]:
    return [value for _label, value in screen.panel.query_one("#format-select")._options]


async def test_the_panel_offers_the_profiles_own_format_and_applies_a_choice(
    make_app, engine, profile_store
):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    (profile_store.directory / "vicuna.toml").write_text(VICUNA_PROFILE, encoding="utf-8")
    app = make_app(profile="vicuna")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        select = screen.panel.query_one("#format-select")
        await wait_for(pilot, lambda: "custom" in options(screen), "the formats shown")
        assert options(screen) == ["auto", "chat_template", "instruction", "custom"]
        assert select.value == "custom"
        await send(pilot, "Hi")
        await reply_done(pilot)
        sent = engine.last.request.prompt_format
        assert isinstance(sent, CustomFormat) and sent.name == "vicuna [v1]"

        select.value = "instruction"
        await pilot.pause()
        await send(pilot, "Again")
        await reply_done(pilot)
        assert engine.last.request.prompt_format == "instruction"
        assert screen.profiles.is_modified(screen.system_prompt, screen.live_levers.get())

        # Saved with the profile; the profile's own format is still offered.
        assert screen.action_save_profile()
        saved = profile_store.load("vicuna").profile
        assert saved.prompt_format == "instruction"
        # The profile's own format is still in its file, under [custom_format]: never lost.
        assert saved.custom_format is not None and saved.custom_format.name == "vicuna [v1]"
        select.value = "custom"
        await pilot.pause()
        assert isinstance(screen.profiles.profile.prompt_format, CustomFormat)

        # Another profile: its formats (no custom one), its choice.
        screen.action_save_profile()
        screen.panel.query_one("#profile-select").value = "default"
        await wait_for(pilot, lambda: screen.profiles.profile.name == "default", "the switch")
        await pilot.pause()
        assert options(screen) == ["auto", "chat_template", "instruction"]
        assert select.value == "auto"


def test_f3_shows_the_prompt_format() -> None:
    provenance = ReplyProvenance(
        model="m",
        profile="vicuna",
        system_prompt="",
        levers=Levers(),
        prompt_format="custom 'vicuna [v1]' (prefix/suffix)",
    )
    assert "Prompt format:   custom 'vicuna [v1]' (prefix/suffix)" in provenance_lines(provenance)


async def test_a_format_name_with_markup_is_shown_literally(make_app, profile_store):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    hostile = VICUNA_PROFILE.replace('"vicuna [v1]"', '"[/] [@click=app.quit] \\u001b[2J"')
    (profile_store.directory / "vicuna.toml").write_text(hostile, encoding="utf-8")
    app = make_app(profile="vicuna")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: "custom" in options(screen), "the formats shown")
        select = screen.panel.query_one("#format-select")
        select.scroll_visible()
        await pilot.pause()
        labels = [str(label) for label, _value in select._options]
        # Shown as typed (the escape made harmless), never read as markup or a click action.
        assert labels[-1].startswith("custom '[/] [@click=app.quit] ")
        assert "\x1b" not in labels[-1]
        assert app.is_running
