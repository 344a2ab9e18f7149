"""int8 linear layers for the CPU on fbgemm's dynamic kernel: int8 weights, int8 activations.

Decoding multiplies one row by every weight matrix. torch's weight-only int8 kernel
(``_weight_int8pack_mm``) takes bfloat16 activations and ran 2.5-4.5x slower than fbgemm's
int8 x int8 product (``quantized::linear_dynamic``, VNNI where the CPU has it) on every
Llama-3.2-1B shape measured here, one thread, same process, alternating (microseconds per
one-row product, two rounds each):

| weight (out x in) | weight-only int8 | fbgemm dynamic int8 | float32 | bfloat16 |
|---|---|---|---|---|
| 2048 x 2048 (q, o) | 920, 750 | 328, 328 | 1825, 2194 | 1530, 1578 |
| 512 x 2048 (k, v) | 233, 211 | 129, 137 | 267, 304 | 416, 401 |
| 8192 x 2048 (gate, up) | 3536, 6951 | 778, 1462 | 13673, 13949 | 10369, 9590 |
| 2048 x 8192 (down) | 3817, 3985 | 1447, 1136 | 11171, 9258 | 9049, 13633 |
| 128256 x 2048 (output) | 104965, 97124 | 44968, 43746 | 186333, 202209 | 156731, 143763 |

and on the bundled 135M model's shapes 1.6-3.5x, except 192 x 576 (k, v: 45 against 35 µs,
where the call's fixed cost dominates). The weights are the same per-row int8 grid as the
weight-only layer (``quantize.int8_rows``), packed once for fbgemm (no second copy is kept:
the packed matrix is all that stays). The activations are quantised to 8 bits per call, with
one scale per call: in decoding that is one scale per token. It also takes float32 input as
it is, where the weight-only kernel needed a cast to bfloat16 and back around every layer.

torch marks its quantised tensors as deprecated; where these operators are missing (a
future torch, a build without fbgemm) the layer cannot be built and quantize.py falls back
to the weight-only kernel, as it does where a kernel's self-check fails.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import torch
from torch import nn

# fbgemm's AVX2 path can saturate a 16-bit intermediate with full 8-bit activations; 7 bits
# avoid it on every CPU (torch's own default for dynamic quantisation on fbgemm).
REDUCE_RANGE: Final = True
_CHECK_ROWS: Final = 512


class Int8DynamicLinear(nn.Module):
    """``y = quantize(x) @ (q * scale).T + bias`` on fbgemm, int8 ``q`` per output channel."""

    def __init__(self, linear: nn.Linear, quantized: torch.Tensor, scales: torch.Tensor) -> None:
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        zero_points = torch.zeros(quantized.shape[0], dtype=torch.long)
        with warnings.catch_warnings():
            # "quantized tensor creation functions ... are deprecated": see the module's note.
            warnings.simplefilter("ignore", UserWarning)
            weight = torch._make_per_channel_quantized_tensor(
                quantized, scales.double(), zero_points, 0
            )
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed: Any = torch.ops.quantized.linear_prepack(weight, bias)
        self.has_bias = bias is not None
        # A few rows of the grid, for the kernel's self-check (quantize._kernel_agrees).
        self._check = (quantized[:_CHECK_ROWS].clone(), scales[:_CHECK_ROWS].float().clone())
        self._check_bias = None if bias is None else bias[:_CHECK_ROWS].clone()

    @property
    def bias(self) -> torch.Tensor | None:
        return self._check_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        out: torch.Tensor = torch.ops.quantized.linear_dynamic(rows, self._packed, REDUCE_RANGE)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def dequantized(self, rows: int | None = None) -> torch.Tensor:
        """The first rows of the weight grid in float32 (at most the 512 kept for checks)."""
        quantized, scales = self._check
        return quantized[:rows].float() * scales[:rows, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 dynamic"


def build(linear: nn.Linear) -> Int8DynamicLinear:
    """The fbgemm layer for a CPU ``linear``; RuntimeError/NotImplementedError if this torch
    has no such kernel."""
    from leverchat.engine.quantize import int8_rows

    if linear.weight.device.type != "cpu":
        raise NotImplementedError("fbgemm's int8 kernel runs on the CPU only")
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        raise NotImplementedError("this torch has no fbgemm")
    if torch.backends.quantized.engine != "fbgemm":
        torch.backends.quantized.engine = "fbgemm"
    quantized, scales = int8_rows(linear.weight.detach())
    return Int8DynamicLinear(linear, quantized, scales)
