"""EngineThread: the one long-lived thread that owns the model and runs every torch call.

Measured here: once the main thread had run ``generate``, generation on another thread ran at
~14 tok/s instead of ~22, so all torch work stays on this single thread. Callers get a
``concurrent.futures.Future`` back at once; chunk and progress callbacks run on the engine
thread (a Textual app must post messages from them, not touch widgets).

This module does not import torch: the TUI imports it before the first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from leverchat.engine.aside import run_aside
from leverchat.engine.loading import STAGE_COMPILING, STAGE_READY, progress_reporter
from leverchat.engine.serial import SerialExecutor
from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    EngineError,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
    LeverTokens,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
    Stats,
    StopReason,
)
from leverchat.levers import Levers

if TYPE_CHECKING:
    from leverchat.engine.generate import Generator
    from leverchat.engine.loading import LoadedModel

log = logging.getLogger(__name__)

T = TypeVar("T")

Loader = Callable[[ModelSpec, ProgressCallback | None], "LoadedModel"]


def check_spec(spec: ModelSpec) -> None:
    """Refuse option combinations that cannot work, before anything is loaded."""
    if spec.compile and spec.quantize in ("int8", "int4"):
        raise EngineError(
            f"--compile and --quantize {spec.quantize} cannot be combined (the quantised "
            "layers do not compile); drop one of them"
        )
    if spec.context is not None and spec.context < 2:
        raise EngineError(f"--context must be at least 2 tokens, not {spec.context}")


def session_context_window(model_window: int, spec: ModelSpec) -> int:
    """The context this session uses: the model's window, capped by --context (and, with
    --compile, by the static cache's default size)."""
    from leverchat.engine.compiled import DEFAULT_COMPILED_CONTEXT

    if spec.context is not None:
        return min(model_window, spec.context)
    if spec.compile:
        return min(model_window, DEFAULT_COMPILED_CONTEXT)
    return model_window


def compile_message(device: str) -> str:
    return (
        f"Compiling the model for {device} (torch.compile: a minute or more; later starts "
        "reuse torch's compile cache)"
    )


def _without_ready(progress: ProgressCallback | None) -> ProgressCallback | None:
    if progress is None:
        return None
    report = progress

    def forward(step: LoadProgress) -> None:
        if step.stage != STAGE_READY:
            report(step)

    return forward


def _default_loader(spec: ModelSpec, progress: ProgressCallback | None) -> LoadedModel:
    from leverchat.engine.loading import load_model

    return load_model(spec, progress)


class EngineThread:
    """A ChatEngine backed by a real model, run on one dedicated thread."""

    def __init__(self, loader: Loader | None = None) -> None:
        self._loader: Loader = loader or _default_loader
        self._executor = SerialExecutor("leverchat-engine")
        self._generator: Generator | None = None
        self._load_error: str | None = None
        self.info: ModelInfo | None = None

    # -- ChatEngine ---------------------------------------------------------------------

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> Future[ModelInfo]:
        def run() -> ModelInfo:
            from leverchat.engine.generate import Generator

            # Free the old model first: two at once may not fit in memory.
            self._generator = None
            self.info = None
            configure_cpu_threads(spec.threads, leave_core_for_ui=spec.leave_core_for_ui)
            report = progress_reporter(progress)
            try:
                check_spec(spec)
                # With --compile the model is ready only once compiled: hold loading's "ready".
                loaded = self._loader(spec, _without_ready(progress) if spec.compile else progress)
                window = session_context_window(loaded.info.context_window, spec)
                generator = Generator(
                    loaded.model,
                    loaded.tokenizer,
                    loaded.device,
                    window,
                    compile=spec.compile,
                )
                if spec.compile:
                    report(STAGE_COMPILING, compile_message(loaded.info.device), None)
                    seconds = generator.warm_up()
                    log.info("the compiled step was ready in %.1f s", seconds or 0.0)
            except Exception as error:
                self._load_error = str(error)
                raise
            self._load_error = None
            self._generator = generator
            device = loaded.info.device + (", compiled" if spec.compile else "")
            self.info = replace(loaded.info, context_window=window, device=device)
            if spec.compile:
                report(STAGE_READY, f"{loaded.info.name} is ready on {device}", 1.0)
            return self.info

        return self._executor.submit(run)

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]:
        def run() -> GenerationResult:
            if self._generator is None:
                reason = self._load_error or "the model is not loaded"
                return _failed(request, f"no model is loaded: {reason}")
            return self._generator.run(request, on_chunk)

        return self._executor.submit(run, cancel=request.cancel)

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice = "auto"
    ) -> Future[int]:
        def run() -> int:
            if self._generator is None:
                raise EngineError("no model is loaded")
            return self._generator.count_tokens(messages, prompt_format)

        return self._executor.submit(run)

    def lever_tokens(self, levers: Levers) -> Future[tuple[LeverTokens, ...]]:
        """Off the engine thread: it needs the tokenizer only (no torch call), so the panel's
        view does not wait behind a streaming reply."""
        generator = self._generator
        return run_aside(lambda: generator.lever_tokens(levers) if generator is not None else ())

    def call(self, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` on the engine thread, queued behind the current work (benchmarks and
        tools that must touch the model use this: torch calls belong on this one thread)."""
        return self._executor.submit(job)

    @property
    def generator(self) -> Generator | None:
        """The loaded model's Generator (use it only from a job passed to :meth:`call`)."""
        return self._generator

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is running, fail what is queued, and stop the thread."""
        self._executor.shutdown(timeout)

    @property
    def is_alive(self) -> bool:
        return self._executor.is_alive


def cpu_threads_for(
    requested: int | None,
    cores: int,
    environment: dict[str, str],
    *,
    leave_core_for_ui: bool = True,
) -> int | None:
    """How many intra-op threads torch should use on the engine thread, or None to leave
    torch's own setting (the user set OMP_NUM_THREADS).

    Without a UI (``ask``, ``sweep``), every core: with the lean one-token step
    (lean_step.py) and OpenMP's default wait policy, the bundled model decoded at 60-62
    tok/s with 2 threads against 37-40 with 1 on this 2-core machine.

    One fewer than the cores by default. Measured on 2 cores with SmolLM2-135M: streaming
    into the TUI ran at 10.0 tok/s with torch's default of 2 threads (the UI thread kept
    taking a core from a spinning OpenMP team) and 12.8 tok/s with 1 thread; the engine alone
    was faster with 1 thread too (16.0 against 14.2 tok/s): a 135M model gains little from
    splitting its small matrix products.
    """
    if requested is not None:
        return requested
    if "OMP_NUM_THREADS" in environment:
        return None
    return max(1, cores - 1) if leave_core_for_ui else max(1, cores)


_torch_default_threads: int | None = None


def configure_cpu_threads(requested: int | None, *, leave_core_for_ui: bool = True) -> None:
    """Apply :func:`cpu_threads_for` on the calling thread (the engine thread: OpenMP keeps
    the thread count per thread)."""
    import os

    import torch

    global _torch_default_threads
    if _torch_default_threads is None:
        # torch's own default (the physical cores), read before we ever change it.
        _torch_default_threads = torch.get_num_threads()
    threads = cpu_threads_for(
        requested,
        _torch_default_threads,
        dict(os.environ),
        leave_core_for_ui=leave_core_for_ui,
    )
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        log.info("torch uses %d CPU thread(s)", threads)


def _failed(request: GenerationRequest, message: str) -> GenerationResult:
    _, levers = request.levers.snapshot()
    return GenerationResult(
        text="",
        stop_reason=StopReason.ERROR,
        stats=Stats(),
        seed=levers.seed if levers.seed is not None else 0,
        levers=levers,
        error=message,
    )
