"""One remote reply: the streaming loop, live levers over HTTP, and the result.

The levers are read between tokens; when they change, the current request ends and the same
reply continues with a new request carrying the new levers and the text so far (the dialect's
continuation: vLLM's continue_final_message, a final assistant message the server continues,
or /v1/completions with the model's chat template rendered here). The change is recorded with
its position, counted in streamed text events (one token each on the servers tested).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from leverchat.engine.inspection import TokenInspection
from leverchat.engine.remote import logprobs
from leverchat.engine.remote.client import RemoteClient, RemoteError
from leverchat.engine.remote.dialects import Dialect, WireRequest
from leverchat.engine.remote.template import Renderer
from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    Fault,
    GenerationRequest,
    GenerationResult,
    LeverChange,
    RemoteProvenance,
    Stats,
    StopReason,
    UnavailableLever,
)
from leverchat.levers import Levers, random_seed
from leverchat.persona import with_persona_note
from leverchat.structured_specs import active_constraint

_FINISH = {"stop": StopReason.END_OF_TURN, "length": StopReason.MAX_TOKENS}


@dataclass
class Session:
    """A connected server: its client, dialect, the model id, and the model's chat template
    when it could be read here (for continuing through /v1/completions)."""

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
    inspections: list[TokenInspection] = field(default_factory=list)

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


def generate_reply(
    session: Session, request: GenerationRequest, on_chunk: ChunkCallback | None
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
    if request.reply_prefix is not None and request.reply_prefix.text:
        # A branch: the reply starts with the given text and continues it, the way a lever
        # change continues a reply (a server has no token ids, so the text is all it gets).
        if not _can_continue(session):
            return failed_result(
                start_levers,
                f"{session.dialect.label} cannot continue a reply without the model's chat "
                "template, so a reply cannot be branched on this server",
                None,
            )
        reply.pieces.append(request.reply_prefix.text)
        if on_chunk is not None:
            on_chunk(request.reply_prefix.text)
    tracker.read(reply)
    # The persona note (persona.py) is placed once, from the levers the reply starts with.
    messages = with_persona_note(request.messages, start_levers)
    try:
        while True:
            levers = tracker.levers
            room = levers.max_new_tokens - reply.events
            if room <= 0:
                return _result(session, reply, StopReason.MAX_TOKENS, seed, start_levers, tracker)
            wire = _wire(session, messages, _with_room(levers, room), seed, reply)
            if request.inspect and session.dialect.name in logprobs.SUPPORTED:
                wire = _with_logprobs(wire, session.dialect, request.inspect)
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
                if request.inspect:
                    label = session.dialect.label
                    reply.inspections.extend(logprobs.read(event, label, request.inspect))
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
        self, request: GenerationRequest, session: Session, version: int, levers: Levers
    ) -> None:
        self._request = request
        self._can_continue = _can_continue(session)
        self.version = version
        self.levers = levers
        self.deferred = False
        self.deferred_structured = False

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
        if reply.requests > 0 and (
            active_constraint(self.levers) is not None or active_constraint(current) is not None
        ):
            # A continuation is a new request: the server would start its grammar again at
            # the reply's middle and could break the JSON. The change waits for the next reply.
            self.deferred_structured = True
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


def _can_continue(session: Session) -> bool:
    return session.dialect.continuation != "completions" or session.renderer is not None


def _wire(
    session: Session,
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


def _with_logprobs(wire: WireRequest, dialect: Dialect, top_n: int) -> WireRequest:
    """Ask for the token inspector's log-probabilities (the chat route only: the completions
    route a continuation may take reports them in another shape)."""
    if wire.path != dialect.chat_path:
        return wire
    return replace(wire, body={**wire.body, **logprobs.request_fields(top_n)})


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
    session: Session,
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
    notices: tuple[str, ...] = ()
    if tracker.deferred_structured:
        notices = (
            "The lever change applies from the next reply: this one is constrained by "
            "structured output, and continuing it in a new request would restart the "
            f"{session.dialect.label} server's grammar in the middle of the reply.",
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
        inspection=tuple(reply.inspections),
        notices=notices,
    )


def failed_result(levers: Levers, message: str, fault: Fault | None) -> GenerationResult:
    return GenerationResult(
        text="",
        stop_reason=StopReason.ERROR,
        stats=Stats(),
        seed=levers.seed if levers.seed is not None else 0,
        levers=levers,
        error=message,
        fault=fault,
    )
