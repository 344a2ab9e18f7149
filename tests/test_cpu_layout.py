"""CPU weight layouts: switched per shape when faster, never changing what the model says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from leverchat.engine import cpu_layout
from leverchat.engine.loading import load_model
from leverchat.engine.types import ModelSpec


def fresh_model(folder: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def logits(model: Any) -> torch.Tensor:
    ids = torch.tensor([[5, 17, 42, 9, 100, 3]])
    with torch.inference_mode():
        return model(input_ids=ids).logits


def column_major_is(speed: float) -> Any:
    """A probe where a column-major layout takes ``speed`` times the row-major time."""

    def probe(weights: list[torch.Tensor]) -> float:
        return 100.0 if weights[0].is_contiguous() else 100.0 * speed

    return probe


def test_faster_layout_is_adopted_and_the_model_says_the_same(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fresh_model(tiny_model_dir)
    before = logits(model)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    monkeypatch.setattr(cpu_layout, "_time_one_row", column_major_is(0.5))
    choices = cpu_layout.tune_linear_layouts(model)
    assert choices and all(choice.switched for choice in choices)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(not m.weight.is_contiguous() and m.weight.T.is_contiguous() for m in linears)
    assert sum(choice.layers for choice in choices) == len({id(m.weight) for m in linears})
    # Tied weights stay one tensor: nothing is copied twice, the embedding sees the same.
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    torch.testing.assert_close(logits(model), before, rtol=1e-4, atol=1e-5)


def test_a_layout_that_is_not_clearly_faster_is_left_alone(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fresh_model(tiny_model_dir)
    monkeypatch.setattr(cpu_layout, "_time_one_row", column_major_is(0.95))  # 5 %: noise
    choices = cpu_layout.tune_linear_layouts(model)
    assert choices and not any(choice.switched for choice in choices)
    assert all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, torch.nn.Linear))


def test_tuning_twice_changes_nothing_more(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = fresh_model(tiny_model_dir)
    monkeypatch.setattr(cpu_layout, "_time_one_row", column_major_is(0.5))
    cpu_layout.tune_linear_layouts(model)
    assert cpu_layout.tune_linear_layouts(model) == []  # already column-major: not probed


def test_the_real_probe_measures_every_shape(tiny_model_dir: Path) -> None:
    model = fresh_model(tiny_model_dir)
    before = logits(model)
    choices = cpu_layout.tune_linear_layouts(model)
    shapes = {tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    assert {choice.shape for choice in choices} == shapes
    assert all(choice.row_major_us > 0 and choice.column_major_us > 0 for choice in choices)
    torch.testing.assert_close(logits(model), before, rtol=1e-4, atol=1e-5)


def test_cpu_float_loads_are_tuned_but_quantised_and_compiled_are_not(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(
        "leverchat.engine.loading.tune_linear_layouts", lambda model, cache: calls.append(model)
    )
    source = str(tiny_model_dir)
    loaded = load_model(ModelSpec(source=source, device="cpu", quantize="none"))
    assert calls == [loaded.model]
    load_model(ModelSpec(source=source, device="cpu", quantize="int4"))
    load_model(ModelSpec(source=source, device="cpu", quantize="int8"))
    load_model(ModelSpec(source=source, device="cpu", compile=True))
    assert len(calls) == 1
