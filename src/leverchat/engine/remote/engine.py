"""RemoteEngine: the ChatEngine contract over an OpenAI-compatible server.

Same shape as the local EngineThread: every call returns a Future at once, work runs on one
daemon thread, chunks are handed to ``on_chunk`` from that thread, ``request.cancel`` stops a
reply (the HTTP stream is closed) and the partial text is kept.

Live levers over HTTP: the levers are read after every streamed event; when they changed, the
request is ended and the same reply continues with a new request carrying the new levers and
the text so far (the dialect's continuation: vLLM's continue_final_message, a final assistant
message the server continues, or /v1/completions with the model's chat template rendered
here). The change is recorded with its position, counted in streamed events (one token each on
the servers tested).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from leverchat.engine.remote.client import RemoteClient, RemoteError
from leverchat.engine.remote.detect import check_server_name, choose_model, detect_server
from leverchat.engine.remote.dialects import DIALECTS, Dialect, WireRequest
from leverchat.engine.remote.endpoint import Endpoint, parse_endpoint
from leverchat.engine.remote.keys import api_key
from leverchat.engine.remote.template import Renderer, load_renderer
from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    EngineError,
    Fault,
    GenerationRequest,
    GenerationResult,
    LeverChange,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
    PromptFormat,
    RemoteProvenance,
    Stats,
    StopReason,
    UnavailableLever,
)
from leverchat.levers import Levers, random_seed

log = logging.getLogger(__name__)

T = TypeVar("T")
ClientFactory = Callable[[Endpoint, str | None], RemoteClient]

_FINISH = {"stop": StopReason.END_OF_TURN, "length": StopReason.MAX_TOKENS}


@dataclass
class _Session:
    client: RemoteClient
    dialect: Dialect
    model_id: str
    renderer: Renderer | None


@dataclass
class _Reply:
    started: float
    pieces: list[str] = field(default_factory=list)
    events: int = 0
    first_at: float | None = None
    last_at: float | None = None
    changes: list[LeverChange] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    continued: list[tuple[int, tuple[tuple[str, str], ...]]] = field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def add(self, text: str, on_chunk: ChunkCallback | None) -> None:
        now = time.perf_counter()
        self.first_at = self.first_at or now
        self.last_at = now
        self.events += 1
        self.pieces.append(text)
        if on_chunk is not None:
            on_chunk(text)


class RemoteEngine:
    """A ChatEngine whose replies come from a server (see the module docstring)."""

    def __init__(self, client_factory: ClientFactory | None = None) -> None:
        self._client_factory: ClientFactory = client_factory or (
            lambda endpoint, key: RemoteClient(endpoint, key)
        )
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._session: _Session | None = None
        self._load_error: str | None = None
        self._cancel_current: threading.Event | None = None
        self.info: ModelInfo | None = None

    # -- ChatEngine ---------------------------------------------------------------------

    def load(self, spec: ModelSpec, progress: ProgressCallback | None = None) -> Future[ModelInfo]:
        return self._submit(lambda: self._load(spec, progress))

    def generate(
        self, request: GenerationRequest, on_chunk: ChunkCallback | None = None
    ) -> Future[GenerationResult]:
        def run() -> GenerationResult:
            session = self._session
            if session is None:
                reason = self._load_error or "no server is connected"
                _, levers = request.levers.snapshot()
                return _failed(levers, f"no model is loaded: {reason}", None)
            self._cancel_current = request.cancel
            try:
                return _generate(session, request, on_chunk)
            finally:
                self._cancel_current = None

        return self._submit(run)

    def count_tokens(
        self, messages: tuple[ChatMessage, ...], prompt_format: PromptFormat = "auto"
    ) -> Future[int]:
        def run() -> int:
            raise EngineError("a remote model's tokens are counted by its server, not here")

        return self._submit(run)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        cancel = self._cancel_current
        if cancel is not None:
            cancel.set()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job[1].set_running_or_notify_cancel():
                job[1].set_exception(EngineError("the engine was closed"))
        self._jobs.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        session = self._session
        if session is not None:
            session.client.close()

    # -- internals ----------------------------------------------------------------------

    def _load(self, spec: ModelSpec, progress: ProgressCallback | None) -> ModelInfo:
        report = progress or (lambda step: None)
        old = self._session
        self._session, self.info = None, None
        if old is not None:
            old.client.close()
        try:
            endpoint = parse_endpoint(spec.source or "")
            report(LoadProgress("connecting", f"Connecting to {endpoint.display}", None))
            client = self._client_factory(endpoint, api_key())
            try:
                entries, _ = client.list_models()
                model_id = choose_model(entries, spec.model_name, endpoint.display)
                server = (
                    check_server_name(spec.server)
                    if spec.server
                    else detect_server(client, entries)
                )
            except BaseException:
                client.close()
                raise
        except EngineError as error:
            self._load_error = str(error)
            raise
        dialect = DIALECTS[server]
        renderer = load_renderer(model_id) if dialect.continuation == "completions" else None
        self._session = _Session(client, dialect, model_id, renderer)
        self._load_error = None
        self.info = ModelInfo(
            name=model_id,
            source=endpoint.display,
            device=f"{dialect.label} at {endpoint.display}",
            dtype="",
            context_window=0,
            has_chat_template=True,
            unavailable_levers=dialect.unavailable_levers(),
        )
        report(LoadProgress("ready", f"{model_id} on {dialect.label} is ready", 1.0))
        return self.info

    def _submit(self, run: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(EngineError("the engine was closed"))
                return future
            if self._thread is None:
                # A daemon thread: a server that never answers cannot keep the process alive.
                self._thread = threading.Thread(
                    target=self._serve, name="leverchat-remote", daemon=True
                )
                self._thread.start()
            self._jobs.put((run, future))
        return future

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            run, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = run()
            except BaseException as error:
                if not isinstance(error, EngineError):
                    log.exception("remote engine job failed")
                future.set_exception(error)
            else:
                future.set_result(result)


def _generate(
    session: _Session, request: GenerationRequest, on_chunk: ChunkCallback | None
) -> GenerationResult:
    # The levers are read as the local engine reads them (see replay.py), so that a recorded
    # reply's lever changes replay at the same tokens: once to start, then before each token
    # (here: before the first one, and after each streamed token), and once more when the
    # token limit is reached.
    version, levers = request.levers.snapshot()
    start_levers = levers
    seed = levers.seed if levers.seed is not None else random_seed()
    reply = _Reply(started=time.perf_counter())
    tracker = _LeverTracker(request, session, version, levers)
    tracker.read(reply)
    try:
        while True:
            levers = tracker.levers
            room = levers.max_new_tokens - reply.events
            if room <= 0:
                return _result(session, reply, StopReason.MAX_TOKENS, seed, start_levers, tracker)
            wire = _wire(session, request.messages, _with_room(levers, room), seed, reply)
            reply.requests += 1
            if reply.requests == 1:
                reply.sent = list(wire.sent)
            else:
                reply.continued.append((reply.events, wire.sent))
            finished: StopReason | None = None
            changed = False
            events = session.client.stream(wire, session.model_id, request.cancel)
            # Leaving the loop closes the HTTP stream at once (Esc, a lever change).
            for event in _closing(events):
                text, finish, usage = _read_event(event)
                if usage and reply.requests == 1:
                    reply.prompt_tokens = usage
                if text:
                    reply.add(text, on_chunk)
                if request.cancel.is_set():
                    break
                if finish is not None:
                    finished = finish
                    break
                if text and tracker.read(reply):
                    changed = True
                    break
            if request.cancel.is_set():
                return _result(session, reply, StopReason.CANCELLED, seed, start_levers, tracker)
            if changed:
                continue
            if finished is None:
                raise RemoteError(
                    f"the stream from {session.client.endpoint.display} ended before the reply did",
                    Fault.STREAM_CUT,
                )
            return _result(session, reply, finished, seed, start_levers, tracker)
    except RemoteError as error:
        if request.cancel.is_set():  # the stream was shut down by Esc: not a fault
            return _result(session, reply, StopReason.CANCELLED, seed, start_levers, tracker)
        fault = error.fault or Fault.SERVER_ERROR
        # Text already streamed is kept: the reply is interrupted, not failed.
        reason = StopReason.INTERRUPTED if reply.pieces else StopReason.ERROR
        return _result(session, reply, reason, seed, start_levers, tracker, str(error), fault)


class _LeverTracker:
    """Reads the live levers between tokens; a change is recorded, and ends the current
    request when the server can continue the reply (else it applies from the next reply)."""

    def __init__(
        self, request: GenerationRequest, session: _Session, version: int, levers: Levers
    ) -> None:
        self._request = request
        self._can_continue = _can_continue(session)
        self.version = version
        self.levers = levers
        self.deferred = False

    def read(self, reply: _Reply) -> bool:
        """True when the levers changed and the current request must end."""
        if self._changed(reply):
            return True
        if reply.events >= self.levers.max_new_tokens:
            return self._changed(reply)  # the "is it done?" read
        return False

    def _changed(self, reply: _Reply) -> bool:
        version, current = self._request.levers.snapshot()
        if version == self.version:
            return False
        self.version = version
        if not self._can_continue and reply.requests > 0:
            self.deferred = True
            return False
        reply.changes.append(
            LeverChange(
                token_index=reply.events,
                levers=current,
                changed=current.changed_names(self.levers),
            )
        )
        self.levers = current
        return reply.requests > 0


def _dropped(
    dialect: Dialect, levers: Levers, changes: list[LeverChange]
) -> tuple[UnavailableLever, ...]:
    """The unavailable levers that had an effect-changing value at any point of the reply."""
    found: dict[str, UnavailableLever] = {}
    for values in (levers, *(change.levers for change in changes)):
        for lever in dialect.dropped(values):
            found.setdefault(lever.name, lever)
    return tuple(found.values())


def _closing(events: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from events
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _with_room(levers: Levers, room: int) -> Levers:
    return levers if room == levers.max_new_tokens else levers.with_value("max_new_tokens", room)


def _can_continue(session: _Session) -> bool:
    return session.dialect.continuation != "completions" or session.renderer is not None


def _wire(
    session: _Session,
    messages: tuple[ChatMessage, ...],
    levers: Levers,
    seed: int,
    reply: _Reply,
) -> WireRequest:
    dialect = session.dialect
    if not reply.pieces:
        return dialect.chat_request(session.model_id, messages, levers, seed)
    if dialect.continuation == "completions" and session.renderer is not None:
        prompt = session.renderer(messages) + reply.text
        return dialect.completion_request(session.model_id, prompt, levers, seed)
    return dialect.chat_request(session.model_id, messages, levers, seed, prefix=reply.text)


def _read_event(event: Any) -> tuple[str, StopReason | None, int]:
    """(text, finish reason or None, prompt tokens or 0) of one event of any dialect."""
    if "message" in event or "done" in event:  # Ollama's /api/chat lines
        message = event.get("message") or {}
        text = message.get("content", "") if isinstance(message, dict) else ""
        finish = None
        if event.get("done"):
            finish = _FINISH.get(str(event.get("done_reason", "stop")), StopReason.END_OF_TURN)
        prompt = event.get("prompt_eval_count", 0)
        return str(text or ""), finish, prompt if isinstance(prompt, int) else 0
    choices = event.get("choices")
    if not isinstance(choices, list):
        raise RemoteError(f"an event has no 'choices' list: {str(event)[:80]}", Fault.MALFORMED)
    usage = event.get("usage")
    prompt = usage.get("prompt_tokens", 0) if isinstance(usage, dict) else 0
    if not choices:  # a usage-only event
        return "", None, prompt if isinstance(prompt, int) else 0
    choice = choices[0]
    if not isinstance(choice, dict):
        raise RemoteError("an event's choice is not an object", Fault.MALFORMED)
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    reason = choice.get("finish_reason")
    finish = _FINISH.get(str(reason), StopReason.END_OF_TURN) if reason else None
    return str(text or ""), finish, prompt if isinstance(prompt, int) else 0


def _result(
    session: _Session,
    reply: _Reply,
    reason: StopReason,
    seed: int,
    levers: Levers,
    tracker: _LeverTracker,
    error: str | None = None,
    fault: Fault | None = None,
) -> GenerationResult:
    finished = time.perf_counter()
    ttft = (reply.first_at - reply.started) if reply.first_at else 0.0
    decode_time = (reply.last_at - reply.first_at) if reply.first_at and reply.last_at else 0.0
    rate = (reply.events - 1) / decode_time if reply.events > 1 and decode_time > 0 else 0.0
    note = (
        f"a lever change during this reply applies from the next one: {session.dialect.label} "
        "cannot continue a reply without the model's chat template"
        if tracker.deferred
        else ""
    )
    remote = RemoteProvenance(
        endpoint=session.client.endpoint.display,
        server=session.dialect.name,
        model_id=session.model_id,
        sent=tuple(reply.sent),
        unavailable=_dropped(session.dialect, levers, reply.changes),
        requests=reply.requests,
        continued=tuple(reply.continued),
        note=note,
    )
    return GenerationResult(
        text=reply.text,
        stop_reason=reason,
        stats=Stats(
            prompt_tokens=reply.prompt_tokens,
            prefilled_tokens=reply.prompt_tokens,
            new_tokens=reply.events,
            time_to_first_token_s=ttft,
            total_s=finished - reply.started,
            tokens_per_s=rate,
        ),
        seed=seed,
        levers=levers,
        lever_changes=tuple(reply.changes),
        error=error,
        remote=remote,
        fault=fault,
    )


def _failed(levers: Levers, message: str, fault: Fault | None) -> GenerationResult:
    return GenerationResult(
        text="",
        stop_reason=StopReason.ERROR,
        stats=Stats(),
        seed=levers.seed if levers.seed is not None else 0,
        levers=levers,
        error=message,
        fault=fault,
    )
