"""Weight-only int8 and int4 quantisation of a model's linear layers, with torch's own kernels
(the layers themselves are in quant_layers.py).

Decoding one token streams every weight from memory once, so fewer bytes per weight is
directly more tokens per second. :func:`quantize_model` replaces each ``nn.Linear`` by its
quantised version; :func:`default_method` says which one ``--quantize auto`` picks.

Before a layer is replaced the kernel is tried once on the device with a small product, and
compared with the de-quantised weight: where a kernel is missing or disagrees, the layer is
left as it is (and the label says so), never silently wrong. Replaces the older
``torch.ao.quantization.quantize_dynamic`` path, which torch is retiring: on the bundled model
it ran 72.8 tok/s against int8 weight-only's (see benchmarks/README.md, "Compact weights").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from leverchat.engine import page_release, quant_store
from leverchat.engine.quant_layers import (
    COMPUTE_DTYPE,
    INT4_GROUP_SIZE,
    Int4WeightOnlyLinear,
    Int8WeightOnlyLinear,
    int8_rows,
)

# Re-exported: the layers were defined here before quant_layers.py.
__all__ = [
    "COMPUTE_DTYPE",
    "INT4_GROUP_SIZE",
    "QUANTIZE_CHOICES",
    "Int4WeightOnlyLinear",
    "Int8WeightOnlyLinear",
    "QuantizeReport",
    "default_method",
    "int8_rows",
    "keep_float_parts_in",
    "quantize_model",
]

log = logging.getLogger(__name__)

QUANTIZE_CHOICES: Final = ("auto", "none", "int8", "int4")
# GGML types of at most 4 bits a weight on a linear grid: int4's groups of 32 hold the blocks of
# Q4_0, Q4_1 and Q4_K exactly (bar the scales' rounding to bfloat16), and Q3_K/Q2_K have fewer
# levels than int4. The non-linear IQ types are not among them.
FOUR_BITS_OR_FEWER: Final = frozenset({"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K"})
# Output rows of the first layer that the kernel check compares with the de-quantised weight.
_CHECKED_ROWS: Final = 512


@dataclass(frozen=True)
class QuantizeReport:
    """What was quantised: the method, layers replaced and layers left in floating point."""

    method: str
    replaced: int
    kept: int

    @property
    def label(self) -> str:
        if self.method == "none" or self.replaced == 0:
            return "none"
        kept = f", {self.kept} layers kept in float" if self.kept else ""
        return f"{self.method} weight-only{kept}"


def default_method(source_weight_type: str | None, device: torch.device) -> str:
    """The quantisation ``--quantize auto`` picks (the same on every device with a kernel;
    quantize_model keeps a layer in float where there is none).

    A GGUF of 4 bits a weight or fewer (Q4_0, Q4_1, Q4_K_M, Q3_K, Q2_K) loads as int4: its
    groups of 32 hold the file's own 4-bit grid, so nothing the file has is lost. On the bundled
    Q4_1 model int4 kept the answers better than int8 did (52 greedy replies, first 16 tokens:
    37 agreed with float32 and 28 with llama.cpp on the same file, int8 29 and 21; computing
    in bfloat16 alone 35 and 28), and decoded 1.5x faster. Other quantised GGUFs (Q8_0, Q6_K,
    Q5_K...) load as int8, which holds their grid more closely than 4 bits would. A float model
    (safetensors, or an F16/BF16/F32 GGUF) stays float. See benchmarks/README.md, "Compact
    weights"; ``--quantize`` overrides the choice.
    """
    del device
    if source_weight_type is None or source_weight_type in ("F32", "F16", "BF16"):
        return "none"
    return "int4" if source_weight_type in FOUR_BITS_OR_FEWER else "int8"


def quantize_model(
    model: Any,
    method: str,
    store: Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> QuantizeReport:
    """Replace every ``nn.Linear`` of ``model`` by its ``method`` ("int8"/"int4") weight-only
    version, in place. Layers the kernel cannot take here stay as they are (int4 falls back
    to int8 per layer where the shape does not fit its groups).

    ``store``: a quant_store file of this model's layers, used where it can be trusted (the
    first stored layer of each kind must equal what quantising it gives now) and rewritten
    whenever a layer had to be quantised. ``progress(fraction)`` is told how far it got (at
    most ~100 times: an 8B model's first load quantises for minutes)."""
    if method == "none":
        return QuantizeReport("none", 0, 0)
    if method not in ("int8", "int4"):
        raise ValueError(f"unknown quantisation {method!r}")
    replaced = kept = 0
    working: dict[tuple[str, str], bool] = {}  # (kind, device) -> the kernel passed its check
    output = _output_layer(model)
    stored = quant_store.read(store)
    # Per kind of stored layer (int8, int4): whether its first one equalled quantising now.
    trusted: dict[type, bool] = {}
    quantized_now = False
    layers: dict[str, Any] = {}
    # Weights still mapped from the file: each one's pages go once its layer is quantised, so
    # loading never holds the whole float model and its quantised copy at once.
    maps = page_release.weight_file_maps()
    total = sum(
        isinstance(module, nn.Linear) and module.weight.is_floating_point()
        for module in model.modules()
    )
    told = 0.0
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear) or not child.weight.is_floating_point():
                continue
            qualified = f"{parent_name}.{name}" if parent_name else name
            # The output layer picks every token: in 4 bits it changed the bundled model's
            # greedy replies far more than int8 did (llama.cpp keeps it at 6-8 bits too).
            kind = "int8" if method == "int4" and child is output else method
            candidate = None if stored is None else stored.layer(qualified, child.in_features)
            new, fresh = _trusted_or_fresh(candidate, trusted, child, kind, working, store)
            quantized_now = quantized_now or fresh
            if new is None:
                kept += 1
            else:
                setattr(parent, name, new)
                layers[qualified] = new
                page_release.release(child.weight, maps)
                page_release.trim_heap()
                replaced += 1
            done = (replaced + kept) / max(1, total)
            if progress is not None and (done - told >= 0.01 or done >= 1.0):
                told = done
                progress(done)
    if quantized_now:
        quant_store.write(store, layers)
    return QuantizeReport(method, replaced, kept)


def _trusted_or_fresh(
    candidate: Any,
    trusted: dict[type, bool],
    linear: nn.Linear,
    kind: str,
    working: dict[tuple[str, str], bool],
    store: Path | None,
) -> tuple[Any, bool]:
    """The layer to use and whether it was quantised now: the stored ``candidate`` where its
    kind is trusted (the first of a kind decides, by quantising that layer again)."""
    if candidate is None:
        return _quantized_layer(linear, kind, working), True
    if type(candidate) not in trusted:
        fresh = _quantized_layer(linear, kind, working)
        trusted[type(candidate)] = fresh is not None and _same_buffers(fresh, candidate)
        if trusted[type(candidate)]:
            return candidate, False
        log.warning("%s holds other quantised layers: quantising again", store)
        return fresh, True
    if trusted[type(candidate)]:
        return candidate, False
    return _quantized_layer(linear, kind, working), True


def _same_buffers(first: nn.Module, second: nn.Module) -> bool:
    """Whether two quantised layers hold the same tensors (so compute the same); a None
    buffer (no bias) is not listed by named_buffers."""
    mine = dict(first.named_buffers(recurse=False))
    theirs = dict(second.named_buffers(recurse=False))
    return (
        type(first) is type(second)
        and mine.keys() == theirs.keys()
        and all(
            mine[key].dtype == theirs[key].dtype and torch.equal(mine[key], theirs[key])
            for key in mine
        )
    )


def _output_layer(model: Any) -> Any:
    getter = getattr(model, "get_output_embeddings", None)
    return getter() if callable(getter) else None


def keep_float_parts_in(model: Any, dtype: torch.dtype) -> None:
    """Cast the parameters outside the quantised layers (embeddings, norms) to ``dtype``.

    On the CPU the residual stream, norms and attention ran slower in bfloat16 than in
    float32 (no native bfloat16 arithmetic here) and changed more greedy replies than int8
    weights did, so the quantised layers take bfloat16 inside and the rest stays float32.
    """
    for module in model.modules():
        if isinstance(module, Int8WeightOnlyLinear | Int4WeightOnlyLinear):
            continue
        if isinstance(module, nn.Embedding) and module.weight.is_floating_point():
            # A lookup reads one row a token: the table stays compact (for an 8B Llama its
            # 525M parameters are 1 GB in bfloat16, 2 GB in float32); its rows are cast.
            # It stays as loaded, often a view of the memory-mapped file: only the rows looked
            # up become resident (quantize_model released the pages the other layers read).
            module.register_forward_hook(_output_to(dtype))
            continue
        for parameter in module.parameters(recurse=False):
            if parameter.is_floating_point() and parameter.dtype != dtype:
                parameter.data = parameter.data.to(dtype)
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != dtype:
                setattr(module, name, buffer.to(dtype))


def _output_to(dtype: torch.dtype) -> Any:
    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output.to(dtype)

    return hook


def _quantized_layer(linear: nn.Linear, method: str, working: dict[tuple[str, str], bool]) -> Any:
    device = linear.weight.device
    kinds = ["int4", "int8"] if method == "int4" else ["int8"]
    for kind in kinds:
        if kind == "int4" and not _int4_fits(linear, device):
            continue
        key = (kind, str(device))
        if working.get(key) is False:
            continue
        try:
            with torch.no_grad():
                checked = key not in working
                layer: Any = (
                    Int4WeightOnlyLinear(linear, reference=checked)
                    if kind == "int4"
                    else Int8WeightOnlyLinear(linear)
                )
                if checked:
                    working[key] = _kernel_agrees(layer)
                    if not working[key]:
                        log.warning("The %s kernel is missing or wrong on %s", kind, device)
                        continue
        except (RuntimeError, NotImplementedError) as error:
            log.warning("No %s weight-only kernel on %s: %s", kind, device, error)
            working[key] = False
            continue
        if isinstance(layer, Int4WeightOnlyLinear):
            layer._reference = None
        return layer
    return None


def _int4_fits(linear: nn.Linear, device: torch.device) -> bool:
    columns = linear.in_features
    if columns % INT4_GROUP_SIZE:
        return False
    if device.type == "cuda":
        return columns % 32 == 0 and linear.out_features % 8 == 0
    return device.type == "cpu"


def _kernel_agrees(layer: Any) -> bool:
    """Run the kernel once on the device, against the de-quantised weight (in float32).

    Only the first rows are compared: de-quantising a whole 128k-vocabulary output layer (the
    first layer checked, often) took 2 GB of float32 and set the peak of loading a 1B model.
    """
    weight = layer.dequantized(_CHECKED_ROWS)
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(3, layer.in_features, generator=generator).to(weight.device)
    probe = probe.to(COMPUTE_DTYPE)
    with torch.no_grad():
        got = layer(probe).float()[:, :_CHECKED_ROWS]
        expected = probe.float() @ weight.t()
        if layer.bias is not None:
            expected = expected + layer.bias[:_CHECKED_ROWS].float()
    scale = expected.abs().max().item() + 1e-6
    return bool((got - expected).abs().max().item() <= 0.05 * scale)
