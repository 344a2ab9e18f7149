"""The quantised linear layers: weight-only int8 and int4, computed by torch's own kernels.

Each holds its weight packed for torch's weight-only matmuls; activations stay in floating
point (bfloat16, which those kernels take: with float32 activations the CPU int8 kernel has no
fast path and runs ~10x slower, measured).

- int8: per-output-channel symmetric scales, ``aten._weight_int8pack_mm`` (CPU, and CUDA
  where this torch build has it).
- int4: group-wise asymmetric scales (groups of 32 inputs, the block size of GGUF's Q4
  types, so a Q4_0/Q4_1 file's grid is recovered), ``aten._weight_int4pack_mm_for_cpu`` on
  the CPU and ``aten._weight_int4pack_mm`` (tinygemm) on CUDA.

quantize.py decides which layers become which; quant_store.py keeps their buffers on disk.
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

INT4_GROUP_SIZE: Final = 32
COMPUTE_DTYPE: Final = torch.bfloat16
# Quantise this many weights at a time (16 MB of float32 temporaries).
_QUANTIZE_BLOCK_ELEMENTS: Final = 4 * 1024 * 1024


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
        rows = x.reshape(-1, self.in_features)
        out = int8_product(rows, self.weight, self.scales, self.bias)
        return out.reshape(*x.shape[:-1], self.out_features)

    def dequantized(self, rows: int | None = None) -> torch.Tensor:
        """The weight the kernel computes with, in float32 (its first ``rows`` rows)."""
        return self.weight[:rows].float() * self.scales[:rows].float()[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def int8_product(
    rows: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``rows`` (2-D) times an int8 layer's weight, plus its bias, in ``rows``' dtype: the
    kernel takes bfloat16 activations (the layer's forward, and lean_step.py without it)."""
    out: torch.Tensor = torch.ops.aten._weight_int8pack_mm(rows.to(COMPUTE_DTYPE), weight, scales)
    out = out.to(rows.dtype)
    return out if bias is None else out + bias


def int4_product(
    rows: torch.Tensor,
    packed: torch.Tensor,
    group_size: int,
    scales_and_zeros: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    on_cuda: bool = False,
) -> torch.Tensor:
    """:func:`int8_product` for an int4 layer: tinygemm on CUDA, the CPU kernel elsewhere."""
    kernel = (
        torch.ops.aten._weight_int4pack_mm
        if on_cuda
        else torch.ops.aten._weight_int4pack_mm_for_cpu
    )
    out: torch.Tensor = kernel(rows.to(COMPUTE_DTYPE), packed, group_size, scales_and_zeros)
    out = out.to(rows.dtype)
    return out if bias is None else out + bias


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
        rows = x.reshape(-1, self.in_features)
        out = int4_product(
            rows,
            self.weight,
            self.group_size,
            self.scales_and_zeros,
            self.bias,
            on_cuda=self.on_cuda,
        )
        return out.reshape(*x.shape[:-1], self.out_features)

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
