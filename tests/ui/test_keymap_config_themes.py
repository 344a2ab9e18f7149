"""Key bindings by id, the keymap in the config file, themes from TOML, the remembered theme."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO, chat_screen, frame_text
from leverchat import paths
from leverchat.tomlio import read_toml
from leverchat.ui.config import load_config, remember_theme
from leverchat.ui.keymap import KEYS, KEYS_BY_ID, key_problem, parse_keymap
from leverchat.ui.screens.help import HelpScreen, help_rows
from leverchat.ui.themes import load_themes
from leverchat.ui.widgets.lever_panel import LeverPanel


def write_config(text: str) -> Path:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_binding_of_every_widget_has_a_registered_id():
    from leverchat.ui.app import LeverChatApp
    from leverchat.ui.screens.chat import ChatScreen
    from leverchat.ui.widgets.lever_field import LeverInput
    from leverchat.ui.widgets.messages_view import ReplyView
    from leverchat.ui.widgets.prompt_input import PromptInput

    for owner in (LeverChatApp, ChatScreen, PromptInput, LeverInput, ReplyView):
        for item in owner.BINDINGS:
            assert item.id in KEYS_BY_ID, (owner.__name__, item)
    assert len({spec.id for spec in KEYS}) == len(KEYS)


def test_key_names_are_checked():
    assert key_problem("f3") is None
    assert key_problem("ctrl+g,f5") is None
    assert key_problem("ctrl++") is None
    assert "not a modifier" in key_problem("crtl+g")
    assert "not a key name" in key_problem("ctrl+nope")
    assert key_problem(" ") == "no key given"


def test_bad_keymap_entries_are_reported_and_ignored():
    keymap, problems = parse_keymap(
        {"toggle_panel": "f12", "togle_panel": "f4", "help": 5, "quit": "crtl+x"}, "cfg.toml"
    )
    assert keymap == {"toggle_panel": "f12"}
    assert len(problems) == 3
    assert "did you mean 'toggle_panel'?" in problems[0]
    assert "help must be a string" in problems[1]
    assert "crtl" in problems[2] and "ignored" in problems[2]


async def test_the_keymap_in_the_config_file_rebinds_a_key(make_app):
    write_config('[keymap]\ntoggle_panel = "f12"\nnot_a_binding = "f5"\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(120, 30)) as pilot:
        panel = app.screen.query_one(LeverPanel)
        assert panel.display
        await pilot.press("f2")
        assert panel.display  # f2 no longer toggles
        await pilot.press("f12")
        assert not panel.display
        assert any("not_a_binding" in str(n.message) for n in app._notifications)


async def test_a_broken_config_file_is_reported_and_the_app_starts(make_app):
    path = write_config('theme = "leverchat-light\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "leverchat-dark"
        assert any(str(path) in str(n.message) for n in app._notifications)
        app.theme = "leverchat-light"  # a theme change never overwrites a file it cannot read
        await pilot.pause()
    assert path.read_text(encoding="utf-8") == 'theme = "leverchat-light\n'


async def test_f1_shows_every_binding_with_its_id_and_current_keys(make_app):
    write_config('[keymap]\nregenerate = "f12"\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = help_rows(app.screen._keymap)
        for spec in KEYS:
            assert any(binding_id == spec.id for _keys, binding_id, _what in rows)
        assert ("f12", "regenerate") in [(keys, binding_id) for keys, binding_id, _ in rows]
        assert "f12" in frame_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_the_builtin_themes_load(tmp_path):
    themes = load_themes([REPO / "themes"])
    assert themes.problems == ()
    names = {theme.name: theme for theme in themes.themes}
    assert {"leverchat-dark", "leverchat-light", "leverchat-high-contrast"} <= set(names)
    assert not names["leverchat-light"].dark
    assert paths.builtin_themes_dir().resolve() == (REPO / "themes").resolve()


def test_a_theme_without_a_usable_primary_colour_is_reported_and_skipped(tmp_path):
    (tmp_path / "good.toml").write_text('[colors]\nprimary = "#123456"\n', encoding="utf-8")
    (tmp_path / "bad-colour.toml").write_text('[colors]\nprimary = "#12345z"\n', encoding="utf-8")
    (tmp_path / "junk.toml").write_bytes(b"\xff\xfe[[[")
    (tmp_path / "typo.toml").write_text('[colors]\nprimray = "#123456"\n', encoding="utf-8")
    (tmp_path / "[markup].toml").write_text(
        'name = "[/]x"\n[colors]\nprimary = "#123456"\n', encoding="utf-8"
    )
    themes = load_themes([tmp_path])
    assert [theme.name for theme in themes.themes] == ["good"]
    joined = "\n".join(themes.problems)
    assert "bad-colour.toml: [colors] primary = '#12345z' is not a colour" in joined
    assert "junk.toml" in joined
    assert "typo.toml: [colors] primray: unknown colour name" in joined
    assert "typo.toml: [colors] primary is required" in joined
    assert "[markup].toml: the theme needs a name" in joined


def test_one_bad_entry_is_skipped_and_the_rest_of_the_theme_kept(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'dark = false\ncolour = "red"\n[colors]\nprimary = "#123456"\naccent = "#zzzzzz"\n'
        'surface = "#222222"\nglow = "#ffffff"\n[variables]\n"footer-key-foreground" = "#5fafff"\n'
        "bad-variable = 3\n",
        encoding="utf-8",
    )
    themes = load_themes([tmp_path])
    (theme,) = themes.themes
    assert (theme.name, theme.dark, theme.primary, theme.surface, theme.accent) == (
        "mine",
        False,
        "#123456",
        "#222222",
        None,
    )
    assert theme.variables == {"footer-key-foreground": "#5fafff"}
    assert sorted(themes.problems) == sorted(
        [
            f"{path}: unknown key 'colour' (known: name, dark, colors, variables); entry skipped",
            f"{path}: [colors] accent = '#zzzzzz' is not a colour "
            '(use "#rrggbb", "rgb(r,g,b)" or a name); entry skipped',
            f"{path}: [colors] glow: unknown colour name (known: primary, secondary, warning, "
            "error, success, accent, foreground, background, surface, panel, boost); "
            "entry skipped",
            f"{path}: [variables] bad-variable must be a string, not 3; entry skipped",
        ]
    )


async def test_a_copied_builtin_theme_is_named_after_its_file(make_app):
    user_themes = paths.user_themes_dir()
    user_themes.mkdir(parents=True)
    source = REPO / "themes" / "leverchat-light.toml"
    (user_themes / "mine.toml").write_bytes(source.read_bytes())
    write_config('theme = "mine"\n')
    app = make_app(config=load_config(), themes=load_themes([REPO / "themes", user_themes]))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        assert not app.current_theme.dark


def test_a_duplicate_theme_name_is_warned_about(tmp_path):
    builtin, user = tmp_path / "builtin", tmp_path / "user"
    builtin.mkdir()
    user.mkdir()
    (builtin / "calm.toml").write_text('[colors]\nprimary = "#111111"\n', encoding="utf-8")
    (user / "mine.toml").write_text(
        'name = "calm"\n[colors]\nprimary = "#222222"\n', encoding="utf-8"
    )
    themes = load_themes([builtin, user])
    assert [(theme.name, theme.primary) for theme in themes.themes] == [("calm", "#222222")]
    assert themes.problems == (
        f"{user / 'mine.toml'}: theme 'calm' replaces the one in {builtin / 'calm.toml'}; to "
        "add a theme of its own instead, remove its name line (it is then called 'mine')",
    )


async def test_a_user_theme_is_offered_and_the_chosen_theme_is_remembered(make_app):
    user_themes = paths.user_themes_dir()
    user_themes.mkdir(parents=True)
    (user_themes / "mine.toml").write_text(
        'name = "mine"\ndark = false\n[colors]\nprimary = "#aa0000"\n', encoding="utf-8"
    )
    (user_themes / "broken.toml").write_text('[colors]\nprimary = "red-ish"\n', encoding="utf-8")
    app = make_app(themes=load_themes([REPO / "themes", user_themes]))
    async with app.run_test(size=(100, 30)) as pilot:
        assert "mine" in app.available_themes
        assert any("broken.toml" in str(n.message) for n in app._notifications)
        app.theme = "mine"
        await pilot.pause()
    assert read_toml(paths.config_file())["theme"] == "mine"
    app = make_app(config=load_config(), themes=load_themes([REPO / "themes", user_themes]))
    async with app.run_test(size=(100, 30)):
        assert app.theme == "mine"


async def test_an_unknown_theme_falls_back_to_the_default(make_app):
    app = make_app(theme="no-such-theme")
    async with app.run_test(size=(100, 30)):
        assert app.theme == "leverchat-dark"
        assert any("no-such-theme" in str(n.message) for n in app._notifications)


def test_remember_theme_keeps_the_other_settings():
    path = write_config('[keymap]\nhelp = "f10"\n')
    assert remember_theme(load_config(), "leverchat-light") is None
    data = read_toml(path)
    assert data == {"keymap": {"help": "f10"}, "theme": "leverchat-light"}


async def test_the_chat_screen_is_the_default(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)):
        chat_screen(app)


async def test_a_theme_given_on_the_command_line_is_remembered(make_app):
    app = make_app(theme="leverchat-high-contrast")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "leverchat-high-contrast"
    assert read_toml(paths.config_file())["theme"] == "leverchat-high-contrast"
