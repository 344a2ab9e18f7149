"""Fair engine-against-engine runs: each sample a fresh child process (peer_worker.py) with one
engine and one thread count, the children started one at a time and alternating, every
sample kept.

Why: run inside one process, llama.cpp's spinning threads shared the two cores with torch's
and its rate collapsed (91.8, 44.0, 44.3 tok/s in one run; ~140 alone). A child per sample
also gives each engine's own peak resident memory (``ru_maxrss`` from ``wait4``), and only
one model is in memory at a time.

On a shared machine a child that grows past ``memory_cap_bytes`` is killed (and the sample
recorded as failed) before it can push the machine into the out-of-memory killer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

WORKER = Path(__file__).with_name("peer_worker.py")
LLAMA_CPP = "llama_cpp"
LEVERCHAT = "leverchat"


@dataclass(frozen=True)
class Variant:
    """One engine setting: ``name`` is what the report calls it."""

    name: str
    engine: str
    model: str
    threads: int
    quantize: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """The variant without its thread count: the best thread count is chosen per family."""
        return self.name.rsplit("@", 1)[0]


def quantize_choices() -> list[str]:
    """The choices of leverchat's own ``--quantize`` option (whatever this version offers)."""
    from leverchat.commands.options import add_model_options

    parser = argparse.ArgumentParser()
    add_model_options(parser)
    for action in parser._actions:
        if "--quantize" in action.option_strings:
            # The option's own default is the plain `leverchat` variant already.
            return [str(c) for c in action.choices or [] if c != action.default]
    return []


def thread_counts(requested: str | None) -> list[int]:
    """``--peer-threads 1,2``; default: 1 and all cores (one when there is one core)."""
    if requested:
        counts = [int(part) for part in requested.split(",") if part.strip()]
    else:
        counts = [1, os.cpu_count() or 1]
    return sorted(set(c for c in counts if c >= 1))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The thread count is the variant's (--threads / n_threads), never inherited.
    env.pop("OMP_NUM_THREADS", None)
    # Each engine as its users run it from a script: llama.cpp's threads spin; `leverchat ask`
    # leaves OpenMP's own wait policy (cli.main sets PASSIVE for the chat's UI only).
    env.pop("OMP_WAIT_POLICY", None)
    return env


def memory_available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run_child(
    variant: Variant, config: dict[str, Any], *, timeout_s: float, memory_cap_bytes: int | None
) -> dict[str, Any]:
    """Run one sample in a fresh process; its JSON plus ``peak_rss_bytes`` and ``wall_s``."""
    full = {
        "engine": variant.engine,
        "model": variant.model,
        "threads": variant.threads,
        "quantize": variant.quantize,
        **variant.extra,
        **config,
    }
    stopped: dict[str, str] = {}
    done = threading.Event()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(full)],
            stdout=out,
            stderr=err,
            env=child_env(),
        )

        def watch() -> None:
            while not done.wait(0.25):
                rss = _rss_bytes(process.pid)
                if memory_cap_bytes is not None and rss is not None and rss > memory_cap_bytes:
                    stopped["reason"] = (
                        f"stopped at {rss / 1e9:.1f} GB resident, over the cap of "
                        f"{memory_cap_bytes / 1e9:.1f} GB (--memory-cap-gb)"
                    )
                elif time.perf_counter() - started > timeout_s:
                    stopped["reason"] = f"stopped after {timeout_s:.0f} s (--child-timeout)"
                else:
                    continue
                process.kill()
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        # wait4, not Popen.wait: it gives this child's own rusage (its peak resident memory).
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        watcher.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
        errors = err.read().decode(errors="replace")
    result: dict[str, Any] = {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": wall_s}
    if process.returncode == 0 and lines:
        result.update(json.loads(lines[-1]))
    else:
        reason = stopped.get("reason") or f"exit code {process.returncode}"
        result["error"] = f"{reason}: {errors.strip()[-600:]}"
    return result


def alternate(
    variants: list[Variant],
    config: dict[str, Any],
    runs: int,
    *,
    timeout_s: float,
    memory_cap_bytes: int | None,
    log: Any = None,
) -> dict[str, list[dict[str, Any]]]:
    """``runs`` rounds; each round runs every variant once, in reversed order every other round
    (A B C, C B A, ...), so slow drifts of a shared machine spread over all of them."""
    samples: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    for round_index in range(runs):
        order = variants if round_index % 2 == 0 else list(reversed(variants))
        for variant in order:
            sample = run_child(
                variant, config, timeout_s=timeout_s, memory_cap_bytes=memory_cap_bytes
            )
            sample["round"] = round_index
            sample["load_average_1min"] = round(os.getloadavg()[0], 2)
            samples[variant.name].append(sample)
            if log is not None:
                log(f"{variant.name} round {round_index}: {_brief(sample)}")
    return samples


def _brief(sample: dict[str, Any]) -> str:
    if "error" in sample:
        return "failed: " + str(sample["error"])[:200]
    return (
        f"{sample.get('tokens_per_s', 0):.2f} tok/s, ttft {sample.get('ttft_s', 0):.3f} s, "
        f"peak {sample['peak_rss_bytes'] / 1e9:.2f} GB"
    )


def summarise(variants: list[Variant], samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per variant, and per family (engine + quantisation) the best thread count."""
    per_variant: dict[str, Any] = {}
    for variant in variants:
        good = [s for s in samples[variant.name] if "error" not in s]
        summary: dict[str, Any] = {
            "engine": variant.engine,
            "threads": variant.threads,
            "quantize": variant.quantize,
            "ok_samples": len(good),
            "failed_samples": len(samples[variant.name]) - len(good),
        }
        for key in (
            "tokens_per_s",
            "ttft_s",
            "long_ttft_s",
            "peak_rss_bytes",
            "rss_after_load_bytes",
            "rss_end_bytes",
            "load_s",
        ):
            values = [float(s[key]) for s in good if key in s]
            if values:
                summary[f"median_{key}"] = _round(_common.median(values), key)
                summary[f"samples_{key}"] = [_round(v, key) for v in values]
        for key in ("prompt_tokens", "long_prompt_tokens", "model_info"):
            if good and key in good[0]:
                summary[key] = good[0][key]
        errors = [s["error"] for s in samples[variant.name] if "error" in s]
        if errors:
            summary["errors"] = errors
        per_variant[variant.name] = summary
    best: dict[str, str] = {}
    for variant in variants:
        current = best.get(variant.family)
        rate = per_variant[variant.name].get("median_tokens_per_s", 0.0)
        if current is None or rate > per_variant[current].get("median_tokens_per_s", 0.0):
            best[variant.family] = variant.name
    return {"variants": per_variant, "best_thread_count": best}


def _round(value: float, key: str) -> float:
    return round(value) if key.endswith("_bytes") else round(value, 4)


def ratios(summary: dict[str, Any], families: Iterable[str], peer: str) -> dict[str, Any]:
    """Each family's best variant against the peer's best: decode rate, TTFTs, peak memory."""
    variants, best = summary["variants"], summary["best_thread_count"]
    if peer not in best:
        return {}
    reference = variants[best[peer]]
    result: dict[str, Any] = {}
    for family in families:
        if family == peer or family not in best:
            continue
        mine = variants[best[family]]
        result[family] = {
            "variant": best[family],
            "peer_variant": best[peer],
            "tokens_per_s": _common.ratio(
                mine.get("median_tokens_per_s", 0.0), reference.get("median_tokens_per_s", 0.0)
            ),
            "ttft_s": _common.ratio(
                mine.get("median_ttft_s", 0.0), reference.get("median_ttft_s", 0.0)
            ),
            "long_ttft_s": _common.ratio(
                mine.get("median_long_ttft_s", 0.0), reference.get("median_long_ttft_s", 0.0)
            )
            if "median_long_ttft_s" in reference
            else None,
            "peak_rss": _common.ratio(
                mine.get("median_peak_rss_bytes", 0.0), reference.get("median_peak_rss_bytes", 0.0)
            ),
        }
    return result


def leverchat_variants(
    model: str, quantize: list[str | None], threads: list[int], prefix: str = LEVERCHAT
) -> list[Variant]:
    result = []
    for choice in quantize:
        family = prefix if choice is None else f"{prefix}_{choice}"
        for count in threads:
            result.append(Variant(f"{family}@{count}", LEVERCHAT, model, count, choice))
    return result


def llama_cpp_variants(model: str, threads: list[int], context: int) -> list[Variant]:
    return [
        Variant(f"{LLAMA_CPP}@{count}", LLAMA_CPP, model, count, extra={"context": context})
        for count in threads
    ]


def quantize_list(requested: str | None) -> list[str | None]:
    """``--quantize int8,int4``: leverchat variants besides its default (None); ``default``
    alone: the default only. Default: every choice leverchat's --quantize offers."""
    if requested is None:
        choices: list[str] = quantize_choices()
    elif requested.strip().lower() == "default":
        choices = []
    else:
        choices = [part.strip() for part in requested.split(",") if part.strip()]
    return [None, *choices]


def add_peer_options(arguments: argparse.ArgumentParser) -> None:
    arguments.add_argument(
        "--quantize",
        default=None,
        metavar="LIST",
        help="leverchat --quantize choices to run as extra variants, comma-separated, or "
        "'default' for leverchat's default only (default: every choice leverchat offers)",
    )
    arguments.add_argument(
        "--peer-threads",
        default=None,
        metavar="LIST",
        help="thread counts to try for each engine (default: 1 and all cores)",
    )
    arguments.add_argument(
        "--child-timeout", type=float, default=1800.0, help="seconds per child (default 1800)"
    )
    arguments.add_argument(
        "--memory-cap-gb",
        type=float,
        default=None,
        help="kill a child above this resident size (default: 90%% of the memory available "
        "at the start)",
    )


def memory_cap(args: argparse.Namespace) -> int | None:
    if args.memory_cap_gb is not None:
        return int(args.memory_cap_gb * 1e9)
    available = memory_available_bytes()
    return int(available * 0.9) if available else None
