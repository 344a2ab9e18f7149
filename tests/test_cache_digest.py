"""Damage that keeps every size (bytes overwritten in place) is caught before the model is used.

Warm starts stay fast: a file is read for its checksum only when its stat fingerprint changed.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat import paths
from leverchat.engine import cache_digest, gguf_cache
from leverchat.engine.gguf_cache import MANIFEST_NAME, ensure_converted, entry_problem
from leverchat.engine.loading import load_model
from leverchat.engine.types import EngineError, LoadProgress, ModelSpec
from tinygguf import build_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf-digest"))


def overwrite_inside(path: Path, seed: int, count: int = 64) -> None:
    """Random bytes written in the middle of the file, its size unchanged."""
    size = path.stat().st_size
    generator = random.Random(seed)
    with path.open("r+b") as stream:
        stream.seek(size // 2 + generator.randrange(size // 4))
        stream.write(bytes(generator.randrange(256) for _ in range(count)))


def count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    converted: list[Path] = []
    original = gguf_cache._convert_into

    def counting(gguf_path: Path, destination: Path, report: Any) -> None:
        converted.append(gguf_path)
        original(gguf_path, destination, report)

    monkeypatch.setattr(gguf_cache, "_convert_into", counting)
    return converted


@pytest.mark.parametrize("seed", [1, 2])
def test_weights_damaged_in_place_are_detected_said_and_rebuilt(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    folder = ensure_converted(tiny_gguf).folder
    weights = folder / "model.safetensors"
    good = load_model(ModelSpec(str(tiny_gguf)))
    reference = {name: tensor.clone() for name, tensor in good.model.state_dict().items()}
    size = weights.stat().st_size
    overwrite_inside(weights, seed)
    assert weights.stat().st_size == size

    problem = entry_problem(folder)
    assert problem is not None and "model.safetensors was changed after conversion" in problem

    conversions = count_conversions(monkeypatch)
    messages: list[str] = []
    loaded = load_model(ModelSpec(str(tiny_gguf)), lambda p: messages.append(p.message))
    assert len(conversions) == 1
    assert any("is damaged (model.safetensors was changed" in text for text in messages)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert entry_problem(folder) is None


def test_an_unchanged_entry_is_not_read_on_a_warm_start(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_converted(tiny_gguf).folder
    assert entry_problem(folder) is None

    def no_reading(path: Path) -> str:
        raise AssertionError(f"{path} was read although its fingerprint is unchanged")

    monkeypatch.setattr(cache_digest, "file_digest", no_reading)
    assert entry_problem(folder) is None


def test_a_touched_but_intact_file_is_verified_once_then_trusted(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_converted(tiny_gguf).folder
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(1, 1))  # a backup restore or a copy changes the stat, not the bytes
    reads: list[str] = []
    original = cache_digest.file_digest

    def counting(path: Path) -> str:
        reads.append(path.name)
        return original(path)

    monkeypatch.setattr(cache_digest, "file_digest", counting)
    assert entry_problem(folder) is None
    assert reads == ["model.safetensors"]
    assert entry_problem(folder) is None
    assert reads == ["model.safetensors"]  # the new fingerprint was recorded


def test_an_entry_from_before_digests_gets_them_and_is_then_checked(tiny_gguf: Path) -> None:
    folder = ensure_converted(tiny_gguf).folder
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    del manifest["digests"], manifest["verified"]
    manifest_path.write_text(json.dumps(manifest))
    assert entry_problem(folder) is None
    assert set(json.loads(manifest_path.read_text())["digests"]) == set(manifest["files"])
    overwrite_inside(folder / "tokenizer.json", seed=3, count=8)
    assert "tokenizer.json was changed" in (entry_problem(folder) or "")


def test_a_read_only_cache_says_not_writable_not_disk_space(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = paths.converted_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    conversions = count_conversions(monkeypatch)
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.parent == root:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(EngineError) as caught:
        ensure_converted(tiny_gguf)
    message = str(caught.value)
    assert f"{root} is not writable (Read-only file system)" in message
    assert "space" not in message
    assert conversions == []  # refused before the long conversion


def test_a_full_disk_still_says_free_some_space(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = paths.converted_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    real_mkdir = Path.mkdir

    def full(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.parent == root:
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(EngineError, match=r"No space left on device\. Free some space"):
        ensure_converted(tiny_gguf)
    shutil.rmtree(root, ignore_errors=True)


def test_progress_names_damage_as_the_reason_for_converting(tiny_gguf: Path) -> None:
    folder = ensure_converted(tiny_gguf).folder
    overwrite_inside(folder / "model.safetensors", seed=9)
    seen: list[LoadProgress] = []
    load_model(ModelSpec(str(tiny_gguf)), seen.append)
    assert any("damaged" in progress.message for progress in seen)


def test_a_damaged_entry_that_cannot_be_removed_is_named(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_converted(tiny_gguf).folder
    overwrite_inside(folder / "model.safetensors", seed=5)

    def refuse(path: Path) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(gguf_cache, "discard_entry", refuse)
    with pytest.raises(EngineError) as caught:
        ensure_converted(tiny_gguf)
    message = str(caught.value)
    assert f"{folder} is damaged (model.safetensors was changed" in message
    assert "cannot be removed: Permission denied" in message
