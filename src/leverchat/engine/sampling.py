"""Pick the next token under the live levers.

transformers has no frequency/presence penalty and fixes its processors for a whole
``generate`` call, so leverchat applies every lever itself, from the levers read at this very
step. Each lever costs nothing when it is at its neutral value. The order follows
transformers' own: penalties first (they also apply to greedy decoding: repetition,
frequency/presence, n-gram blocking, DRY, banned phrases; boosted phrases' logit bias
before them all, as llama.cpp's chain), then temperature, top-k, top-p,
min-p, typical-p and XTC. ``temperature_last`` moves temperature after XTC (as
text-generation-webui's option does; llama.cpp's default chain already ends with it), and
mirostat v2 replaces everything after temperature (as in llama.cpp). How each filter treats ties
is in :mod:`leverchat.engine.truncation`; the samplers beyond the common levers are in
:mod:`leverchat.engine.samplers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from leverchat.engine.samplers.boost import BoostedPhrase, boosted_phrases, token_biases
from leverchat.engine.samplers.dry import breaker_ids, dry_penalties
from leverchat.engine.samplers.dynatemp import apply_temperature
from leverchat.engine.samplers.mirostat import MirostatState, mirostat_filter
from leverchat.engine.samplers.phrase_ban import BannedPhrase, banned_phrases, blocked_tokens
from leverchat.engine.samplers.xtc import apply_xtc, xtc_fires
from leverchat.engine.truncation import (
    filter_min_p,
    filter_top_k,
    filter_top_p,
    filter_typical_p,
    log_normaliser,
    lowest_ids_at_the_cut,
    min_p_floor,
    nucleus_candidates,
    nucleus_size,
    top_k_with_ties,
)
from leverchat.lever_weights import Weights
from leverchat.levers import Levers

if TYPE_CHECKING:
    import torch

__all__ = [
    "TokenPicker",
    "apply_frequency_presence",
    "banned_ngram_tokens",
    "filter_min_p",
    "filter_top_k",
    "filter_top_p",
    "filter_typical_p",
    "penalise_repeats",
]


def penalise_repeats(logits: torch.Tensor, penalty: float) -> torch.Tensor:
    """The repetition penalty on the logits of tokens already seen, with transformers'
    semantics: a positive logit is divided by the penalty and a negative one multiplied, so a
    penalty above 1 always makes the token less likely."""
    import torch

    return torch.where(logits > 0, logits / penalty, logits * penalty)


def apply_frequency_presence(
    logits: torch.Tensor, counts: torch.Tensor, frequency: float, presence: float
) -> torch.Tensor:
    """OpenAI semantics: logit -= count * frequency + (count > 0) * presence."""
    adjustment = counts * frequency
    if presence:
        adjustment = adjustment + (counts > 0).to(logits.dtype) * presence
    return logits - adjustment


def banned_ngram_tokens(ids: list[int], size: int) -> list[int]:
    """Tokens that would repeat an n-gram of ``size`` already present in ``ids``."""
    if size <= 0 or len(ids) < size:
        return []
    prefix = tuple(ids[len(ids) - size + 1 :]) if size > 1 else ()
    banned: list[int] = []
    for start in range(len(ids) - size + 1):
        if tuple(ids[start : start + size - 1]) == prefix:
            banned.append(ids[start + size - 1])
    return banned


class TokenPicker:
    """Holds what the penalties need to know about the tokens so far, and picks the next one.

    ``prompt_ids`` count for the repetition penalty and n-gram blocking (as in transformers);
    the frequency and presence penalties count only the reply's own tokens (OpenAI).

    The penalties touch only the tokens they concern (a few hundred, not the 49k vocabulary),
    and sampling works on a small candidate set found with ``topk``: on SmolLM2 a full sort for
    top-p and a multinomial over the whole vocabulary cost ~6 ms of an ~89 ms token.
    :meth:`process` is the plain full-vocabulary version of the same filters, kept as the
    reference the fast path is tested against (and used for typical-p, which needs the
    entropy of the whole distribution).
    """

    # The first candidate count tried for top-p; quadrupled until it holds top_p of the mass.
    FIRST_CANDIDATES = 64

    def __init__(
        self,
        prompt_ids: list[int],
        vocab_size: int,
        device: torch.device,
        encode: Callable[[str], list[int]] | None = None,
    ) -> None:
        """``encode``: the loaded tokenizer's text -> ids (no special tokens), which turns DRY's
        sequence breakers and banned phrases into tokens; without it they match nothing."""
        self._encode = encode
        self._breakers: tuple[tuple[str, ...], frozenset[int]] = ((), frozenset())
        self._bans: tuple[tuple[str, ...], tuple[BannedPhrase, ...]] = ((), ())
        self._boosts: tuple[Weights, tuple[BoostedPhrase, ...]] = ((), ())
        self._bias_tensors: tuple[Weights, torch.Tensor, torch.Tensor] | None = None
        # Mirostat's mu: one per reply, as the picker is.
        self.mirostat = MirostatState()
        # What the last pick drew for the step not yet accepted: XTC's coin and the mu
        # mirostat cut at. The inspector, called between pick and accept, sees that very step.
        self._drawn_xtc: bool | None = None
        self._drawn_mu: float | None = None
        self._vocab_size = vocab_size
        self._device = device
        self._all_ids = list(prompt_ids)
        self._seen: dict[int, None] = dict.fromkeys(i for i in prompt_ids if 0 <= i < vocab_size)
        self._seen_tensor: torch.Tensor | None = None
        self._reply_counts: dict[int, int] = {}
        self._reply_tensors: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def accept(self, token_id: int) -> None:
        """Record a generated token."""
        self._drawn_xtc = self._drawn_mu = None  # the next step draws afresh
        self._all_ids.append(token_id)
        if not 0 <= token_id < self._vocab_size:
            return
        if token_id not in self._seen:
            self._seen[token_id] = None
            self._seen_tensor = None
        self._reply_counts[token_id] = self._reply_counts.get(token_id, 0) + 1
        self._reply_tensors = None

    # -- penalties (also applied to greedy decoding) -------------------------------------

    def penalised(self, logits: torch.Tensor, levers: Levers) -> torch.Tensor:
        """The logits with the repetition, frequency/presence and n-gram levers applied."""
        import torch

        logits = logits[: self._vocab_size].float()
        modified = False
        if levers.boost:
            # First, as llama.cpp's logit-bias sampler: the penalties see the biased logits.
            ids, biases = self._biases(levers.boost, logits.device)
            if ids.numel():
                logits, modified = logits.clone(), True
                logits[ids] += biases
        if levers.repetition_penalty != 1.0 and self._seen:
            if self._seen_tensor is None:
                self._seen_tensor = torch.tensor(list(self._seen), device=logits.device)
            logits, modified = logits.clone(), True
            logits[self._seen_tensor] = penalise_repeats(
                logits[self._seen_tensor], levers.repetition_penalty
            )
        if (levers.frequency_penalty or levers.presence_penalty) and self._reply_counts:
            if self._reply_tensors is None:
                self._reply_tensors = (
                    torch.tensor(list(self._reply_counts), device=logits.device),
                    torch.tensor(
                        list(self._reply_counts.values()),
                        dtype=torch.float32,
                        device=logits.device,
                    ),
                )
            if not modified:
                logits, modified = logits.clone(), True
            ids, counts = self._reply_tensors
            # Every count here is at least 1, so the presence term applies to each.
            logits[ids] = apply_frequency_presence(
                logits[ids], counts, levers.frequency_penalty, levers.presence_penalty
            )
        if levers.no_repeat_ngram_size:
            banned = banned_ngram_tokens(self._all_ids, levers.no_repeat_ngram_size)
            if banned:
                if not modified:
                    logits, modified = logits.clone(), True
                logits[banned] = float("-inf")
        if levers.dry_multiplier > 0.0:
            penalties = dry_penalties(
                self._all_ids,
                levers.dry_multiplier,
                levers.dry_base,
                levers.dry_allowed_length,
                self.breaker_ids(levers.dry_sequence_breakers),
            )
            penalties = {t: v for t, v in penalties.items() if 0 <= t < self._vocab_size}
            if penalties:
                if not modified:
                    logits, modified = logits.clone(), True
                dry_ids = list(penalties)
                logits[dry_ids] -= torch.tensor(list(penalties.values()), device=logits.device)
        if levers.ban:
            blocked = [
                t
                for t in blocked_tokens(self._all_ids, self.banned(levers.ban))
                if 0 <= t < self._vocab_size
            ]
            if blocked:
                if not modified:
                    logits = logits.clone()
                logits[blocked] = float("-inf")
        return logits

    @property
    def encode_text(self) -> Callable[[str], list[int]] | None:
        return self._encode

    def breaker_ids(self, breakers: tuple[str, ...]) -> frozenset[int]:
        """DRY's sequence breakers as tokens of the loaded tokenizer (cached per value)."""
        if self._breakers[0] != breakers:
            ids = breaker_ids(breakers, self._encode) if self._encode else frozenset()
            self._breakers = (breakers, ids)
        return self._breakers[1]

    def banned(self, phrases: tuple[str, ...]) -> tuple[BannedPhrase, ...]:
        """The ``ban`` lever's phrases and the token sequences each became (cached)."""
        if self._bans[0] != phrases:
            found = banned_phrases(phrases, self._encode) if self._encode else ()
            self._bans = (phrases, found)
        return self._bans[1]

    def boosted(self, weights: Weights) -> tuple[BoostedPhrase, ...]:
        """The ``boost`` lever's phrases and the token sequences each became (cached)."""
        if self._boosts[0] != weights:
            found = boosted_phrases(weights, self._encode) if self._encode else ()
            self._boosts = (weights, found)
        return self._boosts[1]

    def _biases(self, weights: Weights, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The boost as (token ids, what to add to their logits), built once per value."""
        import torch

        if self._bias_tensors is None or self._bias_tensors[0] != weights:
            biases = token_biases(self.boosted(weights), self._vocab_size)
            self._bias_tensors = (
                weights,
                torch.tensor(list(biases), dtype=torch.long, device=device),
                torch.tensor(list(biases.values()), dtype=torch.float32, device=device),
            )
        return self._bias_tensors[1], self._bias_tensors[2]

    # -- the reference, full-vocabulary filters ------------------------------------------

    def process(
        self, logits: torch.Tensor, levers: Levers, *, xtc_fired: bool | None = None
    ) -> torch.Tensor:
        """The logits after every lever but the final choice (1-D, float32, -inf = removed).

        ``xtc_fired``: whether XTC's coin came up this step; None: what :meth:`pick` drew for
        this step (no coin before it)."""
        xtc_fired = self.xtc_fired if xtc_fired is None else xtc_fired
        logits = self.penalised(logits, levers)
        if levers.is_greedy:
            return logits
        if levers.mirostat:
            logits = apply_temperature(logits, levers)
            return mirostat_filter(logits, self.mirostat_mu(levers))
        if not levers.temperature_last:
            logits = apply_temperature(logits, levers)
        logits = filter_top_k(logits, levers.top_k)
        logits = filter_top_p(logits, levers.top_p)
        logits = filter_min_p(logits, levers.min_p)
        logits = filter_typical_p(logits, levers.typical_p)
        if xtc_fired:
            logits = apply_xtc(logits, levers.xtc_threshold)
        if levers.temperature_last:
            logits = apply_temperature(logits, levers)
        return logits

    @property
    def xtc_fired(self) -> bool:
        """Whether XTC's coin came up at the pick of the step not yet accepted."""
        return bool(self._drawn_xtc)

    def mirostat_mu(self, levers: Levers) -> float:
        """The mu mirostat cuts at this step: the one the last pick used until its token is
        accepted (pick then moves mu on for the next step), else the current one."""
        if self._drawn_mu is not None:
            return self._drawn_mu
        return self.mirostat.current(levers.mirostat_tau)

    # -- the fast path -------------------------------------------------------------------

    def candidates(self, scores: torch.Tensor, levers: Levers) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens top-k, top-p and min-p keep, as (scaled logits, token ids): most likely
        first, or the whole vocabulary in its own order when no filter is on. ``scores`` are
        penalised logits; typical-p, XTC and mirostat are not handled here, nor temperature
        when ``temperature_last`` (then the logits come back unscaled). Keeps exactly what
        :meth:`process` keeps, ties included (see :mod:`leverchat.engine.truncation`)."""
        import torch

        if not levers.temperature_last:
            scores = apply_temperature(scores, levers)
        vocab = scores.shape[-1]
        if 0 < levers.top_k < vocab:
            values, ids = top_k_with_ties(scores, levers.top_k)
            if levers.top_p < 1.0:
                # top-p after top-k works on the renormalised top-k distribution.
                kept = nucleus_size(values, levers.top_p, log_normaliser(values))
                values, ids = lowest_ids_at_the_cut(values, ids, kept, values, ids)
        elif levers.top_p < 1.0:
            values, ids = nucleus_candidates(scores, levers.top_p, self.FIRST_CANDIDATES)
        elif levers.min_p > 0.0:
            # min-p alone: keep everything within log(min_p) of the best logit.
            ids = torch.nonzero(scores >= min_p_floor(scores.max(), levers.min_p)).squeeze(-1)
            values = scores[ids]
            order = torch.argsort(values, descending=True, stable=True)
            return values[order], ids[order]
        else:
            return scores, torch.arange(vocab, device=scores.device)
        keep = torch.isfinite(values)
        if levers.min_p > 0.0:
            keep &= values >= min_p_floor(values[0], levers.min_p)
        keep[0] = True  # the most likely token always stays
        return values[keep], ids[keep]

    def distribution(
        self, logits: torch.Tensor, levers: Levers, *, xtc_fired: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`pick` samples from, as (probabilities, token ids). Where typical-p or
        mirostat is on, the whole vocabulary, with zeros for the tokens it removed. Between
        ``pick`` and ``accept`` it is the very distribution that pick drew from (its XTC coin
        and mirostat mu); ``xtc_fired`` overrides the coin."""
        import torch

        xtc_fired = self.xtc_fired if xtc_fired is None else xtc_fired

        scores = self.penalised(logits, levers)
        if levers.is_greedy:
            return torch.ones(1, device=scores.device), torch.argmax(scores).reshape(1)
        if not torch.isfinite(scores.max()):
            return torch.ones(1, device=scores.device), torch.argmax(
                logits[: self._vocab_size]
            ).reshape(1)
        return self._sampled(logits, scores, levers, xtc_fired)

    def _sampled(
        self, logits: torch.Tensor, scores: torch.Tensor, levers: Levers, xtc_fired: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if levers.typical_p < 1.0 or levers.mirostat:
            # Typical-p and mirostat need the whole distribution: the full reference.
            probs = torch.softmax(self.process(logits, levers, xtc_fired=xtc_fired), dim=-1)
            return probs, torch.arange(probs.shape[-1], device=probs.device)
        values, ids = self.candidates(scores, levers)
        if xtc_fired:
            values = apply_xtc(values, levers.xtc_threshold, ids)
        if levers.temperature_last:
            values = apply_temperature(values, levers, ids)
        return torch.softmax(values, dim=-1), ids

    def pick(self, logits: torch.Tensor, levers: Levers, generator: torch.Generator) -> int:
        import torch

        scores = self.penalised(logits, levers)
        if levers.is_greedy:
            return int(torch.argmax(scores).item())
        if not torch.isfinite(scores.max()):
            # Every token was banned (n-gram blocking on a tiny vocabulary): fall back to the
            # unpenalised choice rather than sampling from nothing.
            return int(torch.argmax(logits[: self._vocab_size]).item())
        mirostat = levers.mirostat
        # The coin is drawn only while XTC is on, so a reply without it draws exactly as before.
        fired = not mirostat and xtc_fires(levers.xtc_probability, generator)
        self._drawn_xtc = fired
        self._drawn_mu = self.mirostat.current(levers.mirostat_tau) if mirostat else None
        probs, ids = self._sampled(logits, scores, levers, fired)
        choice = torch.multinomial(probs, 1, generator=generator)
        if mirostat:
            self.mirostat.update(levers.mirostat_tau, levers.mirostat_eta, float(probs[choice]))
        return int(ids[choice].item())
