"""Forward-only decode rate of the bundled model under CPU threading, attention, dtype and
quantisation settings: which one should the engine use?

OpenMP settings only take effect before torch is imported, so each variant runs in its own
child process (alternating, ``--runs`` rounds): torch's default (one thread per core, GNU
OpenMP's spinning wait), ``OMP_NUM_THREADS=1``, ``OMP_WAIT_POLICY=PASSIVE``, eager (matmul)
attention instead of SDPA, and, with passive waiting, bfloat16 weights, int8 dynamic
quantisation of every Linear (``--quantize int8``) and the weights in their loaded row-major
layout (``passive_row_major``: without the per-shape layout choice of engine/cpu_layout.py;
every other variant loads as leverchat does). Each child loads the
model, prefills a fixed prompt and times ``--tokens`` single-token forward passes with an
argmax (no sampling), so the numbers isolate the forward pass. No target.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import _common

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "omp_threads_1": {"OMP_NUM_THREADS": "1"},
    "omp_passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "eager_attention": {"LEVERCHAT_BENCH_ATTENTION": "eager"},
    "passive_bfloat16": {"OMP_WAIT_POLICY": "PASSIVE", "LEVERCHAT_BENCH_DTYPE": "bfloat16"},
    "passive_int8_dynamic": {"OMP_WAIT_POLICY": "PASSIVE", "LEVERCHAT_BENCH_QUANTIZE": "int8"},
    # The weights as loaded, without engine/cpu_layout.py's per-shape layout choice.
    "passive_row_major": {"OMP_WAIT_POLICY": "PASSIVE", "LEVERCHAT_BENCH_LAYOUT": "row-major"},
}
# A --smoke run checks that settings reach the child and that the int8 and row-major paths run.
SMOKE_VARIANTS = ("default", "omp_threads_1", "passive_int8_dynamic", "passive_row_major")
_VARIANT_KEYS = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "LEVERCHAT_BENCH_ATTENTION",
    "LEVERCHAT_BENCH_DTYPE",
    "LEVERCHAT_BENCH_QUANTIZE",
    "LEVERCHAT_BENCH_LAYOUT",
)


def child(args: Any) -> None:
    import torch

    if os.environ.get("LEVERCHAT_BENCH_LAYOUT") == "row-major":
        from leverchat.engine import loading

        loading.tune_linear_layouts = lambda model, cache=None: []  # type: ignore[attr-defined]
    loaded = _common.load(
        args,
        dtype=os.environ.get("LEVERCHAT_BENCH_DTYPE", "auto"),
        quantize=os.environ.get("LEVERCHAT_BENCH_QUANTIZE"),
    )
    attention = os.environ.get("LEVERCHAT_BENCH_ATTENTION")
    if attention:
        loaded.model.set_attn_implementation(attention)
    generator = _common.make_generator(loaded)
    with torch.inference_mode():
        token = int(generator._forward(list(range(100, 140))).argmax())
        for _ in range(4):
            token = int(generator._forward([token]).argmax())
        started = time.perf_counter()
        for _ in range(args.tokens):
            token = int(generator._forward([token]).argmax())
        rate = args.tokens / (time.perf_counter() - started)
    _common.emit({"tokens_per_s": rate, "threads": torch.get_num_threads()})


def run_variant(name: str, args: Any) -> tuple[float, int]:
    env = {key: value for key, value in os.environ.items() if key not in _VARIANT_KEYS}
    env.update(VARIANTS[name])
    command = [sys.executable, __file__, "--child", "--tokens", str(args.tokens)]
    if args.model:
        command += ["--model", args.model]
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=600, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"variant {name} failed: {completed.stderr[-1000:]}")
    result = json.loads(completed.stdout)
    return float(result["tokens_per_s"]), int(result["threads"])


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=32, runs=2)
    arguments.add_argument("--child", action="store_true", help=argparse_hidden())
    args = _common.start(arguments)
    if args.child:
        child(args)
        return
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 4), 1
    threads: dict[str, int] = {}

    def measure(name: str) -> Any:
        def run() -> float:
            rate, threads[name] = run_variant(name, args)
            return rate

        return run

    names = SMOKE_VARIANTS if args.smoke else tuple(VARIANTS)
    samples = _common.alternate({name: measure(name) for name in names}, args.runs, warmup=0)
    rates = {name: _common.median(values) for name, values in samples.items()}
    _common.emit(
        {
            "benchmark": "cpu_variants",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "tokens": args.tokens,
            "runs": args.runs,
            "variants": {name: VARIANTS[name] for name in names},
            "torch_threads": threads,
            "forward_only_tokens_per_s": {name: round(rate, 2) for name, rate in rates.items()},
            "samples": {name: _common.rounded(values, 2) for name, values in samples.items()},
            "over_default": {
                name: _common.ratio(rate, rates["default"]) for name, rate in rates.items()
            },
        }
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
