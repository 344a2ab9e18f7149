"""leverchat beside llama.cpp on random Llama-3.2-shaped 1B and 3B models, on the CPU.

Builds (once, under ``--workdir``) random models of the real shapes (``_randmodel.py``:
Llama-3.2-1B hidden 2048, 16 layers, 32 heads, 8 KV heads, intermediate 8192, vocab 128256,
tied embeddings, 1,235,814,400 parameters; -3B hidden 3072, 28 layers, 24 heads, 8 KV heads,
intermediate 8192, tied, 3,212,749,824), each as bf16 safetensors and as GGUF Q8_0 and Q4_0,
written tensor by tensor. Then, for each case (``--cases 1b:Q8_0,3b:Q4_0``), llama.cpp and
leverchat each load the same GGUF in their own processes (``_peer.py``: a fresh child per
sample, 1 thread and all cores, alternating) and report

- decode tokens/s (greedy, ``--tokens`` tokens, end-of-turn ignored),
- time to first token for a ~512-token prompt (``long_ttft_s``),
- the peak resident memory of each process (``ru_maxrss``),
- the cache on disk: leverchat's converted folder (the first load converts it, in a
  separate child that is timed and measured too), llama.cpp's is the GGUF itself.

Targets (issue #12), as ratios in one run: 1B Q8_0 leverchat >= 0.5x llama.cpp's tokens/s
with peak memory <= 1.5x; 3B Q4_0: leverchat runs (its ratios reported).

``--plan-8b`` prints the memory accounting for a Llama-3.1-8B Q4_K_M instead (``_memplan.py``).
``--tiny`` (or ``--smoke``) runs the whole path on a tiny shape in seconds.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import _common
import _peer
import _randmodel

TARGETS = {
    "1b:Q8_0": {"tokens_per_s_at_least": 0.5, "peak_rss_at_most": 1.5},
    "3b:Q4_0": {"runs": True},
}
DEFAULT_CASES = "1b:Q8_0,1b:Q4_0,3b:Q8_0,3b:Q4_0"
LLAMA_CONTEXT = 1024  # the 512-token prompt and the reply fit; llama.cpp allocates it at load


def folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def run_case(case: str, args: Any, info: dict[str, Any], workdir: Path, log: Any) -> dict[str, Any]:
    qtype = case.split(":")[1]
    gguf = info["gguf"][qtype]
    threads = _peer.thread_counts(args.peer_threads)
    quantize = _peer.quantize_list(args.quantize)
    variants = _peer.llama_cpp_variants(gguf, threads, LLAMA_CONTEXT)
    variants += _peer.leverchat_variants(gguf, quantize, threads)
    if args.with_safetensors:
        variants += _peer.leverchat_variants(
            info["safetensors"], quantize, threads, prefix="leverchat_safetensors"
        )
    # Engines interleave within a round (llama.cpp, leverchat, ... at 1 thread, then at N).
    variants.sort(key=lambda variant: variant.threads)
    config = {
        "prompt": _common.LONG_ANSWER_PROMPT,
        "tokens": args.tokens,
        "long_prompt": info["long_prompt"],
    }
    cache = workdir / "leverchat-cache" / case.replace(":", "-")
    os.environ["LEVERCHAT_CACHE_DIR"] = str(cache)  # the children inherit it
    cap = _peer.memory_cap(args)
    log(f"{case}: converting for leverchat into {cache}")
    convert_variant = _peer.Variant("convert", _peer.LEVERCHAT, gguf, max(threads))
    prepare = _peer.run_child(
        convert_variant,
        {**config, "load_only": True},
        timeout_s=args.child_timeout,
        memory_cap_bytes=cap,
    )
    log(
        f"{case}: conversion {prepare.get('load_s')} s, "
        f"peak {prepare['peak_rss_bytes'] / 1e9:.2f} GB"
    )
    if "error" in prepare:
        # Without a cache every leverchat sample would convert again (or fail the same way).
        variants = [v for v in variants if v.engine == _peer.LLAMA_CPP]
    samples = _peer.alternate(
        variants, config, args.runs, timeout_s=args.child_timeout, memory_cap_bytes=cap, log=log
    )
    summary = _peer.summarise(variants, samples)
    families = sorted({v.family for v in variants})
    ratios = _peer.ratios(summary, families, _peer.LLAMA_CPP)
    result: dict[str, Any] = {
        "gguf": gguf,
        "gguf_bytes": info["bytes"][qtype],
        "leverchat_conversion": {
            "seconds": prepare.get("load_s"),
            "converted_now": prepare.get("converted"),
            "peak_rss_bytes": prepare["peak_rss_bytes"],
            "cache_bytes": folder_bytes(cache) if cache.exists() else 0,
            **({"error": prepare["error"]} if "error" in prepare else {}),
        },
        **summary,
        "over_llama_cpp": ratios,
        "samples": samples,
    }
    target = TARGETS.get(case)
    if target is not None:
        default = ratios.get(_peer.LEVERCHAT, {})
        if "tokens_per_s_at_least" in target:
            met: bool | None = (
                bool(default)
                and default["tokens_per_s"] >= target["tokens_per_s_at_least"]
                and 0 < default["peak_rss"] <= target["peak_rss_at_most"]
            )
        else:
            met = bool(default) and summary["variants"][default["variant"]]["ok_samples"] > 0
        result["target"] = {**target, "met_by_default_leverchat": met}
    return result


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=32, runs=3)
    _peer.add_peer_options(arguments)
    arguments.add_argument("--cases", default=DEFAULT_CASES, help=f"default {DEFAULT_CASES}")
    arguments.add_argument(
        "--workdir",
        type=Path,
        default=_common.BENCH_HOME / "scale",
        help="where the models and leverchat's caches are built and kept between runs",
    )
    arguments.add_argument("--tiny", action="store_true", help="a tiny shape: checks the path")
    arguments.add_argument(
        "--with-safetensors",
        action="store_true",
        help="also run leverchat on the bf16 safetensors folder of each model",
    )
    arguments.add_argument(
        "--plan-8b", action="store_true", help="print the 8B Q4_K_M memory accounting only"
    )
    args = _common.start(arguments)
    base: dict[str, Any] = {"benchmark": "scale_cpu", "machine": _common.machine("cpu")}
    if args.plan_8b:
        import _memplan

        base["plan_8b"] = _memplan.plan("8b")
        _common.emit(base)
        return
    if importlib.util.find_spec("llama_cpp") is None:
        base["skipped"] = "llama_cpp (llama-cpp-python) is not installed"
        _common.emit(base)
        return
    if args.tiny or args.smoke:
        args.tiny = True
        args.cases = "tiny:Q8_0"
        args.tokens, args.runs = min(args.tokens, 4), 1
        args.peer_threads = args.peer_threads or "1"

    def log(line: str) -> None:
        print(line, flush=True)

    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    for case in cases:
        size, _, qtype = case.partition(":")
        if size not in _randmodel.SHAPES or qtype not in _randmodel.GGUF_TYPES:
            arguments.error(
                f"--cases: {case!r} is not SIZE:TYPE with SIZE in "
                f"{sorted(_randmodel.SHAPES)} and TYPE in {list(_randmodel.GGUF_TYPES)}"
            )
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    builds: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for case in cases:
        size = case.split(":")[0]
        if size not in builds:
            log(f"building the random {size} model in {workdir} (once)")
            builds[size] = _randmodel.build(workdir, size, log=log)
        results[case] = run_case(case, args, builds[size], workdir, log)
    base.update(
        {
            "workdir": str(workdir),
            "tokens": args.tokens,
            "runs": args.runs,
            "models": {
                size: {k: v for k, v in build.items() if k != "long_prompt"}
                for size, build in builds.items()
            },
            "cases": results,
        }
    )
    _common.emit(base)


if __name__ == "__main__":
    main()
