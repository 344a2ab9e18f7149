"""The generation loop: prefix-cache reuse, live levers, streaming, cancel, stop strings.

One :class:`Generator` owns a loaded model and its KV cache. It must only ever be called from
the engine thread (see worker.py). It is a lean decode loop rather than ``model.generate``:
the levers can change at every step, the penalties transformers lacks are applied, cancel is
checked before every forward pass, and the KV cache survives between turns.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from leverchat.engine.compiled import CompiledStep
from leverchat.engine.detokenize import IncrementalDecoder, StopStringFilter
from leverchat.engine.inspection import TokenInspection
from leverchat.engine.prompt import (
    describe_format,
    encode_messages,
    encode_within_budget,
    format_stops,
)
from leverchat.engine.sampling import TokenPicker
from leverchat.engine.structured import ConstraintTokenizer, ReplyConstraint
from leverchat.engine.types import (
    ChatMessage,
    ChunkCallback,
    EngineError,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
    LeverChange,
    LeverTokens,
    Stats,
    StopReason,
)
from leverchat.levers import Levers, random_seed
from leverchat.persona import with_persona_note

if TYPE_CHECKING:
    import torch

    from leverchat.engine.inspector import Inspector
    from leverchat.engine.lean_step import LeanStep

log = logging.getLogger(__name__)

# The smallest room left for a reply when trimming a long conversation.
MIN_REPLY_ROOM = 64


def common_prefix_length(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    index = 0
    while index < limit and a[index] == b[index]:
        index += 1
    return index


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


class Generator:
    """Runs requests against one model, keeping the KV cache of the last turn."""

    # The prompt format of the reply being run, in words (recorded in its result).
    _format_name = ""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        context_window: int,
        *,
        compile: bool = False,
        compile_backend: str = "inductor",
        lean: bool = True,
    ):
        """``context_window``: the most tokens a turn may hold (the static cache's size with
        ``compile``: see compiled.py, and call :meth:`warm_up` before the first reply).
        ``lean=False`` runs every step through the model's own forward (tests compare)."""
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.context_window = context_window
        self.eos_ids = _eos_ids(model, tokenizer)
        self.vocab_size = _output_vocab_size(model)
        # Structured output's view of the tokenizer: built the first time a reply needs it.
        self._constraint_tokens = ConstraintTokenizer(tokenizer, self.vocab_size, self.eos_ids)
        # transformers 5.x renamed `past_key_values` to `cache`; older model code keeps it.
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self.compiled: CompiledStep | None = (
            CompiledStep(model, device, context_window, backend=compile_backend)
            if compile
            else None
        )
        self._cache: Any = self.compiled.cache if self.compiled is not None else None
        # One-token steps without transformers' per-layer Python, where the model allows it
        # (lean_step.py: same arithmetic, same cache).
        self.lean: LeanStep | None = None
        if lean and self.compiled is None:
            from leverchat.engine.lean_step import lean_step_for

            self.lean = lean_step_for(model, device)
        # The tokens whose keys and values are in the cache, in order.
        self._cached_ids: list[int] = []

    # -- public -------------------------------------------------------------------------

    def count_tokens(self, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice) -> int:
        return len(encode_messages(self.tokenizer, messages, prompt_format))

    def lever_tokens(self, levers: Levers) -> tuple[LeverTokens, ...]:
        """What the phrases of ``levers`` become in this tokenizer (the panel shows it)."""
        picker = TokenPicker([], self.vocab_size, self.device, self._encode_text)
        return lever_tokens(picker, levers, self._decode_token)

    def _decode_token(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def reset_cache(self) -> None:
        if self.compiled is not None:
            self.compiled.empty()  # the static cache is kept for the whole session
        else:
            self._cache = None
        self._cached_ids = []

    def warm_up(self) -> float | None:
        """Compile the decode step now (with ``compile``), so the first reply does not wait
        for it. Returns the seconds it took, None without ``compile``."""
        if self.compiled is None:
            return None
        import torch

        token = next(iter(sorted(self.eos_ids)), 0)
        with torch.inference_mode():
            seconds = self.compiled.warm_up(self._forward, self._cache_argument, token)
        self._cached_ids = []
        return seconds

    def run(self, request: GenerationRequest, on_chunk: ChunkCallback | None) -> GenerationResult:
        import torch

        started = time.perf_counter()
        version, levers = request.levers.snapshot()
        start_levers = levers
        seed = levers.seed if levers.seed is not None else random_seed()
        state = _ReplyState()
        stats = Stats(context_window=self.context_window)
        own_stops: tuple[str, ...] = ()
        try:
            # The prompt format's own stop strings (the instruction format ends a reply where
            # the model starts the next "### Instruction:"), on top of the levers' stops.
            own_stops = format_stops(self.tokenizer, request.prompt_format)
            self._format_name = describe_format(self.tokenizer, request.prompt_format)
            reply_room = min(levers.max_new_tokens, max(MIN_REPLY_ROOM, self.context_window // 2))
            budget = max(1, self.context_window - reply_room)
            # The persona note (persona.py) joins the messages the model sees, never the chat.
            messages = with_persona_note(request.messages, levers)
            encoded = encode_within_budget(self.tokenizer, messages, request.prompt_format, budget)
            prompt_ids = encoded.ids
            stats = Stats(
                prompt_tokens=len(prompt_ids),
                context_window=self.context_window,
                trimmed_messages=encoded.trimmed_messages,
            )
            if request.cancel.is_set():
                return self._result(
                    state, StopReason.CANCELLED, stats, seed, start_levers, started, own_stops
                )
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed)
            picker = TokenPicker(prompt_ids, self.vocab_size, self.device, self._encode_text)
            decoder = IncrementalDecoder(self.tokenizer)
            stop_filter = StopStringFilter()
            inspector = self._inspector(request, state)
            constraint = ReplyConstraint(self._constraint_tokens)
            state.notices = constraint.notices  # the same list: filled as the reply grows

            prefix_ids = self._prefix_ids(request)
            with torch.inference_mode():
                logits, reused, fed = self._start(
                    prompt_ids, prefix_ids, picker, decoder, inspector, levers, state, on_chunk
                )
                stats = replace(stats, reused_prefix_tokens=reused, prefilled_tokens=fed - reused)
                stop_reason = StopReason.MAX_TOKENS
                while True:
                    if request.cancel.is_set():
                        stop_reason = StopReason.CANCELLED
                        break
                    current_version, current = request.levers.snapshot()
                    if current_version != version:
                        state.changes.append(
                            LeverChange(
                                token_index=len(state.token_ids),
                                levers=current,
                                changed=current.changed_names(levers),
                            )
                        )
                        version, levers = current_version, current
                    if len(state.token_ids) >= levers.max_new_tokens:
                        stop_reason = StopReason.MAX_TOKENS
                        break
                    if len(self._cached_ids) + 1 >= self.context_window:
                        stop_reason = StopReason.CONTEXT_FULL
                        break
                    # Structured output: the tokens its grammar forbids are gone (a no-op and
                    # the same tensor while no structured lever is set).
                    masked = constraint.apply(logits, levers)
                    token = picker.pick(masked, levers, generator)
                    if state.first_token_at is None:
                        state.first_token_at = time.perf_counter()
                    if token in self.eos_ids:
                        stop_reason = StopReason.END_OF_TURN
                        break
                    if inspector is not None:  # before accept: as pick saw the penalties
                        mask = None if masked is logits else (constraint.name or "", masked)
                        inspector.observe(picker, logits, levers, token, constrained=mask)
                    picker.accept(token)
                    constraint.accept(token)
                    state.token_ids.append(token)
                    state.last_token_at = time.perf_counter()
                    stops = (*levers.stop, *own_stops) if own_stops else levers.stop
                    piece = decoder.step(token)
                    if inspector is not None:
                        inspector.shown_as((piece,))
                    shown, hit_stop = stop_filter.feed(piece, stops)
                    state.emit(shown, on_chunk)
                    if hit_stop:
                        if inspector is not None:
                            inspector.mark_stop()
                        stop_reason = StopReason.STOP_STRING
                        break
                    if (
                        len(state.token_ids) >= levers.max_new_tokens
                        and request.levers.snapshot()[0] == version
                    ):
                        # Done: skip the forward pass whose logits nobody would use.
                        stop_reason = StopReason.MAX_TOKENS
                        break
                    logits = self._step(token)
            if stop_reason is not StopReason.STOP_STRING:
                state.emit(stop_filter.flush(), on_chunk)
            state.lever_tokens = lever_tokens(picker, levers, self._decode_token)
            return self._result(state, stop_reason, stats, seed, start_levers, started, own_stops)
        except Exception as error:  # any failure ends this request, never the engine
            log.exception("generation failed")
            # The cache may hold a half-written step: start the next turn from scratch.
            self.reset_cache()
            if _is_out_of_memory(error):
                _free_accelerator_memory()
            message = (
                str(error)
                if isinstance(error, EngineError)
                else (f"{type(error).__name__}: {error}")
            )
            return self._result(
                state,
                StopReason.ERROR,
                stats,
                seed,
                start_levers,
                started,
                own_stops,
                error=message,
            )

    # -- internals ----------------------------------------------------------------------

    def _prefix_ids(self, request: GenerationRequest) -> list[int]:
        """The tokens a branched reply starts with (empty: an ordinary reply)."""
        prefix = request.reply_prefix
        if prefix is None:
            return []
        if prefix.token_ids:
            return [*prefix.token_ids, *(self._encode_text(prefix.tail) if prefix.tail else [])]
        return self._encode_text(prefix.text)

    def _start(
        self,
        prompt_ids: list[int],
        prefix_ids: list[int],
        picker: TokenPicker,
        decoder: IncrementalDecoder,
        inspector: Inspector | None,
        levers: Levers,
        state: _ReplyState,
        on_chunk: ChunkCallback | None,
    ) -> tuple[Any, int, int]:
        """Feed the prompt and a branch's given start; return the logits for the next token,
        the tokens reused from the cache and the tokens fed.

        The given tokens are the reply's own first tokens: the penalties see them, they count
        in the reply's token indexes (lever changes, max_new_tokens), and their text streams
        first. They bypass the stop strings (the user chose that text). Without the inspector
        they are fed with the prompt in one pass; with it, one at a time, so that each gets its
        record (what the model would have said there) like a sampled token.
        """
        if inspector is None:
            logits, reused = self._prefill(prompt_ids + prefix_ids)
            for token in prefix_ids:
                picker.accept(token)
        else:
            logits, reused = self._prefill(prompt_ids)
            for token in prefix_ids:
                inspector.observe(picker, logits, levers, token)
                picker.accept(token)
                logits = self._step(token)
        state.token_ids.extend(prefix_ids)
        state.prefix_tokens = len(prefix_ids)
        pieces = [decoder.step(token) for token in prefix_ids]
        if inspector is not None:
            inspector.shown_as(pieces)
        state.emit("".join(pieces), on_chunk)
        return logits, reused, len(prompt_ids) + len(prefix_ids)

    def _inspector(self, request: GenerationRequest, state: _ReplyState) -> Inspector | None:
        if request.inspect <= 0:
            return None
        from leverchat.engine.inspector import Inspector

        inspector = Inspector(self.tokenizer, request.inspect)
        state.inspections = inspector.records  # the same list: filled as the reply grows
        return inspector

    def _encode_text(self, text: str) -> list[int]:
        """Text as the loaded tokenizer writes it mid-reply (no special tokens): for DRY's
        sequence breakers and banned phrases."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _prefill(self, prompt_ids: list[int]) -> tuple[Any, int]:
        """Feed the prompt, reusing the cached keys and values of the longest common prefix.

        Returns the logits for the next token and how many prompt tokens came from the cache.
        """
        from leverchat.engine import kv_cache

        reused = common_prefix_length(self._cached_ids, prompt_ids)
        # At least one token must be fed to get logits for the next one.
        reused = min(reused, len(prompt_ids) - 1)
        if self._cache is None or reused <= 0:
            self.reset_cache()
            if self._cache is None:
                self._cache = kv_cache.new_cache(self.model.config)
            reused = 0
        elif len(self._cached_ids) > reused:
            # transformers 5.x: crop() takes the number of tokens to remove, negated.
            self._cache.crop(-(len(self._cached_ids) - reused))
            del self._cached_ids[reused:]
        return self._forward(prompt_ids[reused:]), reused

    def _step(self, token: int) -> Any:
        """The logits after one more token: the compiled step when there is one."""
        if self.lean is not None:
            position = len(self._cached_ids)
            self._cached_ids.append(token)
            return self.lean(token, position, self._cache)
        if self.compiled is None:
            return self._forward([token])
        self._cached_ids.append(token)
        return self.compiled.step(self._cache_argument, token)

    def _forward(self, ids: list[int]) -> Any:
        import torch

        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        # Record the tokens first: if the forward pass fails the cache is reset anyway.
        self._cached_ids.extend(ids)
        # The cache object is updated in place by the forward pass.
        output = self.model(
            input_ids=input_ids,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_argument: self._cache},
        )
        return output.logits[0, -1]

    def _result(
        self,
        state: _ReplyState,
        reason: StopReason,
        stats: Stats,
        seed: int,
        levers: Any,
        started: float,
        own_stops: tuple[str, ...] = (),
        error: str | None = None,
    ) -> GenerationResult:
        finished = time.perf_counter()
        first = state.first_token_at
        ttft = (first - started) if first is not None else 0.0
        decode_tokens = len(state.token_ids) - state.prefix_tokens - 1  # sampled ones
        decode_time = (state.last_token_at - first) if first and state.last_token_at else 0.0
        tokens_per_s = decode_tokens / decode_time if decode_tokens > 0 and decode_time > 0 else 0.0
        stats = replace(
            stats,
            new_tokens=len(state.token_ids),
            time_to_first_token_s=ttft,
            total_s=finished - started,
            tokens_per_s=tokens_per_s,
        )
        return GenerationResult(
            text=state.text,
            stop_reason=reason,
            stats=stats,
            seed=seed,
            levers=levers,
            lever_changes=tuple(state.changes),
            error=error,
            token_ids=tuple(state.token_ids),
            format_stops=own_stops,
            inspection=tuple(state.inspections),
            prompt_format=self._format_name,
            lever_tokens=state.lever_tokens,
            prefix_tokens=state.prefix_tokens,
            notices=tuple(state.notices),
        )


class _ReplyState:
    def __init__(self) -> None:
        self.token_ids: list[int] = []
        self.pieces: list[str] = []
        self.changes: list[LeverChange] = []
        self.inspections: list[TokenInspection] = []
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.lever_tokens: tuple[LeverTokens, ...] = ()
        self.prefix_tokens = 0  # the first token_ids were given (a branch), not sampled
        self.notices: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def emit(self, piece: str, on_chunk: ChunkCallback | None) -> None:
        if not piece:
            return
        self.pieces.append(piece)
        if on_chunk is not None:
            on_chunk(piece)


def lever_tokens(
    picker: TokenPicker, levers: Levers, decode: Callable[[int], str] | None = None
) -> tuple[LeverTokens, ...]:
    """Which tokens the text-valued levers became: each banned or boosted phrase's sequences,
    and DRY's breakers while DRY is on (shown by ``ask --json``/``--stats``, the panel and F3)."""

    def pieces(sequences: tuple[tuple[int, ...], ...]) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(map(decode, seq)) for seq in sequences) if decode else ()

    out = [
        LeverTokens("ban", phrase.text, phrase.sequences, None, pieces(phrase.sequences))
        for phrase in picker.banned(levers.ban)
    ]
    out.extend(
        LeverTokens("boost", phrase.text, phrase.sequences, phrase.weight, pieces(phrase.sequences))
        for phrase in picker.boosted(levers.boost)
    )
    if levers.dry_multiplier > 0.0:
        encode = picker.encode_text
        for breaker in levers.dry_sequence_breakers:
            tokens = encode("a" + breaker) if encode else []
            out.append(LeverTokens("dry_sequence_breakers", breaker, (tuple(tokens[-1:]),)))
    return tuple(out)


def _output_vocab_size(model: Any) -> int:
    """Rows of the output layer (may exceed the tokenizer's vocabulary when padded)."""
    weight = getattr(model.get_output_embeddings(), "weight", None)
    if callable(weight):  # dynamically quantised Linear layers expose weight()
        weight = weight()
    if weight is not None and hasattr(weight, "shape"):
        return int(weight.shape[0])
    return int(model.config.vocab_size)


def _is_out_of_memory(error: BaseException) -> bool:
    return "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError"


def _free_accelerator_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
