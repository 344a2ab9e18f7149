"""A ChatEngine for UI tests: streams scripted replies on its own thread, like the real one.

- Every call returns a Future at once; the work runs on one engine thread in order.
- Each chunk reads ``request.levers.snapshot()`` first (as the real engine does per token) and
  records it, so a test can prove a lever edited mid-reply reached the engine before the end.
- Honours the cancel event within one chunk.
- A reply can fail mid-way, or hold at a chunk until the test releases it (no timing games).
- ``load`` can be held on an event, or fail.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    EngineError,
    GenerationRequest,
    GenerationResult,
    LeverChange,
    LeverTokens,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
    PromptFormat,
    Stats,
    StopReason,
)
from leverchat.levers import Levers

INFO = ModelInfo(
    name="scripted-model",
    source="tests",
    device="cpu",
    dtype="float32",
    context_window=2048,
    has_chat_template=True,
)


@dataclass
class Script:
    """One scripted reply."""

    chunks: list[str]
    fail_after: int | None = None  # raise after this many chunks
    error: str = "scripted failure"
    raise_error: bool = False  # fail by raising (the future holds the exception)
    hold_after: int | None = None  # wait on Script.release after this many chunks
    release: threading.Event = field(default_factory=threading.Event)
    reached_hold: threading.Event = field(default_factory=threading.Event)


@dataclass
class Seen:
    """What the engine saw for one request."""

    request: GenerationRequest
    levers_per_chunk: list[Levers] = field(default_factory=list)
    chunks_sent: int = 0


class ScriptedEngine:
    def __init__(
        self,
        scripts: list[Script] | None = None,
        *,
        chunk_delay: float = 0.005,
        hold_load: bool = False,
        load_error: str | None = None,
        info: ModelInfo = INFO,
    ) -> None:
        self.scripts: list[Script] = list(scripts or [])
        self.chunk_delay = chunk_delay
        self.load_gate = threading.Event()
        if not hold_load:
            self.load_gate.set()
        self.load_error = load_error
        self.info = info
        self.loaded = False
        self.seen: list[Seen] = []
        self.specs: list[ModelSpec] = []
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="scripted-engine", daemon=True)
        self._thread.start()
        self._closed = False

    # -- ChatEngine ------------------------------------------------------------------------

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> Future[ModelInfo]:
        def run() -> ModelInfo:
            self.specs.append(spec)
            if progress is not None:
                progress(LoadProgress("loading", "Loading scripted-model", 0.5))
            self.load_gate.wait()
            if self.load_error is not None:
                self.loaded = False
                raise EngineError(self.load_error)
            self.loaded = True
            return self.info

        return self._submit(run)

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]:
        script = self.scripts.pop(0) if self.scripts else Script(["Hello", " there", "!"])
        return self._submit(lambda: self._run(script, request, on_chunk))

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: PromptFormat = "auto"
    ) -> Future[int]:
        return self._submit(lambda: sum(len(m.content.split()) for m in messages))

    def lever_tokens(self, levers: Levers) -> Future[tuple[LeverTokens, ...]]:
        """A stand-in tokenizer: one token per word (a space starts a new one), ids counted
        from 100; each phrase as written and with a leading space."""

        def tokens(text: str) -> tuple[str, ...]:
            return tuple(re.findall(r" ?[^ ]+| ", text))

        def entry(lever: str, text: str, weight: float | None) -> LeverTokens:
            forms = (tokens(text), tokens(" " + text.lstrip(" ")))
            ids = tuple(tuple(range(100, 100 + len(form))) for form in forms)
            return LeverTokens(lever, text, ids, weight, forms)

        def run() -> tuple[LeverTokens, ...]:
            if not self.loaded:
                return ()
            banned = [entry("ban", text, None) for text in levers.ban]
            return (*banned, *(entry("boost", text, w) for text, w in levers.boost))

        return self._submit(run)

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self.load_gate.set()
        for script in self.scripts:
            script.release.set()
        self._jobs.put(None)
        self._thread.join(timeout)

    # -- helpers for tests -----------------------------------------------------------------

    @property
    def last(self) -> Seen:
        return self.seen[-1]

    # -- internals -------------------------------------------------------------------------

    def _run(
        self, script: Script, request: GenerationRequest, on_chunk: ChunkCallback | None
    ) -> GenerationResult:
        if not self.loaded:
            _, levers = request.levers.snapshot()
            return _result("", StopReason.ERROR, levers, (), error="no model is loaded")
        seen = Seen(request)
        self.seen.append(seen)
        start_version, start_levers = request.levers.snapshot()
        version, current = start_version, start_levers
        changes: list[LeverChange] = []
        text = ""
        stop = StopReason.END_OF_TURN
        for index, chunk in enumerate(script.chunks):
            if script.hold_after is not None and index == script.hold_after:
                script.reached_hold.set()
                while not script.release.wait(0.01):
                    if request.cancel.is_set():
                        break
            if request.cancel.is_set():
                stop = StopReason.CANCELLED
                break
            if script.fail_after is not None and index == script.fail_after:
                if script.raise_error:
                    raise RuntimeError(script.error)
                return _result(text, StopReason.ERROR, start_levers, tuple(changes), script.error)
            new_version, levers = request.levers.snapshot()
            if new_version != version:
                changes.append(LeverChange(index, levers, levers.changed_names(current)))
                version, current = new_version, levers
            seen.levers_per_chunk.append(levers)
            text += chunk
            seen.chunks_sent += 1
            if on_chunk is not None:
                on_chunk(chunk)
            time.sleep(self.chunk_delay)
        else:
            if request.cancel.is_set():
                stop = StopReason.CANCELLED
        return _result(text, stop, start_levers, tuple(changes))

    def _submit(self, run: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(run())
            except BaseException as error:
                future.set_exception(error)

        if self._closed:
            future.set_exception(EngineError("the engine was closed"))
        else:
            self._jobs.put(job)
        return future

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()


def _result(
    text: str,
    stop: StopReason,
    levers: Levers,
    changes: tuple[LeverChange, ...],
    error: str | None = None,
) -> GenerationResult:
    return GenerationResult(
        text=text,
        stop_reason=stop,
        stats=Stats(
            prompt_tokens=12,
            new_tokens=len(text.split()),
            time_to_first_token_s=0.05,
            tokens_per_s=42.0,
            context_window=INFO.context_window,
        ),
        seed=levers.seed if levers.seed is not None else 1234,
        levers=levers,
        lever_changes=changes,
        error=error,
    )
