"""Decode tokens/s and time to first token of the bundled GGUF under llama.cpp and leverchat,
run fairly: each engine alone in its own process, at 1 thread and at all cores, alternating.

Only where ``llama_cpp`` (llama-cpp-python) is importable; otherwise it prints a JSON object
with ``"skipped"``. It is neither a test nor a project dependency (a prebuilt wheel:
``../shared/wheels/README.md``; the build flags are in benchmarks/README.md).

Every sample is a fresh child process (``peer_worker.py``): load, a 4-token warm-up, then a
greedy reply of exactly ``--tokens`` tokens (end-of-turn ignored by both) to the same
chat-templated prompt, from an empty KV cache. Decode rate = tokens after the first over the
time from the first to the last; TTFT = from the request to the first token. llama.cpp runs
the Q4_1 weights as they are; leverchat whatever its engine makes of the file by default, and
once per ``--quantize`` choice (default: every choice its CLI offers). Each engine is
compared at its best thread count (the higher median rate); every sample is reported.

Measured in session 3 (issue #12): in one process with 2 threads beside torch llama.cpp ran
at 44-92 tok/s; alone with 1 thread at 141-146.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import _common
import _peer

TARGET_RATE_RATIO = 0.5  # issue #12: at least half of llama.cpp's decode rate
TARGET_TTFT_RATIO = 1.0  # ... and a first token no later than llama.cpp's


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=64, runs=3)
    _peer.add_peer_options(arguments)
    args = _common.start(arguments)
    base: dict[str, Any] = {"benchmark": "peer_llamacpp", "machine": _common.machine("cpu")}
    if importlib.util.find_spec("llama_cpp") is None:
        base["skipped"] = "llama_cpp (llama-cpp-python) is not installed"
        _common.emit(base)
        return
    from leverchat.engine.bundled import bundled_gguf_path

    if args.smoke:
        # A tiny random GGUF both engines read (scale_cpu's), one thread: checks the path.
        import _randmodel

        built = _randmodel.build(_common.BENCH_HOME / "scale", "tiny")
        args.model = built["gguf"]["Q8_0"]
        args.tokens, args.runs = min(args.tokens, 4), 1
        args.peer_threads = args.peer_threads or "1"
    # Both engines read the same file: llama.cpp needs a GGUF.
    gguf = str(args.model) if args.model and str(args.model).endswith(".gguf") else None
    gguf = gguf or str(bundled_gguf_path())
    threads = _peer.thread_counts(args.peer_threads)
    quantize = _peer.quantize_list(args.quantize)
    variants = _peer.llama_cpp_variants(gguf, threads, context=2048)
    variants += _peer.leverchat_variants(gguf, quantize, threads)
    # Engines interleave within a round (llama.cpp, leverchat, ... at 1 thread, then at N).
    variants.sort(key=lambda variant: variant.threads)
    config = {
        "prompt": _common.LONG_ANSWER_PROMPT,
        "system": _common.SYSTEM_PROMPT,
        "tokens": args.tokens,
    }
    cap = _peer.memory_cap(args)
    # Fill leverchat's conversion cache first, so no sample pays for the conversion.
    prepare = _peer.run_child(
        variants[-1],
        {**config, "load_only": True},
        timeout_s=args.child_timeout,
        memory_cap_bytes=cap,
    )
    samples = _peer.alternate(
        variants,
        config,
        args.runs,
        timeout_s=args.child_timeout,
        memory_cap_bytes=cap,
        log=lambda line: print(line, flush=True),
    )
    summary = _peer.summarise(variants, samples)
    families = sorted({v.family for v in variants})
    ratios = _peer.ratios(summary, families, _peer.LLAMA_CPP)
    default = ratios.get(_peer.LEVERCHAT, {})
    base.update(
        {
            "model": gguf if args.model else f"{gguf} (bundled SmolLM2-135M-Instruct Q4_1)",
            "tokens": args.tokens,
            "runs": args.runs,
            "thread_counts": threads,
            "quantize_variants": quantize,
            "prepare": {
                k: prepare.get(k) for k in ("load_s", "peak_rss_bytes", "error") if k in prepare
            },
            **summary,
            "over_llama_cpp": ratios,
            "samples": samples,
            "targets": {
                "tokens_per_s_at_least": TARGET_RATE_RATIO,
                "ttft_at_most": TARGET_TTFT_RATIO,
                "default_met": (
                    default.get("tokens_per_s", 0.0) >= TARGET_RATE_RATIO
                    and 0 < default.get("ttft_s", 0.0) <= TARGET_TTFT_RATIO
                )
                if default
                else None,
            },
        }
    )
    _common.emit(base)


if __name__ == "__main__":
    main()
