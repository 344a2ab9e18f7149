"""Store each CPU linear layer's weight in the memory layout that decodes fastest here.

Decoding multiplies one row of activations by every weight matrix, which is bound by how fast
the matrix streams from memory. torch keeps a Linear weight as (out, in), row-major, and
on this machine's MKL the one-row product over that layout ran at ~10 GB/s; over the same
matrix stored transposed, in column-major order (``weight.T.contiguous().T``: same shape and
values, other strides) it ran up to 1.9x faster for the wide matrices (the MLP's gate and up
projections 1.65x, the 49,152-row output layer 1.91x), and slower for others (the MLP's down
projection 0.77x). Which layout wins depends on the shape and the CPU's BLAS, so it is
measured at load, once per distinct weight shape, and a layout is switched only when it is
clearly faster. Prefill (many rows) runs at the same speed either way.

The weights keep their values, shape and dtype; only their strides change, in place, so tied
weights (an output layer sharing the input embeddings) stay tied and no memory is added.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Switch a layout only when the probe says it is at least this much faster: a noisy machine
# must not flip layouts for nothing.
MIN_SPEEDUP = 1.1
_PROBE_PASSES = 3
# Probe with at least this many bytes of a group's weights (or all of them).
_PROBE_BYTES = 48 * 1024 * 1024


@dataclass(frozen=True)
class LayoutChoice:
    """What the probe measured for one weight shape (microseconds per one-row product)."""

    shape: tuple[int, int]
    layers: int
    row_major_us: float
    column_major_us: float
    switched: bool


def tune_linear_layouts(model: Any) -> list[LayoutChoice]:
    """Measure both layouts for every distinct Linear weight shape of ``model`` (on the CPU)
    and store each group of weights in the faster one. Returns what was measured."""
    import torch

    groups: dict[tuple[int, int, torch.dtype], list[torch.Tensor]] = {}
    seen: set[int] = set()
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or not isinstance(weight, torch.Tensor):
            continue
        if weight.device.type != "cpu" or not weight.is_floating_point() or id(weight) in seen:
            continue  # tied weights appear twice; quantised layers are not nn.Linear
        seen.add(id(weight))
        rows, columns = weight.shape
        groups.setdefault((rows, columns, weight.dtype), []).append(weight)
    choices: list[LayoutChoice] = []
    with torch.inference_mode():
        for (rows, columns, dtype), weights in groups.items():
            if not all(weight.is_contiguous() for weight in weights):
                continue  # already column-major, or some other layout: leave them
            probe = _probe_set(weights)
            row_major = _time_one_row(probe)
            column_major = _time_one_row([_column_major(weight) for weight in probe])
            switched = row_major / column_major >= MIN_SPEEDUP
            if switched:
                for weight in weights:
                    weight.data = _column_major(weight.data)
            choices.append(
                LayoutChoice((rows, columns), len(weights), row_major, column_major, switched)
            )
            log.info(
                "linear %dx%d (%s, %d layers): row-major %.0f us, column-major %.0f us%s",
                rows,
                columns,
                dtype,
                len(weights),
                row_major,
                column_major,
                " -> column-major" if switched else "",
            )
    return choices


def _probe_set(weights: list[Any]) -> list[Any]:
    """Enough of a group's weights to outgrow the CPU's caches, as decoding streams them all
    from memory (one small matrix timed again and again would sit in the cache)."""
    chosen: list[Any] = []
    size = 0
    for weight in weights:
        chosen.append(weight.detach())
        size += weight.numel() * weight.element_size()
        if size >= _PROBE_BYTES:
            break
    return chosen


def _column_major(weight: Any) -> Any:
    return weight.T.contiguous().T


def _time_one_row(weights: list[Any]) -> float:
    """Microseconds per one-row product, the fastest of a few passes over ``weights``."""
    import torch

    row = torch.randn(1, 1, weights[0].shape[1], dtype=weights[0].dtype)
    torch.nn.functional.linear(row, weights[0])  # first call: allocations, kernel choice
    best = float("inf")
    for _ in range(_PROBE_PASSES):
        started = time.perf_counter()
        for weight in weights:
            torch.nn.functional.linear(row, weight)
        best = min(best, time.perf_counter() - started)
    return best / len(weights) * 1e6
