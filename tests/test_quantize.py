"""Weight-only int8/int4 quantisation: exact to its own grid, applied where a kernel exists,
chosen by default from the source's weight type, recorded and shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from leverchat.engine import quantize
from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model, quantization_method
from leverchat.engine.quantize import (
    Int4WeightOnlyLinear,
    Int8WeightOnlyLinear,
    default_method,
    quantize_model,
)
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    ModelInfo,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers
from tinygguf import build_tiny_gguf

CPU = torch.device("cpu")
GREEDY = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=12)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def linear(rows: int, columns: int, *, bias: bool = False, device: str = "cpu") -> nn.Linear:
    torch.manual_seed(rows * 1000 + columns)
    layer = nn.Linear(columns, rows, bias=bias)
    return layer.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias", [False, True])
def test_int8_layer_computes_its_dequantised_weight(device: str, bias: bool) -> None:
    original = linear(96, 64, bias=bias, device=device)
    layer = Int8WeightOnlyLinear(original)
    assert layer.weight.dtype == torch.int8
    x = torch.randn(2, 5, 64, device=device)
    expected = x @ layer.dequantized().t() + (original.bias if bias else 0)
    got = layer(x)
    assert got.shape == (2, 5, 96) and got.dtype == x.dtype
    torch.testing.assert_close(got, expected.detach(), rtol=0.02, atol=0.02)
    # ...and the grid is close to the float weight (per-channel int8: 1/254 of the range).
    error = (layer.dequantized() - original.weight).abs().max()
    assert error <= original.weight.abs().max() / 200


@pytest.mark.parametrize("device", DEVICES)
def test_int4_layer_computes_its_dequantised_weight(device: str) -> None:
    original = linear(64, 128, bias=True, device=device)
    layer = Int4WeightOnlyLinear(original)
    assert layer.weight.dtype in (torch.uint8, torch.int32)
    x = torch.randn(3, 128, device=device)
    expected = x @ layer.dequantized().t() + original.bias
    torch.testing.assert_close(layer(x), expected.detach(), rtol=0.02, atol=0.03)
    group_range = original.weight.detach().reshape(64, 4, 32)
    step = (group_range.amax(-1) - group_range.amin(-1)).max() / 15
    assert (layer.dequantized() - original.weight).abs().max() <= step / 2 + 1e-4


def test_a_4_bit_grid_is_kept_exactly() -> None:
    """A weight already on a Q4-like grid (16 levels a group of 32) comes back unchanged."""
    torch.manual_seed(0)
    levels = torch.randint(0, 16, (32, 64)).float()
    levels[:, ::32] = 0  # every group uses its lowest and highest level
    levels[:, 1::32] = 15
    # Scales and offsets bfloat16 holds exactly (the kernels keep them in bfloat16).
    choices = torch.tensor([1 / 64, 1 / 32, 3 / 128, 5 / 256])
    scales = choices[torch.randint(0, 4, (32, 2))].repeat_interleave(32, dim=1)
    weight = levels * scales - 0.25
    original = nn.Linear(64, 32, bias=False)
    with torch.no_grad():
        original.weight.copy_(weight)
    layer = Int4WeightOnlyLinear(original)
    torch.testing.assert_close(layer.dequantized(), weight, rtol=0, atol=1e-5)


def tiny_model(tiny_model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()


@pytest.mark.parametrize(("method", "kind"), [("int8", Int8WeightOnlyLinear), ("int4", None)])
def test_every_linear_layer_is_replaced(tiny_model_dir: Path, method: str, kind: Any) -> None:
    model = tiny_model(tiny_model_dir)
    count = sum(isinstance(module, nn.Linear) for module in model.modules())
    report = quantize_model(model, method)
    assert report.replaced == count and report.kept == 0
    assert report.label == f"{method} weight-only"
    assert not any(isinstance(module, nn.Linear) for module in model.modules())
    if method == "int4":
        # The tiny model's 32-wide inputs fit int4's groups of 32: every layer is int4 but
        # the output layer, kept at int8 (it picks every token).
        assert isinstance(model.lm_head, Int8WeightOnlyLinear)
        assert all(
            isinstance(module, Int4WeightOnlyLinear)
            for name, module in model.named_modules()
            if isinstance(module, Int4WeightOnlyLinear | Int8WeightOnlyLinear) and name != "lm_head"
        )


def test_int4_falls_back_to_int8_for_shapes_it_cannot_take() -> None:
    model = nn.Sequential(nn.Linear(64, 16), nn.Linear(48, 16))  # 48: not a multiple of 32
    report = quantize_model(model, "int4")
    assert isinstance(model[0], Int4WeightOnlyLinear)
    assert isinstance(model[1], Int8WeightOnlyLinear)
    assert report.replaced == 2


def test_a_missing_kernel_keeps_the_layer_in_float_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(self: Any, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("no kernel for this backend")

    monkeypatch.setattr(Int8WeightOnlyLinear, "forward", missing)
    model = nn.Sequential(nn.Linear(64, 16), nn.Linear(64, 16))
    report = quantize_model(model, "int8")
    assert all(isinstance(module, nn.Linear) for module in model)
    assert report.label == "none"


def test_a_wrong_kernel_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    original_forward = Int8WeightOnlyLinear.forward

    def wrong(self: Any, x: torch.Tensor) -> torch.Tensor:
        return original_forward(self, x) * 2

    monkeypatch.setattr(Int8WeightOnlyLinear, "forward", wrong)
    model = nn.Sequential(nn.Linear(64, 16))
    assert quantize_model(model, "int8").replaced == 0
    assert isinstance(model[0], nn.Linear)


@pytest.mark.parametrize(
    ("weight_type", "device", "expected"),
    [
        ("Q4_1", "cpu", "int4"),
        ("Q4_0", "cpu", "int4"),
        ("Q4_K", "cuda", "int4"),
        ("Q3_K", "cpu", "int4"),
        ("Q5_K", "cpu", "int8"),
        ("IQ4_XS", "cpu", "int8"),
        ("Q8_0", "cpu", "int8"),
        ("Q6_K", "cuda", "int8"),
        ("F16", "cuda", "none"),
        ("F32", "cpu", "none"),
        ("BF16", "cpu", "none"),
        (None, "cpu", "none"),
        (None, "cuda", "none"),
    ],
)
def test_auto_picks_from_the_source_and_device(
    weight_type: str | None, device: str, expected: str
) -> None:
    assert default_method(weight_type, torch.device(device)) == expected


def test_an_unknown_quantisation_is_named() -> None:
    with pytest.raises(EngineError, match=r"'int3'.*auto, none, int8, int4"):
        quantization_method(ModelSpec(quantize="int3"), CPU)


def test_auto_does_not_quantise_a_compiled_model() -> None:
    assert quantization_method(ModelSpec(compile=True), CPU) == "none"
    assert quantization_method(ModelSpec(quantize="none"), CPU) == "none"
    assert quantization_method(ModelSpec(quantize="int4"), CPU) == "int4"


def greedy(loaded: Any, text: str = "Hello") -> Any:
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, 256)
    request = GenerationRequest(messages=(ChatMessage("user", text),), levers=FixedLevers(GREEDY))
    return generator.run(request, None)


@pytest.mark.parametrize(
    ("tensor_type", "quantization"),
    [("Q4_0", "int4 weight-only"), ("Q8_0", "int8 weight-only")],
)
def test_a_quantised_gguf_loads_quantised_by_default(
    tmp_path: Path, tensor_type: str, quantization: str
) -> None:
    gguf_path = build_tiny_gguf(tmp_path, tensor_type=tensor_type)
    loaded = load_model(ModelSpec(str(gguf_path), device="cpu"))
    assert loaded.info.quantization == quantization
    assert loaded.info.dtype == "float32"  # the parts outside the quantised layers
    result = greedy(loaded)
    assert result.stop_reason is not StopReason.ERROR and result.token_ids


def test_int8_on_request_says_so_while_loading(tiny_model_dir: Path) -> None:
    from leverchat.engine.types import LoadProgress

    events: list[LoadProgress] = []
    spec = ModelSpec(str(tiny_model_dir), device="cpu", quantize="int8")
    loaded = load_model(spec, events.append)
    assert loaded.info.quantization == "int8 weight-only"
    stages = list(dict.fromkeys(event.stage for event in events))
    assert stages == ["locating", "loading tokenizer", "loading weights", "quantizing", "ready"]
    fractions = [event.fraction for event in events if event.stage == "quantizing"]
    assert fractions[0] is None and fractions[-1] == 1.0  # told how far it got
    assert fractions[1:] == sorted(fractions[1:])
    assert "int8 weight-only" in events[-1].message


def test_a_float_model_is_left_as_it_is_by_default(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(str(tiny_model_dir), device="cpu"))
    assert loaded.info.quantization == "none"
    assert loaded.info.dtype == "float32"


def test_none_opts_out(tmp_path: Path) -> None:
    gguf_path = build_tiny_gguf(tmp_path, tensor_type="Q4_0")
    loaded = load_model(ModelSpec(str(gguf_path), device="cpu", quantize="none"))
    assert loaded.info.quantization == "none"
    assert any(isinstance(module, nn.Linear) for module in loaded.model.modules())


def test_provenance_names_the_quantisation() -> None:
    info = ModelInfo("SmolLM2", "x", "cpu", "bfloat16", 2048, True, quantization="int8 weight-only")
    assert info.provenance_name == "SmolLM2 [int8 weight-only]"
    plain = ModelInfo("SmolLM2", "x", "cpu", "float32", 2048, True)
    assert plain.provenance_name == "SmolLM2"


def test_the_status_line_shows_the_quantisation() -> None:
    from leverchat.ui.widgets.status_line import StatusState, render_status

    state = StatusState(model="SmolLM2", device="cpu", quantization="int4 weight-only")
    assert "SmolLM2 cpu int4 weight-only" in render_status(state).plain
    assert "SmolLM2 cpu int4" in render_status(state, compact=True).plain
    plain = StatusState(model="SmolLM2", device="cpu", quantization="none")
    assert "SmolLM2 cpu ·" in render_status(plain).plain


def test_the_option_is_offered_on_the_command_line() -> None:
    import argparse

    from leverchat.commands.options import add_model_options, model_spec_from_args

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    assert model_spec_from_args(parser.parse_args(["--quantize", "int4"])).quantize == "int4"
    assert model_spec_from_args(parser.parse_args([])).quantize == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--quantize", "int2"])


def test_quantize_module_needs_no_textual() -> None:
    assert "textual" not in quantize.__dict__


def test_on_the_cpu_the_float_parts_compute_in_float32(tiny_model_dir: Path) -> None:
    """Norms and the residual stream in float32 (faster here, and closer to the float model);
    the embedding table stays compact in bfloat16, its rows cast."""
    loaded = load_model(ModelSpec(str(tiny_model_dir), device="cpu", quantize="int8"))
    model = loaded.model
    assert loaded.info.dtype == "float32"
    assert model.model.norm.weight.dtype == torch.float32
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    rows = model.get_input_embeddings()(torch.tensor([[1, 2, 3]]))
    assert rows.dtype == torch.float32
