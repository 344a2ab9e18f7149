"""The token inspector's measurements: raw and after-lever probabilities, and which lever
removed each alternative.

**After levers** is :meth:`TokenPicker.distribution` itself, the very vector ``pick`` samples
from, so the two cannot drift apart. **Raw** is the softmax of the model's logits.

**Attribution** replays the levers as a list of named :class:`Stage` objects, in the picker's
order, on the whole vocabulary, and names the first stage after which an alternative is gone.
The stages call the same functions the picker does (``TokenPicker.penalised`` with one
penalty at a time, the ``filter_*`` reference filters of truncation.py, the samplers of
engine/samplers/); a test checks that their composition equals ``TokenPicker.process``. A new
sampler lever slots in as one more :class:`Stage` in :data:`STAGES`. XTC's coin and
mirostat's mu are the ones the picker drew at this step's ``pick``.

A penalty never removes a token by itself; it lowers its logit so that a later filter cuts it.
Such a token is credited to the penalty when, without the penalties, the filters would have
kept it ("the penalty pushed it out"). Dynamic temperature is credited the same way: when the
plain temperature would have kept the token.

Nothing here runs unless a request asks for inspection (``GenerationRequest.inspect``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from leverchat.engine.inspection import STOP_STRING, Alternative, TokenInspection
from leverchat.engine.samplers.dynatemp import apply_temperature
from leverchat.engine.samplers.mirostat import mirostat_filter
from leverchat.engine.samplers.xtc import apply_xtc
from leverchat.engine.truncation import (
    filter_min_p,
    filter_top_k,
    filter_typical_p,
    nucleus_candidates,
)
from leverchat.levers import Levers

if TYPE_CHECKING:
    import torch

    from leverchat.engine.sampling import TokenPicker

StageFunction = Callable[["torch.Tensor", Levers, "TokenPicker"], "torch.Tensor"]


@dataclass(frozen=True)
class Stage:
    """One lever as the picker applies it: ``apply`` maps logits to logits (-inf = removed)."""

    name: str  # the lever's own name (a Levers field): what the inspector reports
    active: Callable[[Levers], bool]
    apply: StageFunction
    # Lowers logits instead of removing tokens (credited when it pushed a token out).
    penalty: bool = False


# The levers TokenPicker.penalised applies, in its order, each at its neutral value.
_NO_PENALTIES: dict[str, Any] = {
    "boost": (),
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "no_repeat_ngram_size": 0,
    "dry_multiplier": 0.0,
    "ban": (),
}
# Those that remove a token outright rather than lower its logit (a boost of -100 does too:
# its -inf is seen as a removal).
_REMOVERS = frozenset({"no_repeat_ngram_size", "ban"})


@lru_cache(maxsize=64)
def _only(levers: Levers, name: str) -> Levers:
    """``levers`` with every penalty neutral but ``name``: one penalty at a time, applied by
    the picker's own code."""
    values = {key: value for key, value in _NO_PENALTIES.items() if key != name}
    return replace(levers, **values)


def _penalty(name: str) -> Stage:
    def apply(logits: torch.Tensor, levers: Levers, picker: TokenPicker) -> torch.Tensor:
        return picker.penalised(logits, _only(levers, name))

    return Stage(
        name=name,
        active=lambda levers: getattr(levers, name) != _NO_PENALTIES[name],
        apply=apply,
        penalty=name not in _REMOVERS,
    )


def _temperature(logits: torch.Tensor, levers: Levers, picker: TokenPicker) -> torch.Tensor:
    import torch

    if levers.is_greedy:
        # Temperature 0: only the best token stays (the picker's argmax).
        keep = torch.zeros_like(logits, dtype=torch.bool)
        keep[torch.argmax(logits)] = True
        return logits.masked_fill(~keep, float("-inf"))
    return apply_temperature(logits, levers)  # dynamic when dynatemp_range > 0


def _temperature_first(levers: Levers) -> bool:
    # Mirostat's chain is temperature then mirostat, whatever temperature_last says.
    return levers.is_greedy or levers.mirostat or not levers.temperature_last


def _truncating(levers: Levers) -> bool:
    """The truncation filters and XTC run: sampling, and mirostat not replacing them."""
    return not levers.is_greedy and not levers.mirostat


def _xtc(logits: torch.Tensor, levers: Levers, picker: TokenPicker) -> torch.Tensor:
    # Only when the coin came up at this step's pick (the picker keeps what it drew).
    return apply_xtc(logits, levers.xtc_threshold) if picker.xtc_fired else logits


def _mirostat(logits: torch.Tensor, levers: Levers, picker: TokenPicker) -> torch.Tensor:
    return mirostat_filter(logits, picker.mirostat_mu(levers))


def _filter(name: str, function: Callable[[torch.Tensor, Any], torch.Tensor]) -> Stage:
    def apply(logits: torch.Tensor, levers: Levers, picker: TokenPicker) -> torch.Tensor:
        return function(logits, getattr(levers, name))

    # At temperature 0 the picker applies no filter (greedy takes the argmax); mirostat
    # replaces them.
    return Stage(
        name=name,
        active=lambda levers: _truncating(levers) and _is_on(name, getattr(levers, name)),
        apply=apply,
    )


def filter_top_p_fast(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``filter_top_p`` by way of the picker's fast path (``nucleus_candidates``), which keeps
    exactly the same tokens: the reference sorts the whole vocabulary (~10 ms of a ~50 ms
    token on SmolLM2), the fast path looks at a few dozen candidates."""
    import torch

    from leverchat.engine.sampling import TokenPicker

    if top_p >= 1.0:
        return logits
    _, kept = nucleus_candidates(logits, top_p, TokenPicker.FIRST_CANDIDATES)
    remove = torch.ones_like(logits, dtype=torch.bool)
    remove[kept] = False
    return logits.masked_fill(remove, float("-inf"))


def _is_on(name: str, value: Any) -> bool:
    if name == "top_k":
        return bool(value > 0)
    if name == "min_p":
        return bool(value > 0.0)
    return bool(value < 1.0)  # top_p, typical_p


# The picker's order (see sampling.py): the boost's logit bias, the penalties, DRY and banned
# phrases; temperature (dynamic or not); top-k, top-p, min-p, typical-p and XTC, or mirostat in
# their place; temperature here instead when temperature_last. Each stage is named by the
# lever that switches it on (XTC by xtc_probability, mirostat by mirostat_tau).
STAGES: tuple[Stage, ...] = (
    *(_penalty(name) for name in _NO_PENALTIES),
    Stage("temperature", _temperature_first, _temperature),
    _filter("top_k", filter_top_k),
    _filter("top_p", filter_top_p_fast),
    _filter("min_p", filter_min_p),
    _filter("typical_p", filter_typical_p),
    Stage("xtc_probability", lambda lv: _truncating(lv) and lv.xtc_probability > 0.0, _xtc),
    Stage("mirostat_tau", lambda lv: not lv.is_greedy and lv.mirostat, _mirostat),
    Stage("temperature", lambda lv: _truncating(lv) and bool(lv.temperature_last), _temperature),
)
# A token these removed may have been pushed out by dynamic temperature instead.
_BEFORE_TEMPERATURE = frozenset(_NO_PENALTIES)


def run_stages(
    logits: torch.Tensor,
    levers: Levers,
    picker: TokenPicker,
    stages: Sequence[Stage] = STAGES,
    *,
    skip_penalties: bool = False,
) -> torch.Tensor:
    """The logits after every active stage (the reference path, whole vocabulary)."""
    scores = logits
    for stage in stages:
        if stage.active(levers) and not (skip_penalties and stage.penalty):
            scores = stage.apply(scores, levers, picker)
    return scores


def attribute(
    logits: torch.Tensor,
    levers: Levers,
    picker: TokenPicker,
    token_ids: Sequence[int],
    stages: Sequence[Stage] = STAGES,
) -> dict[int, str]:
    """For each of ``token_ids`` that the levers removed, the name of the lever that did."""
    import torch

    index = torch.tensor(list(token_ids), dtype=torch.long, device=logits.device)
    scores = logits[: picker.vocab_size].float()
    removed: dict[int, str] = {}
    lowered: dict[int, str] = {}
    for stage in stages:
        if not stage.active(levers):
            continue
        before = scores[index].tolist()
        scores = stage.apply(scores, levers, picker)
        for token, old, new in zip(token_ids, before, scores[index].tolist(), strict=True):
            if token in removed:
                continue
            if new == float("-inf") and old != float("-inf"):
                removed[token] = stage.name
            elif stage.penalty and new < old:
                lowered.setdefault(token, stage.name)
    # Only a token a penalty lowered can have been pushed out by it: the replay without the
    # penalties runs only for those (a seen token among the likeliest, in a chat often).
    pushed = [token for token in removed if token in lowered]
    if pushed:
        unpenalised = run_stages(
            logits[: picker.vocab_size].float(), levers, picker, stages, skip_penalties=True
        )
        kept = unpenalised[torch.tensor(pushed, device=logits.device)].tolist()
        for token, value in zip(pushed, kept, strict=True):
            if value != float("-inf"):
                # Without the penalties it would have stayed: the penalty pushed it out.
                removed[token] = lowered[token]
    if levers.dynatemp_range > 0.0 and not levers.is_greedy:
        _credit_dynatemp(logits, levers, picker, stages, removed)
    return removed


def _credit_dynatemp(
    logits: torch.Tensor,
    levers: Levers,
    picker: TokenPicker,
    stages: Sequence[Stage],
    removed: dict[int, str],
) -> None:
    """Dynamic temperature removes nothing itself; it moves the temperature, and so the line
    top-p, min-p, typical-p, XTC or mirostat draw. A token a filter cut that the same levers
    at the plain temperature would have kept was pushed out by it."""
    import torch

    cut = [token for token, name in removed.items() if name not in _BEFORE_TEMPERATURE]
    if not cut:
        return
    plain = replace(levers, dynatemp_range=0.0)
    kept = run_stages(logits[: picker.vocab_size].float(), plain, picker, stages)
    values = kept[torch.tensor(cut, device=logits.device)].tolist()
    for token, value in zip(cut, values, strict=True):
        if value != float("-inf"):
            removed[token] = "dynatemp_range"


class Inspector:
    """Records one :class:`TokenInspection` per reply token (see :meth:`observe`)."""

    def __init__(self, tokenizer: Any, top_n: int, stages: Sequence[Stage] = STAGES) -> None:
        self._tokenizer = tokenizer
        self._top_n = top_n
        self._stages = stages
        self._texts: dict[int, str] = {}
        self.records: list[TokenInspection] = []

    def observe(
        self,
        picker: TokenPicker,
        logits: torch.Tensor,
        levers: Levers,
        token: int,
        *,
        constrained: tuple[str, torch.Tensor] | None = None,
    ) -> TokenInspection:
        """Record the step that chose ``token`` from ``logits``. Call it after ``pick`` and
        before ``accept`` (the penalties must see the same tokens ``pick`` saw).

        ``constrained``: structured output's lever name and the masked logits ``pick`` saw;
        a token its grammar forbids is "removed by" that lever, before any other."""
        import torch

        raw_logits = logits[: picker.vocab_size].float()
        raw = torch.softmax(raw_logits, dim=-1)
        if constrained is not None:
            logits = constrained[1]
        probs, ids = picker.distribution(logits, levers)
        after = torch.zeros_like(raw)
        after[ids] = probs.to(after.dtype)
        top_ids = torch.topk(raw, min(self._top_n, raw.shape[-1])).indices
        chosen = torch.tensor([token], device=raw.device)
        wanted = torch.cat([chosen, top_ids])
        # Equally likely tokens share a rank: 1 + how many are strictly likelier.
        ranks = torch.stack(
            [(raw > raw[token]).sum() + 1, (after > after[token]).sum() + 1]
        ).tolist()
        raw_values = raw[wanted].tolist()
        after_values = after[wanted].tolist()
        alt_ids = wanted[1:].tolist()
        gone = [t for t, value in zip(alt_ids, after_values[1:], strict=True) if value == 0.0]
        removed = attribute(logits, levers, picker, gone, self._stages) if gone else {}
        if constrained is not None and gone:
            forbidden = logits[torch.tensor(gone, device=logits.device)] == float("-inf")
            for t, out in zip(gone, forbidden.tolist(), strict=True):
                if out:
                    removed[t] = constrained[0]
        alternatives = tuple(
            Alternative(
                token_id=t,
                text=self._text(t),
                raw=raw_value,
                after=after_value,
                removed_by=removed.get(t) if after_value == 0.0 else None,
            )
            for t, raw_value, after_value in zip(
                alt_ids, raw_values[1:], after_values[1:], strict=True
            )
        )
        record = TokenInspection(
            token_id=token,
            text=self._text(token),
            raw=raw_values[0],
            after=after_values[0],
            raw_rank=int(ranks[0]),
            after_rank=int(ranks[1]) if after_values[0] > 0.0 else None,
            alternatives=alternatives,
        )
        self.records.append(record)
        return record

    def shown_as(self, pieces: Sequence[str]) -> None:
        """The text each of the last ``len(pieces)`` recorded tokens added to the reply.

        A token alone can decode to U+FFFD: byte-level vocabularies split a character such as
        "Î" over two tokens. The reply's own decoder adds nothing for the first and the whole
        character for the second; recording that instead makes the records' texts join into
        the reply exactly, so the tinted view never shows "��" where the reply says "Î"."""
        start = len(self.records) - len(pieces)
        for index, piece in enumerate(pieces, start=start):
            if index >= 0 and self.records[index].text != piece:
                self.records[index] = replace(self.records[index], text=piece)

    def mark_stop(self) -> None:
        """The last recorded token completed a stop string: its text was cut there."""
        if self.records:
            self.records[-1] = replace(self.records[-1], stopped_by=STOP_STRING)

    def _text(self, token: int) -> str:
        text = self._texts.get(token)
        if text is None:
            try:
                text = str(self._tokenizer.decode([token]))
            except Exception:  # an id past the tokenizer's vocabulary (padded output layer)
                text = ""
            self._texts[token] = text
        return text
