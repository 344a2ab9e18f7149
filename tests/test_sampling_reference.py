"""Property tests of the sampling levers against references, on logits with ties.

Two comparisons on random logits (small grids that tie often, -inf entries, bfloat16 rounding):

1. What ``TokenPicker.pick`` samples from (its fast candidate path) against the plain
   full-vocabulary ``process``: exactly the same tokens, the same probabilities.
2. ``process`` against transformers' own processors, applied in leverchat's order
   (RepetitionPenalty, Temperature, TopK, TopP, MinP, Typical): the same tokens, the same
   probabilities.

Two allowances in (2), each said where it applies:
- Where top-p's count ends inside a group of equally likely tokens, transformers keeps whichever
  of them ``torch.sort`` (not stable) happens to put last; leverchat keeps the lowest ids. Both
  must keep the same number of them, and nothing else may differ.
- transformers adds probabilities in float32, leverchat in float64. When a lever sits within
  1e-4 of a cut (a top-p mass, a min-p ratio, a typical-p mass), float32 rounding decides; there
  leverchat must match transformers at a lever value within 1e-4 of the one asked for.

CI runs a bounded number of examples; set ``LEVERCHAT_FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import (
    LogitsProcessor,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from leverchat.engine.sampling import TokenPicker
from leverchat.levers import Levers

EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "250"))
CPU = torch.device("cpu")
NUDGE = 1e-4

# Few distinct values, so that ties (at the top-k cut, inside the nucleus, in typical-p's
# surprise gaps) are the rule rather than the exception.
GRID = [-4.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0, -math.inf]


@dataclass(frozen=True)
class Case:
    logits: torch.Tensor  # what the model gave: float32, or bfloat16 as a GPU gives it
    prompt: tuple[int, ...]
    levers: Levers
    first_candidates: int  # small values make the fast path grow and complete tie groups


@st.composite
def cases(draw: st.DrawFn, extra: bool = False) -> Case:
    """``extra``: also the samplers transformers lacks (DRY, XTC, mirostat v2, dynamic
    temperature, temperature-last), for the fast path against the reference."""
    vocab = draw(st.integers(2, 300))
    if draw(st.booleans()):
        values = draw(st.lists(st.sampled_from(GRID), min_size=vocab, max_size=vocab))
    else:
        finite = st.floats(-30, 30, allow_nan=False, width=32)
        values = draw(
            st.lists(
                st.one_of(finite, st.just(-math.inf)),
                min_size=vocab,
                max_size=vocab,
            )
        )
    if all(math.isinf(v) for v in values):
        values[draw(st.integers(0, vocab - 1))] = 0.0
    logits = torch.tensor(values, dtype=torch.float32)
    if draw(st.booleans()):
        logits = logits.to(torch.bfloat16)
    prompt = tuple(draw(st.lists(st.integers(0, vocab - 1), max_size=8)))
    levers = Levers(
        temperature=draw(st.one_of(st.just(1.0), st.floats(0.05, 5.0))),
        top_k=draw(st.one_of(st.just(0), st.integers(1, vocab + 2))),
        top_p=draw(st.one_of(st.just(1.0), st.just(0.0), st.floats(0.0, 1.0))),
        min_p=draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-4, 1.0))),
        typical_p=draw(st.one_of(st.just(1.0), st.floats(0.01, 1.0))),
        repetition_penalty=draw(st.one_of(st.just(1.0), st.floats(0.5, 2.0))),
    )
    if extra:
        levers = replace(
            levers,
            temperature_last=draw(st.integers(0, 1)),
            dynatemp_range=draw(st.one_of(st.just(0.0), st.floats(0.05, 3.0))),
            dynatemp_exponent=draw(st.floats(0.25, 4.0)),
            # XTC's coin always (1) or never (0) comes up, so pick's own draw is known.
            xtc_probability=draw(st.sampled_from([0.0, 1.0])),
            xtc_threshold=draw(st.floats(0.0, 0.5)),
            mirostat_tau=draw(st.one_of(st.just(0.0), st.just(0.0), st.floats(0.1, 10.0))),
            dry_multiplier=draw(st.one_of(st.just(0.0), st.floats(0.1, 3.0))),
            dry_allowed_length=draw(st.integers(1, 3)),
        )
    return Case(logits, prompt, levers, draw(st.sampled_from([1, 3, 64])))


def picker_for(case: Case) -> TokenPicker:
    picker = TokenPicker(list(case.prompt), case.logits.shape[-1], CPU)
    picker.FIRST_CANDIDATES = case.first_candidates
    return picker


def transformers_processed(case: Case, levers: Levers) -> torch.Tensor:
    """The logits after transformers' processors, in the order leverchat applies the levers."""
    processors: list[LogitsProcessor] = []
    if levers.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(levers.repetition_penalty))
    if levers.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(levers.temperature))
    if levers.top_k > 0:
        processors.append(TopKLogitsWarper(levers.top_k))
    if levers.top_p < 1.0:
        processors.append(TopPLogitsWarper(levers.top_p))
    if levers.min_p > 0.0:
        processors.append(MinPLogitsWarper(levers.min_p))
    if levers.typical_p < 1.0:
        processors.append(TypicalLogitsWarper(levers.typical_p))
    # generate() hands the processors float32 logits, whatever the model's dtype.
    scores = case.logits.float().unsqueeze(0).clone()
    input_ids = torch.tensor([list(case.prompt)], dtype=torch.long)
    for processor in processors:
        if isinstance(processor, RepetitionPenaltyLogitsProcessor) and not case.prompt:
            continue
        scores = processor(input_ids, scores)
    return scores[0]


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits)).squeeze(-1).tolist())


def agree(ours: torch.Tensor, theirs: torch.Tensor, *, top_p_on: bool) -> bool:
    """Same tokens kept with the same probabilities, up to which of a group of equally likely
    tokens at top-p's cut are kept (only when top-p is on)."""
    ours_kept, theirs_kept = torch.isfinite(ours), torch.isfinite(theirs)
    ours_probs, theirs_probs = torch.softmax(ours, -1), torch.softmax(theirs, -1)
    if torch.equal(ours_kept, theirs_kept):
        return torch.equal(ours[ours_kept], theirs[theirs_kept]) and torch.allclose(
            ours_probs, theirs_probs, atol=1e-6
        )
    if not top_p_on:
        return False
    # Both processed the same values bit for bit, so the kept values must be the same
    # multiset, and every token only one side kept must have one and the same value.
    same_values = torch.equal(
        torch.sort(ours[ours_kept]).values, torch.sort(theirs[theirs_kept]).values
    )
    differ = ours_kept ^ theirs_kept
    differing_values = torch.where(ours_kept, ours, theirs)[differ]
    return (
        same_values
        and len(set(differing_values.tolist())) == 1
        and torch.allclose(
            torch.sort(ours_probs).values, torch.sort(theirs_probs).values, atol=1e-6
        )
    )


# A probability float32 cannot resolve against a total mass of 1 (its epsilon is 1.2e-7).
NEGLIGIBLE = 1e-6


def only_negligible_tokens_differ(ours: torch.Tensor, theirs: torch.Tensor, case: Case) -> bool:
    """Whether the two keep the same tokens but for some whose probability, where top-p looks,
    is below NEGLIGIBLE. leverchat adds the masses before each token (float32 terms, summed in
    float64): with top_p within ~1e-7 of 1 (0.9999999999999999, say) that sum reaches top_p
    before the last few tokens of p ~1e-8 (seen by hypothesis: 7.3e-9), which transformers,
    summing from the least likely, keeps."""
    seen = torch.softmax(transformers_processed(case, replace(case.levers, top_p=1.0)).double(), -1)
    differ = torch.isfinite(ours) ^ torch.isfinite(theirs)
    return bool(differ.any()) and bool((seen[differ] < NEGLIGIBLE).all())


def nudged_levers(levers: Levers) -> list[Levers]:
    """The levers with one cut moved by NUDGE either way, for the float32 rounding allowance."""
    out = []
    for sign in (-1.0, 1.0):
        if levers.top_p < 1.0:
            out.append(replace(levers, top_p=min(1.0, max(0.0, levers.top_p + sign * NUDGE))))
        if levers.min_p > 0.0:
            out.append(replace(levers, min_p=min(1.0, levers.min_p * (1 + sign * NUDGE))))
        if levers.typical_p < 1.0:
            typical = min(0.9999, max(0.01, levers.typical_p + sign * NUDGE))
            out.append(replace(levers, typical_p=typical))
    return out


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(case=cases())
def test_pick_samples_from_exactly_what_the_reference_keeps(case: Case) -> None:
    picker = picker_for(case)
    reference = picker.process(case.logits, case.levers)
    probs, ids = picker.distribution(case.logits, case.levers)
    if case.levers.typical_p >= 1.0:
        # The fast path: its candidates are exactly the tokens the reference keeps.
        values, candidates = picker.candidates(
            picker.penalised(case.logits, case.levers), case.levers
        )
        # (With no filter on, the whole vocabulary comes back, removed tokens as -inf.)
        finite = torch.isfinite(values)
        assert set(candidates[finite].tolist()) == kept(reference)
        assert int(finite.sum()) == len(kept(reference))
        assert torch.equal(values, reference[candidates])
        assert torch.equal(ids, candidates)  # what pick samples from
    # The same probabilities, and none outside the tokens pick can return.
    reference_probs = torch.softmax(reference, -1)
    assert torch.allclose(probs, reference_probs[ids], atol=1e-6)
    assert float(reference_probs[ids].sum()) == pytest.approx(1.0, abs=1e-5)
    generator = torch.Generator().manual_seed(0)
    assert picker.pick(case.logits, case.levers, generator) in kept(reference)


@FUZZ
@given(case=cases(extra=True))
def test_pick_agrees_with_the_reference_with_every_sampler(case: Case) -> None:
    """DRY, XTC, mirostat v2, dynamic temperature and temperature-last in both paths."""
    levers = case.levers
    fired = levers.xtc_probability == 1.0 and not levers.mirostat
    picker = picker_for(case)
    reference = picker.process(case.logits, levers, xtc_fired=fired)
    probs, ids = picker.distribution(case.logits, levers, xtc_fired=fired)
    reference_probs = torch.softmax(reference, -1)
    assert torch.allclose(probs, reference_probs[ids], atol=1e-6)
    assert float(reference_probs[ids].sum()) == pytest.approx(1.0, abs=1e-5)
    if not levers.is_greedy and torch.isfinite(picker.penalised(case.logits, levers).max()):
        # The same tokens can come out (a kept token may still underflow to probability 0).
        assert set(ids[probs > 0].tolist()) == kept(torch.log(reference_probs))
    generator = torch.Generator().manual_seed(0)
    assert picker.pick(case.logits, levers, generator) in kept(reference)


@FUZZ
@given(case=cases())
def test_the_reference_matches_transformers_processors(case: Case) -> None:
    ours = picker_for(case).process(case.logits, case.levers)
    top_p_on = case.levers.top_p < 1.0
    if agree(ours, transformers_processed(case, case.levers), top_p_on=top_p_on):
        return
    # Within NUDGE of a cut float32 rounding decides: then match transformers at a lever
    # value that close to the one asked for.
    for levers in nudged_levers(case.levers):
        if agree(ours, transformers_processed(case, levers), top_p_on=top_p_on):
            event("a cut within 1e-4 of a lever value")
            return
    theirs = transformers_processed(case, case.levers)
    if top_p_on and only_negligible_tokens_differ(ours, theirs, case):
        event("top-p within float32's resolution of 1: a token of probability < 1e-6 cut")
        return
    raise AssertionError(
        f"leverchat keeps {sorted(kept(ours))}, transformers {sorted(kept(theirs))}"
    )
