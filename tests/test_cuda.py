"""The engine on a CUDA GPU: what a user with a GPU runs. Skipped without one;
``benchmarks/run_gpu.sh`` runs these with ``-m cuda`` on a lent GPU machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _greedy_ids(spec: ModelSpec, tokens: int = 8) -> tuple[tuple[int, ...], str]:
    loaded = load_model(spec)
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)
    levers = Levers(temperature=0.0, seed=1).with_value("max_new_tokens", tokens)
    request = GenerationRequest((ChatMessage("user", "Hello there"),), FixedLevers(levers))
    result = generator.run(request, None)
    assert result.error is None, result.error
    return result.token_ids, loaded.info.dtype


def test_auto_dtype_on_cuda_is_half_precision_and_generates(tiny_model_dir: Path) -> None:
    ids, dtype = _greedy_ids(ModelSpec(str(tiny_model_dir), device="cuda"))
    assert dtype in {"bfloat16", "float16"}
    assert len(ids) > 0


def test_float32_greedy_on_cuda_matches_the_cpu(tiny_model_dir: Path) -> None:
    on_gpu, _ = _greedy_ids(ModelSpec(str(tiny_model_dir), device="cuda", dtype="float32"))
    on_cpu, _ = _greedy_ids(ModelSpec(str(tiny_model_dir), device="cpu", dtype="float32"))
    # The tiny model's wide init keeps greedy choices far from ties, so the devices agree.
    assert on_gpu[:4] == on_cpu[:4]
