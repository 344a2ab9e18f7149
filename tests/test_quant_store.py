"""Quantised layers kept beside a converted GGUF: later loads use them, never blindly."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from leverchat.engine import quantize
from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers
from tinygguf import build_tiny_gguf

GREEDY = Levers(temperature=0.0, max_new_tokens=12)
QUANTIZE_LAYER = quantize._quantized_layer


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Q4_0: int4 by default, with the output layer in int8 (both kinds are stored).
    return build_tiny_gguf(tmp_path_factory.mktemp("store-gguf"), tensor_type="Q4_0")


def load(gguf_path: Path, counts: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Load the GGUF, counting the layers quantised from float weights."""
    counts.clear()

    def counting(linear: Any, kind: str, working: Any) -> Any:
        counts[kind] = counts.get(kind, 0) + 1
        return QUANTIZE_LAYER(linear, kind, working)

    monkeypatch.setattr(quantize, "_quantized_layer", counting)
    return load_model(ModelSpec(str(gguf_path), device="cpu"))


def reply(loaded: Any) -> list[int]:
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, 256)
    request = GenerationRequest((ChatMessage("user", "Hello there"),), FixedLevers(GREEDY))
    return list(generator.run(request, None).token_ids)


def store_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("converted/*/quantized/*.safetensors"))


def test_the_second_load_uses_the_stored_layers_and_answers_the_same(
    gguf_path: Path, isolated_user_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: dict[str, int] = {}
    first = load(gguf_path, counts, monkeypatch)
    quantised_first = sum(counts.values())
    assert first.info.quantization == "int4 weight-only"
    assert counts == {"int4": quantised_first - 1, "int8": 1}
    (stored,) = store_files(isolated_user_dirs / "cache")
    assert stored.name.startswith("int4-cpu-torch")

    second = load(gguf_path, counts, monkeypatch)
    # Only the first layer of each kind, to check that the stored ones are what quantising
    # gives now.
    assert counts == {"int4": 1, "int8": 1}
    assert second.info == first.info
    assert reply(second) == reply(first)
    kinds = {type(module).__name__ for module in second.model.modules()}
    assert {"Int4WeightOnlyLinear", "Int8WeightOnlyLinear"} <= kinds


def test_a_damaged_store_is_quantised_again_and_rewritten(
    gguf_path: Path,
    isolated_user_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    counts: dict[str, int] = {}
    expected = reply(load(gguf_path, counts, monkeypatch))
    layers = sum(counts.values())
    (stored,) = store_files(isolated_user_dirs / "cache")
    data = bytearray(stored.read_bytes())
    data[-64:] = bytes(64)  # same size, other bytes: the fingerprint changes, the CRC too
    stored.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="leverchat.engine.quant_store"):
        loaded = load(gguf_path, counts, monkeypatch)
    assert "changed since it was written" in caplog.text
    assert sum(counts.values()) == layers
    assert reply(loaded) == expected
    load(gguf_path, counts, monkeypatch)  # rewritten: trusted again
    assert counts == {"int4": 1, "int8": 1}


def test_stored_layers_that_differ_from_quantising_now_are_not_used(
    gguf_path: Path,
    isolated_user_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As after a change to the quantisation code: a valid file, recorded as written, whose
    layers are not what quantising the float weights gives now."""
    from safetensors.torch import load_file, save_file

    from leverchat.engine import cache_digest

    counts: dict[str, int] = {}
    expected = reply(load(gguf_path, counts, monkeypatch))
    layers = sum(counts.values())
    (stored,) = store_files(isolated_user_dirs / "cache")
    tensors = load_file(str(stored))
    for key in tensors:
        if key.endswith("scales_and_zeros"):
            tensors[key] = tensors[key] * 2
    save_file(tensors, str(stored))
    record_path = stored.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record.update(
        digest=cache_digest.file_digest(stored), verified=cache_digest.fingerprint(stored)
    )
    record_path.write_text(json.dumps(record))

    with caplog.at_level(logging.WARNING, logger="leverchat.engine.quantize"):
        loaded = load(gguf_path, counts, monkeypatch)
    assert "holds other quantised layers" in caplog.text
    assert sum(counts.values()) == layers
    assert reply(loaded) == expected


def test_a_users_model_folder_is_never_written(tiny_model_dir: Path) -> None:
    before = sorted(path.name for path in tiny_model_dir.rglob("*"))
    loaded = load_model(ModelSpec(str(tiny_model_dir), device="cpu", quantize="int8"))
    assert loaded.info.quantization == "int8 weight-only"
    assert sorted(path.name for path in tiny_model_dir.rglob("*")) == before


def test_a_read_only_cache_still_loads(
    gguf_path: Path, isolated_user_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: dict[str, int] = {}
    expected = reply(load(gguf_path, counts, monkeypatch))
    (stored,) = store_files(isolated_user_dirs / "cache")
    folder = stored.parent
    for path in folder.iterdir():
        path.unlink()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("safetensors.torch.save_file", refuse)
    loaded = load(gguf_path, counts, monkeypatch)
    assert reply(loaded) == expected
    assert not store_files(isolated_user_dirs / "cache")


def test_files_of_another_torch_version_are_removed_when_a_new_one_is_written(
    gguf_path: Path, isolated_user_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts: dict[str, int] = {}
    load(gguf_path, counts, monkeypatch)
    (stored,) = store_files(isolated_user_dirs / "cache")
    old = stored.with_name("int4-cpu-torch2.1.0-v1.safetensors")
    stored.rename(old)
    stored.with_suffix(".json").rename(old.with_suffix(".json"))
    other_method = stored.with_name("int8-cpu-torch2.1.0-v1.safetensors")
    other_method.write_bytes(b"kept: another method")
    load(gguf_path, counts, monkeypatch)
    assert store_files(isolated_user_dirs / "cache") == sorted([stored, other_method])
    assert not old.with_suffix(".json").exists()
