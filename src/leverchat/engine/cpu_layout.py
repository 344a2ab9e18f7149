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

Probing takes ~0.7 s per load of the bundled model, so the decisions are kept in a small JSON
file in the user cache (``cpu-layouts.json``), per machine (CPU model, torch version, thread
count) and per weight shape and dtype: the decision depends on nothing else (not on the
weights' values), so a model sharing shapes with one seen before loads without probing too.
A damaged or unreadable file is ignored and rewritten. Weight-only int8/int4 layers are not
``nn.Linear`` and keep the packed layout their kernels need: this applies to float weights only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
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
    cached: bool = False


_CACHE_FORMAT = 1
# Machines kept in the cache file (a laptop seen with several thread counts, several torches).
_CACHE_MACHINES = 16


def tune_linear_layouts(model: Any, cache_file: Path | None = None) -> list[LayoutChoice]:
    """Measure both layouts for every distinct Linear weight shape of ``model`` (on the CPU)
    and store each group of weights in the faster one. Returns what was measured (or, for
    shapes ``cache_file`` already knows on this machine, what was measured before)."""
    import torch

    machine = machine_key()
    known = _read_cache(cache_file).get(machine, {}) if cache_file is not None else {}
    learned: dict[str, dict[str, Any]] = {}

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
            shape_key = f"{rows}x{columns}:{str(dtype).removeprefix('torch.')}"
            decision = _cached_decision(known.get(shape_key))
            if decision is not None:
                row_major, column_major, switched = decision
            else:
                probe = _probe_set(weights)
                row_major = _time_one_row(probe)
                column_major = _time_one_row([_column_major(weight) for weight in probe])
                switched = row_major / column_major >= MIN_SPEEDUP
                learned[shape_key] = {
                    "row_major_us": row_major,
                    "column_major_us": column_major,
                    "switched": switched,
                }
            if switched:
                for weight in weights:
                    weight.data = _column_major(weight.data)
            choices.append(
                LayoutChoice(
                    (rows, columns),
                    len(weights),
                    row_major,
                    column_major,
                    switched,
                    cached=decision is not None,
                )
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
    if cache_file is not None and learned:
        _remember(cache_file, machine, learned)
    return choices


def machine_key() -> str:
    """What a layout decision depends on besides the shape: CPU model, torch, threads."""
    import torch

    return f"{_cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _read_cache(cache_file: Path) -> dict[str, dict[str, Any]]:
    """The machines' decisions in ``cache_file``; empty when missing or damaged (it is then
    rewritten by the next probe)."""
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as error:
        log.warning("Ignoring the damaged CPU layout cache %s: %s", cache_file, error)
        return {}
    machines = data.get("machines") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return {}
    if not isinstance(machines, dict):
        return {}
    return {key: value for key, value in machines.items() if isinstance(value, dict)}


def _cached_decision(entry: Any) -> tuple[float, float, bool] | None:
    if not isinstance(entry, dict):
        return None
    row, column, switched = (entry.get(k) for k in ("row_major_us", "column_major_us", "switched"))
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (row, column))
    if not numbers or not isinstance(switched, bool):
        return None
    return float(row), float(column), switched  # type: ignore[arg-type]


def _remember(cache_file: Path, machine: str, learned: dict[str, dict[str, Any]]) -> None:
    """Add ``learned`` to the file, atomically; a cache that cannot be written is only slower."""
    machines = _read_cache(cache_file)
    entry = {**machines.pop(machine, {}), **learned}
    machines[machine] = entry  # most recent last: the oldest machines are dropped first
    while len(machines) > _CACHE_MACHINES:
        machines.pop(next(iter(machines)))
    temporary = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"format": _CACHE_FORMAT, "machines": machines}, indent=1)
        temporary.write_text(text + "\n", encoding="utf-8")
        temporary.replace(cache_file)
    except OSError as error:
        log.info("Cannot write the CPU layout cache %s: %s", cache_file, error)
        with contextlib.suppress(OSError):
            temporary.unlink()


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
