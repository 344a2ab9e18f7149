"""The engine's vocabulary: requests in, chunks and results out.

Pure data, importable without torch: the UI, history and CLI layers use these types too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from leverchat.engine.custom_format import CustomFormat
from leverchat.engine.inspection import TokenInspection
from leverchat.levers import Levers

Role = Literal["system", "user", "assistant"]
PromptFormat = Literal["auto", "chat_template", "instruction"]
# A built-in format by name, or one defined in a profile (engine/custom_format.py).
FormatChoice = PromptFormat | CustomFormat


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


class StopReason(StrEnum):
    END_OF_TURN = "end_of_turn"
    MAX_TOKENS = "max_tokens"
    STOP_STRING = "stop_string"
    CONTEXT_FULL = "context_full"
    CANCELLED = "cancelled"
    ERROR = "error"
    # A remote server's stream was cut mid-reply: the text so far is kept.
    INTERRUPTED = "interrupted"

    @property
    def description(self) -> str:
        return _STOP_DESCRIPTIONS[self]


_STOP_DESCRIPTIONS = {
    StopReason.END_OF_TURN: "end of turn",
    StopReason.MAX_TOKENS: "max tokens reached",
    StopReason.STOP_STRING: "stop string",
    StopReason.CONTEXT_FULL: "context window full",
    StopReason.CANCELLED: "stopped",
    StopReason.ERROR: "error",
    StopReason.INTERRUPTED: "interrupted (the server's stream was cut)",
}


class LeverSource(Protocol):
    """Where the engine reads the levers at each decoding step (see levers.LiveLevers)."""

    def snapshot(self) -> tuple[int, Levers]: ...


@dataclass(frozen=True)
class FixedLevers:
    """A LeverSource that never changes (the CLI, tests)."""

    levers: Levers

    def snapshot(self) -> tuple[int, Levers]:
        return 0, self.levers


@dataclass(frozen=True)
class LeverChange:
    """Levers changed while a reply streamed: they applied from token ``token_index`` on."""

    token_index: int
    levers: Levers
    changed: tuple[str, ...]


@dataclass(frozen=True)
class ReplyPrefix:
    """The start of a reply, given rather than sampled: a branch from one of its tokens.

    ``text`` is the whole prefix, which every engine can send (a remote server continues it
    as a final assistant message). A local engine starts the reply with exactly
    ``token_ids`` then the tokens of ``tail`` (the text after them, tokenized as it stands);
    with no ``token_ids`` it tokenizes ``text``. The reply streams the prefix first, and the
    levers' max_new_tokens counts only the tokens sampled after it.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    tail: str = ""


@dataclass
class GenerationRequest:
    messages: tuple[ChatMessage, ...]
    levers: LeverSource
    cancel: threading.Event = field(default_factory=threading.Event)
    prompt_format: FormatChoice = "auto"
    # Token inspector: record the top ``inspect`` alternatives of every reply token (0: off,
    # and then it costs nothing). See engine/inspection.py.
    inspect: int = 0
    # Continue the reply from this start instead of from nothing (a branch; see ReplyPrefix).
    reply_prefix: ReplyPrefix | None = None


@dataclass(frozen=True)
class Stats:
    prompt_tokens: int = 0
    reused_prefix_tokens: int = 0
    prefilled_tokens: int = 0
    new_tokens: int = 0
    time_to_first_token_s: float = 0.0
    total_s: float = 0.0
    tokens_per_s: float = 0.0
    context_window: int = 0
    trimmed_messages: int = 0


class Fault(StrEnum):
    """What went wrong talking to a remote server; `ask` exits with a distinct code each."""

    UNREACHABLE = "unreachable"
    KEY_REFUSED = "key_refused"
    UNKNOWN_MODEL = "unknown_model"
    BUSY = "busy"  # 429 or 503, after honouring Retry-After
    STREAM_CUT = "stream_cut"
    MALFORMED = "malformed"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"


@dataclass(frozen=True)
class UnavailableLever:
    """A lever the engine cannot apply, and why (shown in the panel, warned by `ask`)."""

    name: str
    reason: str


@dataclass(frozen=True)
class RemoteProvenance:
    """What a remote reply was asked with: where, which model, and the exact lever values sent
    (in the server's own field names), plus the levers it could not apply. Never a key."""

    endpoint: str
    server: str
    model_id: str
    sent: tuple[tuple[str, str], ...] = ()  # (field, JSON text of the value), in send order
    unavailable: tuple[UnavailableLever, ...] = ()
    requests: int = 1  # more than one when a lever change continued the reply
    # Each continuing request after a lever change: (token index, the values it sent).
    continued: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = ()
    note: str = ""


@dataclass(frozen=True)
class LeverTokens:
    """What a text-valued lever became in the loaded tokenizer: a banned or boosted phrase's
    token sequences (its variants), or a DRY sequence breaker's token."""

    lever: str
    text: str
    sequences: tuple[tuple[int, ...], ...]
    weight: float | None = None  # a boosted phrase's logit bias (on each sequence's first token)
    # The text of each token of each sequence, as the tokenizer decodes it alone (for display).
    pieces: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    text: str
    stop_reason: StopReason
    stats: Stats
    seed: int
    levers: Levers
    lever_changes: tuple[LeverChange, ...] = ()
    error: str | None = None
    token_ids: tuple[int, ...] = ()
    # Remote engines only: what was sent, and what went wrong (None: nothing).
    remote: RemoteProvenance | None = None
    fault: Fault | None = None
    # Stop strings the prompt format added to the levers' own (see prompt.format_stops).
    format_stops: tuple[str, ...] = ()
    # One record per reply token when the request asked for inspection (else empty).
    inspection: tuple[TokenInspection, ...] = ()
    # The prompt format used, in words (prompt.describe_format); "" when not known.
    prompt_format: str = ""
    # The banned and boosted phrases and DRY breakers of the reply's last levers, as tokens.
    lever_tokens: tuple[LeverTokens, ...] = ()
    # How many of ``token_ids`` were the request's reply_prefix (given, not sampled).
    prefix_tokens: int = 0
    # What the user should know about how the levers applied (a structured-output change
    # refused mid-reply), in words.
    notices: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.stop_reason is StopReason.ERROR


@dataclass(frozen=True)
class LoadProgress:
    """One step of loading a model, for a progress display."""

    stage: str
    message: str
    fraction: float | None = None


ChunkCallback = Callable[[str], None]
ProgressCallback = Callable[[LoadProgress], None]


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about a loaded model."""

    name: str
    source: str
    device: str
    dtype: str
    context_window: int
    has_chat_template: bool
    # Remote engines: the levers this server cannot apply (the panel marks them).
    unavailable_levers: tuple[UnavailableLever, ...] = ()
    # How the linear layers' weights are stored: "none", "int8 weight-only", "int4 weight-only"
    # (see engine/quantize.py).
    quantization: str = "none"

    @property
    def provenance_name(self) -> str:
        """The model as a reply's provenance records it: its name and, when quantised, how;
        so reproducing a reply with another quantisation says so."""
        if self.quantization == "none":
            return self.name
        return f"{self.name} [{self.quantization}]"


class EngineError(Exception):
    """A problem the user can act on (bad model path, no network, ...); the message says how.
    ``fault`` classifies a remote server's problem (for `ask`'s exit code)."""

    def __init__(self, message: str, fault: Fault | None = None) -> None:
        super().__init__(message)
        self.fault = fault


@dataclass(frozen=True)
class ModelSpec:
    """Which model to load and how. ``source`` None means the bundled SmolLM2-135M-Instruct."""

    source: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # CPU threads for torch; None: one fewer than the cores where a UI shares them, else all
    # of them (see worker.cpu_threads_for).
    threads: int | None = None
    # The chat's UI thread draws while the model decodes: leave it a core. `ask` and `sweep`
    # have no UI and use every core.
    leave_core_for_ui: bool = True
    # "int8"/"int4": weight-only quantisation of the linear layers (engine/quantize.py); faster,
    # not bit-identical to the float model. "none": the weights as loaded. None or "auto": the
    # default for the model and device (quantize.default_method).
    quantize: str | None = None
    # Compile the one-token step with a static KV cache sized once (see engine/compiled.py).
    compile: bool = False
    # The most tokens of context to use; None: the model's window (4096 at most with compile).
    context: int | None = None
    # Remote engines (source "openai+http://host:port/v1"): which of the server's models, and
    # which server dialect (None: detect it, else plain OpenAI).
    model_name: str | None = None
    server: str | None = None

    @property
    def is_remote(self) -> bool:
        return is_remote_source(self.source)


REMOTE_PREFIX = "openai+"


def is_remote_source(source: str | None) -> bool:
    """Whether a --model value names an OpenAI-compatible server (openai+http(s)://...)."""
    return source is not None and source.lower().startswith(
        (REMOTE_PREFIX + "http://", REMOTE_PREFIX + "https://")
    )


class ChatEngine(Protocol):
    """What the UI and CLI need from an engine. ``worker.EngineThread`` is the local torch one,
    ``remote.engine.RemoteEngine`` the one over an OpenAI-compatible server, and
    ``select.AnyEngine`` picks between them at each load; tests use a scripted engine with the
    same shape. Every call returns at once; callbacks run on the
    engine's own thread (never touch widgets from them: post a message)."""

    def load(
        self, spec: ModelSpec, progress: ProgressCallback | None = None
    ) -> Future[ModelInfo]: ...

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]: ...

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice = "auto"
    ) -> Future[int]: ...

    def lever_tokens(self, levers: Levers) -> Future[tuple[LeverTokens, ...]]:
        """Which tokens the banned and boosted phrases of ``levers`` become in the loaded
        model's tokenizer (empty when there is none here), for the panel to show."""
        ...

    def close(self, timeout: float = 5.0) -> None: ...
