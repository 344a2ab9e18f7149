"""int8 on the CPU: fbgemm's int8 x int8 kernel, and the weight-only fallback (issue #12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from leverchat.engine import quantize_cpu
from leverchat.engine.loading import load_model
from leverchat.engine.quantize import Int8WeightOnlyLinear, int8_rows, quantize_model
from leverchat.engine.quantize_cpu import Int8DynamicLinear
from leverchat.engine.types import ModelSpec


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [1, 7])
def test_the_dynamic_layer_computes_its_int8_grid(bias: bool, rows: int) -> None:
    torch.manual_seed(rows)
    original = nn.Linear(96, 700, bias=bias)  # more rows than the self-check keeps
    layer = quantize_cpu.build(original)
    quantized, scales = int8_rows(original.weight.detach())
    grid = quantized.float() * scales.float()[:, None]
    x = torch.randn(2, rows, 96)
    expected = x @ grid.t() + (original.bias.detach() if bias else 0)
    got = layer(x)
    assert got.shape == (2, rows, 700) and got.dtype == torch.float32
    # The activations are quantised to 7 bits per call: well within 2 % of the output range.
    assert (got - expected).abs().max() <= 0.02 * expected.abs().max()
    # The same grid as the weight-only layer: the check rows are exactly it.
    assert torch.equal(layer.dequantized(), grid[:512])


def test_bfloat16_input_gives_bfloat16_output() -> None:
    layer = quantize_cpu.build(nn.Linear(64, 32))
    out = layer(torch.randn(3, 64, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (3, 32)


def test_without_fbgemm_int8_falls_back_to_weight_only(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    """A torch without the (deprecated) quantised operators still loads int8, and says which."""

    def missing(linear: nn.Linear) -> Int8DynamicLinear:
        raise NotImplementedError("this torch has no fbgemm")

    monkeypatch.setattr(quantize_cpu, "build", missing)
    model = nn.Sequential(nn.Linear(64, 16), nn.Linear(64, 16))
    report = quantize_model(model, "int8")
    assert all(isinstance(module, Int8WeightOnlyLinear) for module in model)
    assert report.label == "int8 weight-only"
    loaded = load_model(ModelSpec(str(tiny_model_dir), device="cpu", quantize="int8"))
    assert loaded.info.quantization == "int8 weight-only"


def test_on_the_cpu_int8_labels_itself_dynamic(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(str(tiny_model_dir), device="cpu", quantize="int8"))
    assert loaded.info.quantization == "int8 dynamic"
    assert loaded.info.provenance_name.endswith("[int8 dynamic]")
    assert any(isinstance(module, Int8DynamicLinear) for module in loaded.model.modules())
