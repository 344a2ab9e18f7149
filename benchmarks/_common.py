"""Shared harness for the benchmarks: arguments, model loading, alternating runs, JSON output.

Every benchmark prints exactly ONE JSON object on stdout. Anything else a library prints goes
to stderr: :func:`start` points ``sys.stdout`` at stderr and :func:`emit` writes to the real
stdout. Targets are ratios measured in the same run (A and B alternate), never absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_HOME = Path(os.environ.get("LEVERCHAT_BENCH_HOME", "/tmp/leverchat-bench"))
# A benchmark-owned cache: the bundled GGUF is converted once, not on every run.
DEFAULT_CACHE_DIR = BENCH_HOME / "cache"

# A prompt that asks for a long answer, so the model has plenty to say.
LONG_ANSWER_PROMPT = (
    "Write a detailed, long story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the sea, the weather and every room of the lighthouse."
)
SYSTEM_PROMPT = "You are a helpful assistant."

_real_stdout = sys.stdout


def parser(description: str, *, tokens: int, runs: int) -> argparse.ArgumentParser:
    """The common options; a benchmark adds its own before calling :func:`start`."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps (default cpu)")
    result.add_argument(
        "--tokens", type=int, default=tokens, help=f"new tokens per run (default {tokens})"
    )
    result.add_argument(
        "--runs", type=int, default=runs, help=f"alternating runs per variant (default {runs})"
    )
    result.add_argument(
        "--model",
        default=None,
        help="model source (HF folder, .gguf, hub id); default: the bundled SmolLM2-135M",
    )
    result.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for every thread of the process (OMP_NUM_THREADS); "
        "default: torch's own choice (one per core)",
    )
    result.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny random model and few tokens: checks the script runs, measures nothing",
    )
    return result


def start(arguments: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the options and set up an isolated, offline environment for the run."""
    args = arguments.parse_args(argv)
    if args.tokens < 2:
        arguments.error(f"--tokens must be at least 2, got {args.tokens}")
    if args.runs < 1:
        arguments.error(f"--runs must be at least 1, got {args.runs}")
    if args.threads is not None:
        if args.threads < 1:
            arguments.error(f"--threads must be at least 1, got {args.threads}")
        if "torch" in sys.modules:
            raise RuntimeError("start() must run before torch is imported for --threads")
        # Set before torch loads, so it holds on every thread (the engine's included).
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sys.stdout = sys.stderr  # library chatter must not break the one JSON object
    # As `leverchat` itself does (cli.main): idle OpenMP threads sleep rather than spin.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("LEVERCHAT_CACHE_DIR", str(DEFAULT_CACHE_DIR))
    # The benchmarks never touch the user's real folders.
    for name in ("CONFIG", "DATA", "LOG"):
        os.environ.setdefault(f"LEVERCHAT_{name}_DIR", str(BENCH_HOME / name.lower()))
    if args.smoke and args.model is None:
        args.model = str(tiny_model_dir())
    return args


def emit(result: Mapping[str, Any]) -> None:
    """Print the benchmark's one JSON object on the real stdout."""
    _real_stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")
    _real_stdout.flush()


def tiny_model_dir() -> Path:
    """A tiny random Llama (tests/tinymodel.py) for ``--smoke`` runs, built once per folder."""
    folder = Path(tempfile.gettempdir()) / f"leverchat-bench-tiny-{os.getuid()}"
    if not (folder / "config.json").exists():
        sys.path.insert(0, str(REPO / "tests"))
        from tinymodel import build_tiny_model_dir  # type: ignore[import-not-found]

        build_tiny_model_dir(folder)
    return folder


def load(args: argparse.Namespace, dtype: str = "auto", quantize: str | None = None) -> Any:
    """Load the model of ``args`` through leverchat's own loader (a LoadedModel)."""
    from leverchat.engine.loading import load_model
    from leverchat.engine.types import ModelSpec

    spec = ModelSpec(source=args.model, device=args.device, dtype=dtype, quantize=quantize)
    return load_model(spec)


def model_name(args: argparse.Namespace) -> str:
    return "tiny-random (smoke)" if args.smoke else (args.model or "bundled SmolLM2-135M")


def machine(device: str) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "device": device,
        # On a shared machine the load says how much the numbers can be trusted.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:
        pass
    return info


def alternate(
    variants: Mapping[str, Callable[[], float]], runs: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant ``runs`` times, interleaved (A B, B A, A B, ...), after ``warmup``
    untimed rounds. Each callable returns its own measurement (a rate or a time).

    Interleaving spreads slow drifts (other processes, thermal state) over every variant, so
    a ratio of medians from one run is meaningful even on a busy machine.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(runs):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for name in order:
            samples[name].append(variants[name]())
    return samples


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 = ``percentile(values, 0.95)``)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def rounded(values: list[float], digits: int = 4) -> list[float]:
    return [round(v, digits) for v in values]


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


class Stopwatch:
    """``with Stopwatch() as watch: ...; watch.seconds``"""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


def make_generator(loaded: Any, *, endless: bool = False) -> Any:
    """A Generator over a LoadedModel, as the engine thread builds it; ``endless``: one that
    never ends a turn by itself (:func:`never_end_of_turn`)."""
    from leverchat.engine.generate import Generator

    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)
    if endless:
        never_end_of_turn(generator)
    return generator


def never_end_of_turn(generator: Any) -> None:
    """Make the generator treat end-of-turn tokens as ordinary ones, so every run produces
    exactly ``max_new_tokens`` tokens and variants compare equal amounts of work."""
    generator.eos_ids = frozenset()


def request(messages: list[tuple[str, str]], levers: Any) -> Any:
    """A GenerationRequest from (role, text) pairs and a Levers object."""
    from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest

    chat = tuple(ChatMessage(role, text) for role, text in messages)  # type: ignore[arg-type]
    return GenerationRequest(chat, levers=FixedLevers(levers))


def check_result(result: Any) -> Any:
    """Fail loudly (on stderr, exit 1) when a generation failed: a benchmark of errors lies."""
    if result.error is not None:
        raise SystemExit(f"generation failed: {result.error}")
    return result


class PreloadedEngine:
    """A ChatEngine over an EngineThread whose model is already loaded: the app's own load
    request answers at once instead of loading a second copy of the model."""

    def __init__(self, engine: Any, info: Any) -> None:
        self.engine = engine
        self.info = info

    def load(self, spec: Any, progress: Any = None) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(self.info)
        return future

    def generate(self, request: Any, on_chunk: Any = None) -> Future[Any]:
        future: Future[Any] = self.engine.generate(request, on_chunk)
        return future

    def count_tokens(self, messages: Any, prompt_format: Any = "auto") -> Future[int]:
        return self.engine.count_tokens(messages, prompt_format)  # type: ignore[no-any-return]

    def close(self, timeout: float = 5.0) -> None:
        """The benchmark closes the real engine itself."""


def on_engine_thread(engine: Any, job: Any) -> Future[Any]:
    """Run ``job`` on the engine's own thread."""
    future: Future[Any] = engine.call(job)
    return future
