"""The TUI starts whatever the user's files are: deeply nested, a FIFO, /dev/zero, unreadable.

Each bad file is reported in a notice that names it; everything else still works.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, chat_screen
from leverchat import paths
from leverchat.profiles import ProfileStore
from leverchat.ui.config import load_config
from leverchat.ui.themes import load_themes
from leverchat.ui.widgets.lever_panel import LeverPanel

DEEP_ARRAY = "x = " + "[" * 50_000 + "]" * 50_000 + "\n"  # 100 KB, under every size cap


def notices(app: Any) -> str:
    return "\n".join(str(notification.message) for notification in app._notifications)


def without_hanging(function: Any) -> Any:
    """Run ``function`` in a thread; a FIFO read that blocks would never return, so a hang
    fails the test instead of freezing the suite."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(60)
    assert result, f"{function} blocked (a FIFO was opened for reading?)"
    return result[0]


async def test_deeply_nested_profile_theme_and_config_are_reported_and_the_app_starts(
    make_app: Any, profile_store: ProfileStore
) -> None:
    profile_store.directory.mkdir(parents=True)
    deep_profile = profile_store.directory / "deep.toml"
    deep_profile.write_text(DEEP_ARRAY, encoding="utf-8")
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(DEEP_ARRAY, encoding="utf-8")
    themes = paths.user_themes_dir()
    themes.mkdir(parents=True)
    (themes / "deep.toml").write_text(
        '[colors]\nprimary = "#123456"\nx = ' + "{a=" * 30_000 + "1" + "}" * 30_000 + "\n",
        encoding="utf-8",
    )
    app = make_app(config=load_config(), themes=load_themes([REPO / "themes", themes]))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        shown = notices(app)
        for path in (deep_profile, config, themes / "deep.toml"):
            assert f"{path}: nests too deeply" in shown
        panel = chat_screen(app).query_one(LeverPanel)
        assert panel is not None
        assert profile_store.load("pirate").profile.levers.temperature == 1.1
    assert deep_profile.read_text(encoding="utf-8") == DEEP_ARRAY


async def test_fifo_and_dev_zero_config_and_theme_do_not_block_the_start(
    make_app: Any, tmp_path: Path
) -> None:
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(config)
    themes = paths.user_themes_dir()
    themes.mkdir(parents=True)
    os.mkfifo(themes / "pipe.toml")
    (themes / "zero.toml").symlink_to("/dev/zero")
    loaded_config = without_hanging(load_config)
    loaded_themes = without_hanging(lambda: load_themes([REPO / "themes", themes]))
    app = make_app(config=loaded_config, themes=loaded_themes)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        shown = notices(app)
        assert f"{config}: is a named pipe (FIFO), not a regular file" in shown
        assert f"{themes / 'pipe.toml'}: is a named pipe (FIFO), not a regular file" in shown
        assert f"{themes / 'zero.toml'}: is a character device (like /dev/zero)" in shown
        assert app.theme == "leverchat-dark"


def _deny_profiles_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Any:
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)


async def test_an_unreadable_profiles_folder_is_reported_and_the_app_starts(
    make_app: Any, profile_store: ProfileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile_store.directory.mkdir(parents=True)
    _deny_profiles_folder(monkeypatch, profile_store.directory)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        shown = notices(app)
        assert f"cannot read the profiles in {profile_store.directory}" in shown
        assert "Permission denied" in shown
        assert chat_screen(app).profiles.profile.name == "default"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
async def test_a_profiles_folder_without_read_permission_is_reported(
    make_app: Any, profile_store: ProfileStore
) -> None:
    folder = profile_store.directory
    folder.mkdir(parents=True)
    folder.chmod(0)
    try:
        app = make_app()
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            assert f"cannot read the profiles in {folder}" in notices(app)
    finally:
        folder.chmod(0o755)
