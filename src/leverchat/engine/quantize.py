"""Weight-only int8 and int4 quantisation of a model's linear layers, with torch's own kernels.

Decoding one token streams every weight from memory once, so fewer bytes per weight is
directly more tokens per second. Each ``nn.Linear`` is replaced by a small module holding its
weight packed for torch's weight-only matmuls; activations stay in floating point (bfloat16,
which those kernels take: with float32 activations the CPU int8 kernel has no fast path and
runs ~10x slower, measured).

- int8: per-output-channel symmetric scales, ``aten._weight_int8pack_mm`` (CPU, and CUDA
  where this torch build has it).
- int4: group-wise asymmetric scales (groups of 32 inputs, the block size of GGUF's Q4
  types, so a Q4_0/Q4_1 file's grid is recovered), ``aten._weight_int4pack_mm_for_cpu`` on
  the CPU and ``aten._weight_int4pack_mm`` (tinygemm) on CUDA.

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

log = logging.getLogger(__name__)

QUANTIZE_CHOICES: Final = ("auto", "none", "int8", "int4")
# GGML types of at most 4 bits a weight on a linear grid: int4's groups of 32 hold the blocks of
# Q4_0, Q4_1 and Q4_K exactly (bar the scales' rounding to bfloat16), and Q3_K/Q2_K have fewer
# levels than int4. The non-linear IQ types are not among them.
FOUR_BITS_OR_FEWER: Final = frozenset({"Q4_0", "Q4_1", "Q4_K", "Q3_K", "Q2_K"})
INT4_GROUP_SIZE: Final = 32
COMPUTE_DTYPE: Final = torch.bfloat16
# Quantise this many weights at a time (16 MB of float32 temporaries).
_QUANTIZE_BLOCK_ELEMENTS: Final = 4 * 1024 * 1024
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


class Int8WeightOnlyLinear(nn.Module):
    """``y = x @ (q * scale).T + bias`` with int8 ``q``, per output channel ``scale``."""

    weight: torch.Tensor
    scales: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        quantized, scales = int8_rows(linear.weight.detach())
        self.register_buffer("weight", quantized)
        self.register_buffer("scales", scales)
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_buffers(cls, buffers: dict[str, torch.Tensor]) -> Int8WeightOnlyLinear:
        """The layer whose buffers (as quant_store keeps them) are ``buffers``."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.out_features, layer.in_features = buffers["weight"].shape
        for name in ("weight", "scales", "bias"):
            layer.register_buffer(name, buffers.get(name))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(COMPUTE_DTYPE)
        out: torch.Tensor = torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scales)
        out = out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def dequantized(self, rows: int | None = None) -> torch.Tensor:
        """The weight the kernel computes with, in float32 (its first ``rows`` rows)."""
        return self.weight[:rows].float() * self.scales[:rows].float()[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row symmetric int8 of a 2-D ``weight``: ``(q, scales)``, ``weight ~ q * scales``.

    A block of rows at a time: a 128k-vocabulary output layer of a 1B model is 1 GB in float32,
    and the whole-tensor version held three such temporaries at once, several times the
    quantised model's own size at the peak of loading. The result is the same, row for row.
    """
    rows, columns = weight.shape
    quantized = torch.empty((rows, columns), dtype=torch.int8, device=weight.device)
    scales = torch.empty(rows, dtype=COMPUTE_DTYPE, device=weight.device)
    step = max(1, _QUANTIZE_BLOCK_ELEMENTS // max(1, columns))
    for start in range(0, rows, step):
        # A copy even when the weight is float32 already: the steps below work in place.
        block = weight[start : start + step].to(torch.float32, copy=True)
        # Rounded to the stored dtype first, so each weight is rounded to the grid actually used.
        block_scales = (block.abs().amax(dim=1) / 127).clamp(min=1e-12).to(COMPUTE_DTYPE)
        block.div_(block_scales.float()[:, None]).round_().clamp_(-128, 127)
        quantized[start : start + step] = block
        scales[start : start + step] = block_scales
    return quantized, scales


class Int4WeightOnlyLinear(nn.Module):
    """Group-wise asymmetric 4-bit weights: ``w = (q - 8) * scale + zero`` per group."""

    weight: torch.Tensor
    scales_and_zeros: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self, linear: nn.Linear, group_size: int = INT4_GROUP_SIZE, *, reference: bool = True
    ) -> None:
        """``reference``: also keep the de-quantised weight in float32, for the kernel check
        (only the first layer of each kind is checked; building it for every layer made each
        load of the bundled model ~0.8 s slower: 2.3-3.0 s against 1.5-2.2 s, 1 thread)."""
        super().__init__()
        weight = linear.weight.detach().float()
        rows, columns = weight.shape
        self.in_features = columns
        self.out_features = rows
        self.group_size = group_size
        self.on_cuda = weight.device.type == "cuda"
        groups = weight.reshape(rows, columns // group_size, group_size)
        low = groups.amin(dim=-1)
        high = groups.amax(dim=-1)
        # Scales and zero points rounded to the stored dtype first: the weights are rounded to
        # the grid the kernel uses.
        scales = ((high - low) / 15).clamp(min=1e-12).to(COMPUTE_DTYPE).float()
        zeros = (low + 8 * scales).to(COMPUTE_DTYPE).float()
        quantized = torch.round((groups - zeros[..., None]) / scales[..., None] + 8).clamp(0, 15)
        quantized = quantized.to(torch.int32).reshape(rows, columns)
        # (groups, out, 2): the layout both kernels take.
        scales_and_zeros = torch.stack([scales.t(), zeros.t()], dim=-1).to(COMPUTE_DTYPE)
        if self.on_cuda:
            pairs = (quantized[:, ::2] << 4 | quantized[:, 1::2]).to(torch.uint8)
            packed = torch.ops.aten._convert_weight_to_int4pack(pairs, _inner_k_tiles(columns))
        else:
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(quantized, 1)
        self.register_buffer("weight", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros.contiguous())
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        # For the self-check only; dropped once it passed.
        self._reference: torch.Tensor | None = None
        if reference:
            self._reference = (quantized - 8).float() * scales.repeat_interleave(
                group_size, dim=1
            ) + zeros.repeat_interleave(group_size, dim=1)

    @classmethod
    def from_buffers(
        cls, buffers: dict[str, torch.Tensor], in_features: int, group_size: int = INT4_GROUP_SIZE
    ) -> Int4WeightOnlyLinear:
        """The CPU layer whose buffers (as quant_store keeps them) are ``buffers``."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features = in_features
        layer.out_features = buffers["weight"].shape[0]
        layer.group_size = group_size
        layer.on_cuda = False
        layer._reference = None
        for name in ("weight", "scales_and_zeros", "bias"):
            layer.register_buffer(name, buffers.get(name))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(COMPUTE_DTYPE)
        out: torch.Tensor
        if self.on_cuda:
            out = torch.ops.aten._weight_int4pack_mm(
                rows, self.weight, self.group_size, self.scales_and_zeros
            )
        else:
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(
                rows, self.weight, self.group_size, self.scales_and_zeros
            )
        out = out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias

    def dequantized(self, rows: int | None = None) -> torch.Tensor:
        assert self._reference is not None
        return self._reference[:rows]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 groups of {self.group_size}"
        )


def _inner_k_tiles(columns: int) -> int:
    for tiles in (8, 4, 2):
        if columns % (tiles * 16) == 0:
            return tiles
    raise ValueError(f"{columns} inputs do not fit the int4 kernel's tiles")


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
    quantized_now = 0
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
            new = None
            if stored is not None and qualified in stored.names:
                new = _stored_layer(stored.layer(qualified), child)
                if type(new) not in trusted:
                    fresh = _quantized_layer(child, kind, working)
                    trusted[type(new)] = fresh is not None and _same_buffers(fresh, new)
                    if not trusted[type(new)]:
                        log.warning("%s holds other quantised layers: quantising again", store)
                        new, quantized_now = fresh, quantized_now + 1
                elif not trusted[type(new)]:
                    new = _quantized_layer(child, kind, working)
                    quantized_now += 1
            else:
                new = _quantized_layer(child, kind, working)
                quantized_now += 1
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


def _stored_layer(buffers: dict[str, torch.Tensor], linear: nn.Linear) -> Any:
    if "scales_and_zeros" in buffers:
        return Int4WeightOnlyLinear.from_buffers(buffers, linear.in_features)
    return Int8WeightOnlyLinear.from_buffers(buffers)


def _same_buffers(first: nn.Module, second: nn.Module) -> bool:
    """Whether two quantised layers hold the same tensors (so compute the same)."""
    if type(first) is not type(second):
        return False
    mine = dict(first.named_buffers(recurse=False))
    theirs = dict(second.named_buffers(recurse=False))
    return mine.keys() == theirs.keys() and all(
        (mine[key] is None and theirs[key] is None)
        or (
            mine[key] is not None
            and theirs[key] is not None
            and mine[key].dtype == theirs[key].dtype
            and torch.equal(mine[key], theirs[key])
        )
        for key in mine
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
