"""AnyEngine: the one ChatEngine the TUI and `ask` hold. Each load picks the engine the model
spec names: the local torch engine (EngineThread) or the remote HTTP engine (RemoteEngine,
for ``openai+http(s)://...``). Loading a remote model never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from leverchat.engine.types import (
    ChatEngine,
    ChatMessage,
    ChunkCallback,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
    LeverTokens,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
)
from leverchat.levers import Levers


def _local() -> ChatEngine:
    from leverchat.engine.worker import EngineThread

    return EngineThread()


def _remote() -> ChatEngine:
    from leverchat.engine.remote.engine import RemoteEngine

    return RemoteEngine()


def _without_carried_server_options(spec: ModelSpec, last: ModelSpec | None) -> ModelSpec:
    """A model loaded from the app (Ctrl+P, "Load model") keeps the session's other options;
    the --model-name and --server of the previous server mean nothing to another one."""
    if (
        last is not None
        and spec.source != last.source
        and (spec.model_name, spec.server) == (last.model_name, last.server)
        and (spec.model_name or spec.server)
    ):
        return replace(spec, model_name=None, server=None)
    return spec


class AnyEngine:
    """Delegates to the engine of the last model loaded (see the module docstring)."""

    def __init__(
        self,
        local: Callable[[], ChatEngine] = _local,
        remote: Callable[[], ChatEngine] = _remote,
    ) -> None:
        self._factories = {False: local, True: remote}
        self._engines: dict[bool, ChatEngine] = {}
        self._current: bool = False
        self._last: ModelSpec | None = None

    def _engine(self, remote: bool) -> ChatEngine:
        if remote not in self._engines:
            self._engines[remote] = self._factories[remote]()
        return self._engines[remote]

    @property
    def current(self) -> ChatEngine:
        return self._engine(self._current)

    @property
    def info(self) -> ModelInfo | None:
        engine: Any = self._engines.get(self._current)
        return getattr(engine, "info", None)

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> Future[ModelInfo]:
        spec = _without_carried_server_options(spec, self._last)
        self._last = spec
        remote = spec.is_remote
        other = self._engines.pop(not remote, None)
        if other is not None:
            other.close()  # frees a local model's memory, or a server's connections
        self._current = remote
        return self._engine(remote).load(spec, progress)

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]:
        return self.current.generate(request, on_chunk)

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice = "auto"
    ) -> Future[int]:
        return self.current.count_tokens(messages, prompt_format)

    def lever_tokens(self, levers: Levers) -> Future[tuple[LeverTokens, ...]]:
        return self.current.lever_tokens(levers)

    def close(self, timeout: float = 5.0) -> None:
        for engine in list(self._engines.values()):
            engine.close(timeout)
