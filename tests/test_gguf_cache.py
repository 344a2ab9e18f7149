"""The GGUF conversion cache, on a tiny GGUF file written in the test session.

A GGUF file is converted once; later loads use the cache; a damaged entry is detected and
rebuilt, never used; a crash mid-conversion leaves nothing behind; two processes converting at
once leave one good entry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat import paths
from leverchat.engine import gguf_cache
from leverchat.engine.gguf_cache import (
    MANIFEST_NAME,
    cache_key,
    ensure_converted,
    entry_folder,
    entry_problem,
)
from leverchat.engine.loading import load_model
from leverchat.engine.types import EngineError, LoadProgress, ModelSpec
from tinygguf import build_tiny_gguf

PROMPT = [{"role": "user", "content": "Hello, how are you today?"}]


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture
def gguf_copy(tiny_gguf: Path, tmp_path: Path) -> Path:
    """A private copy: tests that edit or touch the file do not change the session's one."""
    copy = tmp_path / "copy" / tiny_gguf.name
    copy.parent.mkdir()
    shutil.copy2(tiny_gguf, copy)
    return copy


def count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    converted: list[Path] = []
    original = gguf_cache._convert_into

    def counting(gguf_path: Path, destination: Path, report: Any) -> None:
        converted.append(gguf_path)
        original(gguf_path, destination, report)

    monkeypatch.setattr(gguf_cache, "_convert_into", counting)
    return converted


def test_converts_once_then_reuses_the_entry(tiny_gguf: Path) -> None:
    first = ensure_converted(tiny_gguf)
    second = ensure_converted(tiny_gguf)

    assert first.converted_now
    assert not second.converted_now
    assert second.folder == first.folder
    assert first.folder.parent == paths.converted_models_dir()
    assert entry_problem(first.folder) is None
    names = {path.name for path in first.folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST_NAME} <= names
    config = json.loads((first.folder / "config.json").read_text())
    assert "quantization_config" not in config
    # Nothing half-built is left next to the entry.
    assert [path.name for path in first.folder.parent.iterdir()] == [first.folder.name]


def test_cached_model_equals_the_gguf_model(tiny_gguf: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    direct = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    direct_tokenizer = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    cached = load_model(ModelSpec(str(tiny_gguf), quantize="none"))

    prompt = direct_tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, tokenize=False
    )
    assert (
        cached.tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
        == prompt
    )
    ids = direct_tokenizer(prompt, return_tensors="pt")["input_ids"]
    assert cached.tokenizer(prompt, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    with torch.no_grad():
        assert torch.equal(cached.model(ids).logits, direct.eval()(ids).logits)
    assert cached.model.generation_config.eos_token_id == direct.generation_config.eos_token_id
    assert cached.info.name == tiny_gguf.stem
    assert cached.info.has_chat_template
    assert cached.info.context_window == 256


def test_second_load_does_not_convert(tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conversions = count_conversions(monkeypatch)
    events: list[LoadProgress] = []
    load_model(ModelSpec(str(tiny_gguf)), events.append)
    assert len(conversions) == 1
    converting = [event for event in events if event.stage == "converting"]
    assert converting, "the first load reports its conversion"
    assert "first start only" in converting[0].message
    fractions = [event.fraction for event in converting if event.fraction is not None]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0

    events.clear()
    load_model(ModelSpec(str(tiny_gguf)), events.append)
    assert len(conversions) == 1
    assert "converting" not in {event.stage for event in events}


def test_conversion_prints_nothing(tiny_gguf: Path, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    load_model(ModelSpec(str(tiny_gguf)))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


# --- damaged entries -----------------------------------------------------------------------------


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with weights.open("r+b") as stream:
        stream.truncate(weights.stat().st_size // 2)


def _delete_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").unlink()


def _delete_manifest(folder: Path) -> None:
    (folder / MANIFEST_NAME).unlink()


def _garble_manifest(folder: Path) -> None:
    (folder / MANIFEST_NAME).write_bytes(b"\x00\xff{{")


def _old_format_manifest(folder: Path) -> None:
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["format"] = 0
    manifest_path.write_text(json.dumps(manifest))


def _grow_config(folder: Path) -> None:
    with (folder / "config.json").open("a") as stream:
        stream.write(" ")


def _empty_folder(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


@pytest.mark.parametrize(
    "damage",
    [
        _truncate_weights,
        _delete_tokenizer,
        _delete_manifest,
        _garble_manifest,
        _old_format_manifest,
        _grow_config,
        _empty_folder,
    ],
)
def test_damaged_entry_is_detected_and_rebuilt(
    tiny_gguf: Path, damage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_converted(tiny_gguf).folder
    damage(folder)
    assert entry_problem(folder) is not None

    conversions = count_conversions(monkeypatch)
    loaded = load_model(ModelSpec(str(tiny_gguf)))

    assert len(conversions) == 1
    assert entry_problem(folder) is None
    assert loaded.info.has_chat_template


def test_entry_that_passes_checks_but_fails_to_load_is_rebuilt(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same sizes, broken content: the load fails, so the entry is discarded and rebuilt.

    (The content digest now catches this before loading; the load-failure path stays as the
    second line of defence and is exercised by removing the digest check.)
    """
    folder = ensure_converted(tiny_gguf).folder
    config_path = folder / "config.json"
    config_path.write_bytes(b"!" * config_path.stat().st_size)
    assert "config.json was changed after conversion" in (entry_problem(folder) or "")
    monkeypatch.setattr(gguf_cache.cache_digest, "content_problem", lambda *args: None)
    assert entry_problem(folder) is None

    conversions = count_conversions(monkeypatch)
    loaded = load_model(ModelSpec(str(tiny_gguf)))

    assert len(conversions) == 1
    assert json.loads(config_path.read_text())["model_type"] == "llama"
    assert loaded.info.context_window == 256


def test_interrupted_conversion_leaves_no_entry(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: Any) -> None:
        raise KeyboardInterrupt  # as if the user hit Ctrl+C before the manifest was written

    monkeypatch.setattr(gguf_cache, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        ensure_converted(tiny_gguf)
    root = paths.converted_models_dir()
    assert list(root.iterdir()) == []

    monkeypatch.undo()
    assert ensure_converted(tiny_gguf).converted_now


def test_leftovers_of_killed_conversions_are_ignored_then_cleaned(tiny_gguf: Path) -> None:
    root = paths.converted_models_dir()
    final = entry_folder(tiny_gguf)
    recent = root / f".tmp-{final.name}-999999-recent"
    stale = root / f".tmp-{final.name}-999998-stale"
    for leftover in (recent, stale):
        leftover.mkdir(parents=True)
        (leftover / "model.safetensors").write_bytes(b"partial")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (day_ago, day_ago))

    entry = ensure_converted(tiny_gguf)

    assert entry.converted_now
    assert entry.folder == final
    assert recent.exists(), "a recent temporary folder may belong to a running conversion"
    assert not stale.exists()


def test_losing_a_conversion_race_keeps_the_winners_entry(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = ensure_converted(tiny_gguf, cache_root=tmp_path / "other").folder
    final = entry_folder(tiny_gguf)
    original = gguf_cache._convert_into

    def slow_loser(gguf_path: Path, destination: Path, report: Any) -> None:
        original(gguf_path, destination, report)
        shutil.copytree(winner, final)  # the other process renames its entry in first

    monkeypatch.setattr(gguf_cache, "_convert_into", slow_loser)
    entry = ensure_converted(tiny_gguf)

    assert entry.folder == final
    assert entry_problem(final) is None
    assert [path.name for path in final.parent.iterdir()] == [final.name]


def test_two_processes_converting_at_once_leave_one_good_entry(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    cache_root = tmp_path / "shared-cache"
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import transformers, torch\n"
        "from leverchat.engine.gguf_cache import ensure_converted\n"
        "go = Path(sys.argv[3])\n"
        "while not go.exists():\n"
        "    time.sleep(0.01)\n"
        "entry = ensure_converted(Path(sys.argv[1]), cache_root=Path(sys.argv[2]))\n"
        "print(entry.folder)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tiny_gguf), str(cache_root), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [process.communicate(timeout=180) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    folders = {Path(out.strip()) for out, _err in outputs}
    assert len(folders) == 1
    (folder,) = folders
    assert entry_problem(folder) is None
    assert [path.name for path in cache_root.iterdir()] == [folder.name]


# --- identity ---------------------------------------------------------------------------------


def test_key_follows_the_files_identity(gguf_copy: Path, tmp_path: Path) -> None:
    key = cache_key(gguf_copy)
    assert cache_key(gguf_copy) == key

    elsewhere = tmp_path / "elsewhere.gguf"
    shutil.copy2(gguf_copy, elsewhere)
    assert cache_key(elsewhere) != key

    stat = gguf_copy.stat()
    os.utime(gguf_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert cache_key(gguf_copy) != key


def test_a_rewritten_file_with_the_same_size_and_mtime_gets_a_new_entry(gguf_copy: Path) -> None:
    first = ensure_converted(gguf_copy)
    stat = gguf_copy.stat()
    data = bytearray(gguf_copy.read_bytes())
    data[-1] ^= 0xFF  # the last weight byte changes; size and mtime are restored below
    gguf_copy.write_bytes(bytes(data))
    os.utime(gguf_copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    second = ensure_converted(gguf_copy)
    assert second.converted_now
    assert second.folder != first.folder


# --- bad GGUF files -------------------------------------------------------------------------------


def test_a_damaged_gguf_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))
    # Refused from its header, before any conversion, in words that say what it is.
    with pytest.raises(EngineError, match=r"is not a valid GGUF file") as caught:
        load_model(ModelSpec(str(broken)))
    assert str(broken) in str(caught.value)
    converted = paths.converted_models_dir()
    assert not converted.exists() or not any(converted.iterdir())


def test_a_truncated_gguf_file_is_named(gguf_copy: Path) -> None:
    data = gguf_copy.read_bytes()
    gguf_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match=r"Cannot convert") as caught:
        load_model(ModelSpec(str(gguf_copy)))
    assert str(gguf_copy) in str(caught.value)


def test_an_unsupported_gguf_architecture_is_named(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(path, "frobnicator")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(EngineError, match=r"frobnicator"):
        load_model(ModelSpec(str(path)))


def test_not_enough_disk_space_is_reported_before_writing(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_usage = shutil.disk_usage

    def nearly_full(path: Any) -> Any:
        usage = real_usage(path)
        return type(usage)(usage.total, usage.total - 1000, 1000)

    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    with pytest.raises(EngineError, match=r"Not enough disk space.*LEVERCHAT_CACHE_DIR"):
        ensure_converted(tiny_gguf)
    assert list(paths.converted_models_dir().iterdir()) == []


def test_a_load_failure_that_is_not_the_files_keeps_the_entry(
    tiny_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory says nothing about the cache entry: no pointless 30 s reconversion."""
    from leverchat.engine import loading

    entry = ensure_converted(tiny_gguf)
    conversions = count_conversions(monkeypatch)

    def out_of_memory(*args: Any, **kwargs: Any) -> Any:
        raise EngineError("Not enough memory on cuda:0")

    monkeypatch.setattr(loading, "_load_weights", out_of_memory)
    with pytest.raises(EngineError, match="Not enough memory"):
        load_model(ModelSpec(str(tiny_gguf)))
    assert conversions == []
    assert entry_problem(entry.folder) is None
