"""Fixtures for the TUI tests: a scripted engine, profile folders, and an app factory."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from scripted_engine import ScriptedEngine

from leverchat.profiles import ProfileStore
from leverchat.ui.app import LeverChatApp
from leverchat.ui.config import load_config
from leverchat.ui.history_session import HistorySession
from leverchat.ui.themes import load_themes

REPO = Path(__file__).resolve().parents[2]

DEFAULT_PROFILE = """\
name = "default"
description = "A helpful assistant"
system_prompt = "You are a helpful assistant."

[levers]
temperature = 0.7
"""

PIRATE_PROFILE = """\
name = "pirate"
description = "Talks like a pirate"
system_prompt = "You are a pirate. Answer like one."

[levers]
temperature = 1.1
top_p = 0.9
"""


@pytest.fixture(autouse=True)
def predictable_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app picks a reply's seed when the seed lever is unset: 1234, 1235, ... in tests, so
    screens and snapshots do not change from run to run."""
    import itertools

    import leverchat.ui.reply_lifecycle as reply_lifecycle

    seeds = itertools.count(1234)
    monkeypatch.setattr(reply_lifecycle, "random_seed", lambda: next(seeds))


@pytest.fixture
def builtin_profiles(tmp_path: Path) -> Path:
    folder = tmp_path / "builtin_profiles"
    folder.mkdir()
    (folder / "default.toml").write_text(DEFAULT_PROFILE, encoding="utf-8")
    (folder / "pirate.toml").write_text(PIRATE_PROFILE, encoding="utf-8")
    return folder


@pytest.fixture
def profile_store(tmp_path: Path, builtin_profiles: Path) -> ProfileStore:
    return ProfileStore(tmp_path / "user_profiles", builtin_dir=builtin_profiles)


@pytest.fixture
def engine() -> Iterator[ScriptedEngine]:
    scripted = ScriptedEngine()
    yield scripted
    scripted.close()


AppFactory = Callable[..., LeverChatApp]


@pytest.fixture
def make_app(engine: ScriptedEngine, profile_store: ProfileStore) -> AppFactory:
    """An app on the scripted engine, the test profile store and the repository's themes."""

    def factory(**options: Any) -> LeverChatApp:
        options.setdefault("profile_store", profile_store)
        options.setdefault("themes", load_themes([REPO / "themes"]))
        options.setdefault("config", load_config())
        return LeverChatApp(options.pop("engine", engine), **options)

    return factory


@pytest.fixture
def real_engine_app(
    make_app: AppFactory, tmp_path: Path
) -> Iterator[Callable[[Path], tuple[LeverChatApp, HistorySession]]]:
    """The app on the real engine (EngineThread) loading ``model_dir`` on the CPU, with a
    history in ``tmp_path``: returns the app and its history; both are closed after the test."""
    from leverchat.engine.types import ModelSpec
    from leverchat.engine.worker import EngineThread
    from leverchat.history import HistoryStore

    built: list[tuple[EngineThread, HistorySession]] = []

    def build(model_dir: Path) -> tuple[LeverChatApp, HistorySession]:
        engine = EngineThread()
        history = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
        built.append((engine, history))
        spec = ModelSpec(source=str(model_dir), device="cpu")
        return make_app(engine=engine, history=history, model_spec=spec), history

    yield build
    for engine, history in built:
        engine.close()
        history.close()


async def wait_for(pilot: Any, predicate: Callable[[], bool], what: str, steps: int = 500) -> None:
    """Let the app run until ``predicate()`` holds (a generous bound, not a timing assert)."""
    for _ in range(steps):
        if predicate():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never happened: {what}")


def chat_screen(app: LeverChatApp) -> Any:
    from leverchat.ui.screens.chat import ChatScreen

    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen


async def send(pilot: Any, text: str) -> None:
    """Type ``text`` into the prompt and press Enter."""
    screen = chat_screen(pilot.app)
    screen.prompt.focus()
    await pilot.pause()  # let the focus land before the key goes to the focused widget
    screen.prompt.insert(text)
    await pilot.press("enter")


async def reply_done(pilot: Any) -> None:
    screen = chat_screen(pilot.app)
    await wait_for(pilot, lambda: not screen.streaming, "the reply finished")
    await pilot.pause()


def frame_text(app: LeverChatApp) -> str:
    """The text of the current frame, line by line, as the terminal would show it."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)
