"""Shared fixtures: isolated user folders for every test, tiny models built once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tinymodel import build_tiny_model_dir

# The fake OpenAI server's fixtures (`fake`, `no_api_key`) for every test module.
pytest_plugins = ("remote_fakes",)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads or writes the real ~/.config, ~/.local/share, ~/.cache."""
    home = tmp_path / "leverchat-home"
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        monkeypatch.setenv(f"LEVERCHAT_{name}_DIR", str(home / name.lower()))
    # Never reach for a model hub from a test.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a ChatML chat template, saved as a normal HF folder."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-chat"), chat_template=True)


@pytest.fixture(scope="session")
def tiny_plain_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of model without a chat template (instruction format)."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-plain"), chat_template=False)


@pytest.fixture(scope="session")
def tiny_long_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with a 4096-token context that (almost) never ends a reply by itself: a
    reply streams long enough to be stopped by hand."""
    return build_tiny_model_dir(
        tmp_path_factory.mktemp("tiny-long"),
        chat_template=True,
        max_position_embeddings=4096,
        rarely_ends=True,
    )
