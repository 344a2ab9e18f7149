"""The sampling levers on hand-made logits: exact formulas, and the fast candidate path
keeping exactly the tokens the plain full-vocabulary filters keep."""

from __future__ import annotations

import math

import pytest
import torch

from leverchat.engine.sampling import TokenPicker, banned_ngram_tokens
from leverchat.levers import Levers

CPU = torch.device("cpu")


def picker(prompt: list[int], reply: list[int], vocab: int = 8) -> TokenPicker:
    p = TokenPicker(prompt, vocab, CPU)
    for token in reply:
        p.accept(token)
    return p


def test_frequency_and_presence_follow_the_openai_formula() -> None:
    logits = torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.5])
    # Token 1 is only in the prompt: these penalties count the reply's own tokens only.
    p = picker(prompt=[1, 1], reply=[3, 3, 5])
    out = p.penalised(logits, Levers(frequency_penalty=0.5, presence_penalty=0.25))
    expected = logits.clone()
    expected[3] -= 2 * 0.5 + 0.25
    expected[5] -= 1 * 0.5 + 0.25
    assert torch.equal(out, expected)
    assert torch.equal(logits, torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0, -2.0, 0.0, 1.5]))


def test_negative_penalties_encourage_repeats() -> None:
    logits = torch.zeros(8)
    out = picker([], [2]).penalised(logits, Levers(frequency_penalty=-1.0, presence_penalty=-0.5))
    assert out[2] == pytest.approx(1.5)
    assert torch.count_nonzero(out) == 1


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits() -> None:
    logits = torch.tensor([2.0, -2.0, 2.0, -2.0, 1.0, 1.0, 1.0, 1.0])
    out = picker(prompt=[0, 1], reply=[4]).penalised(logits, Levers(repetition_penalty=2.0))
    assert out.tolist() == [1.0, -4.0, 2.0, -2.0, 0.5, 1.0, 1.0, 1.0]


def test_no_repeat_ngram_bans_the_token_that_would_repeat() -> None:
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 3) == [3]
    assert banned_ngram_tokens([1, 2, 3, 1, 2], 2) == [3]  # "2 3" exists; last token is 2
    assert banned_ngram_tokens([5, 5], 1) == [5, 5]
    logits = torch.zeros(8)
    out = picker([1, 2, 3, 1], [2]).penalised(logits, Levers(no_repeat_ngram_size=3))
    assert out[3] == -math.inf
    assert torch.isfinite(out).sum() == 7


def test_greedy_picks_the_best_token_after_penalties() -> None:
    logits = torch.tensor([0.0, 5.0, 4.9, 0.0, 0.0, 0.0, 0.0, 0.0])
    p = picker([], [1])
    gen = torch.Generator().manual_seed(0)
    assert p.pick(logits, Levers(temperature=0.0), gen) == 1
    assert p.pick(logits, Levers(temperature=0.0, presence_penalty=0.5), gen) == 2


LEVER_CASES = [
    Levers(temperature=1.0, top_p=1.0, min_p=0.0),
    Levers(temperature=0.7, top_p=0.9, min_p=0.0),
    Levers(temperature=0.7, top_p=0.95, min_p=0.05),
    Levers(temperature=1.3, top_k=40, top_p=1.0, min_p=0.0),
    Levers(temperature=1.0, top_k=40, top_p=0.8, min_p=0.1),
    Levers(temperature=2.0, top_p=0.99, min_p=0.0),
    Levers(temperature=0.5, top_p=1.0, min_p=0.2),
    Levers(temperature=1.0, top_p=0.0, min_p=0.0),
    Levers(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0),
]


@pytest.mark.parametrize("levers", LEVER_CASES)
@pytest.mark.parametrize("seed", range(5))
def test_fast_candidates_keep_exactly_what_the_reference_filters_keep(
    levers: Levers, seed: int
) -> None:
    vocab = 5000
    torch.manual_seed(seed)
    logits = torch.randn(vocab) * (1 + seed)
    p = TokenPicker([1, 2, 3], vocab, CPU)
    scores = p.penalised(logits, levers)
    values, ids = p.candidates(scores, levers)
    reference = p.process(logits, levers)
    kept = set(torch.nonzero(torch.isfinite(reference)).squeeze(-1).tolist())
    assert set(ids.tolist()) == kept
    assert torch.allclose(values, reference[ids])
    if len(ids) < vocab:  # with no filter at all, the whole vocabulary comes back unsorted
        assert values.tolist() == sorted(values.tolist(), reverse=True)


def test_sampling_only_returns_kept_tokens_and_a_seed_reproduces() -> None:
    vocab = 1000
    torch.manual_seed(3)
    logits = torch.randn(vocab) * 3
    levers = Levers(temperature=1.0, top_k=5, top_p=1.0, min_p=0.0)
    allowed = set(torch.topk(logits, 5).indices.tolist())
    p = TokenPicker([], vocab, CPU)
    draws = [p.pick(logits, levers, torch.Generator().manual_seed(s)) for s in range(50)]
    assert set(draws) <= allowed
    assert len(set(draws)) > 1
    again = [p.pick(logits, levers, torch.Generator().manual_seed(s)) for s in range(50)]
    assert draws == again


def test_typical_p_keeps_tokens_near_the_expected_surprise() -> None:
    # One very likely token, a few medium ones, a long tail: typical-p drops the tail.
    logits = torch.tensor([5.0] + [2.0] * 4 + [-5.0] * 95)
    p = TokenPicker([], 100, CPU)
    kept = torch.isfinite(
        p.process(logits, Levers(temperature=1.0, top_p=1.0, min_p=0.0, typical_p=0.5))
    )
    assert 1 <= int(kept.sum()) < 100
    assert not kept[50:].any()


def test_neutral_levers_leave_the_distribution_untouched() -> None:
    from leverchat.levers import neutral_levers

    torch.manual_seed(0)
    logits = torch.randn(500)
    p = picker(prompt=[1, 2, 3], reply=[4, 4, 5], vocab=500)
    assert torch.equal(p.process(logits, neutral_levers()), logits)


# -- ties: the fast path keeps what the reference (and transformers) keeps -----------------

PLAIN = {"temperature": 1.0, "top_p": 1.0, "min_p": 0.0}


def reference_kept(p: TokenPicker, logits: torch.Tensor, levers: Levers) -> set[int]:
    return set(torch.nonzero(torch.isfinite(p.process(logits, levers))).flatten().tolist())


def sampled(p: TokenPicker, logits: torch.Tensor, levers: Levers, draws: int = 300) -> set[int]:
    return {p.pick(logits, levers, torch.Generator().manual_seed(s)) for s in range(draws)}


def test_top_k_keeps_the_tokens_tied_with_the_kth_as_transformers_does() -> None:
    from transformers.generation.logits_process import TopKLogitsWarper

    logits = torch.tensor([2.0, 1.0, 1.0, 0.0])
    levers = Levers(**PLAIN, top_k=2)
    p = TokenPicker([], 4, CPU)
    hf = TopKLogitsWarper(2)(None, logits.unsqueeze(0))[0]
    assert set(torch.nonzero(torch.isfinite(hf)).flatten().tolist()) == {0, 1, 2}
    assert reference_kept(p, logits, levers) == {0, 1, 2}
    # Tokens 1 and 2 are equally likely: a reply can continue with either.
    assert sampled(p, logits, levers) == {0, 1, 2}


def test_top_k_on_bfloat16_logits_keeps_every_tie_at_the_cut() -> None:
    # bfloat16 keeps 8 bits of mantissa: on a 49k vocabulary the 40th value is tied.
    torch.manual_seed(0)
    logits = (torch.randn(49152) * 3).to(torch.bfloat16)
    top = torch.topk(logits.float(), 41).values
    assert top[39] == top[40], "the case needs a tie at the cut"
    levers = Levers(**PLAIN, top_k=40)
    p = TokenPicker([], 49152, CPU)
    _values, ids = p.candidates(p.penalised(logits, levers), levers)
    assert len(ids) > 40
    assert set(ids.tolist()) == reference_kept(p, logits, levers)
    assert set(ids.tolist()) == set(torch.nonzero(logits.float() >= top[39]).flatten().tolist())


def test_typical_p_keeps_every_token_of_equal_surprise() -> None:
    from transformers.generation.logits_process import TypicalLogitsWarper

    logits = torch.zeros(10)
    levers = Levers(**PLAIN, typical_p=0.5)
    p = TokenPicker([], 10, CPU)
    hf = TypicalLogitsWarper(0.5)(None, logits.unsqueeze(0))[0]
    assert torch.isfinite(hf).all()
    assert reference_kept(p, logits, levers) == set(range(10))
    assert sampled(p, logits, levers) == set(range(10))


def test_top_p_on_equal_tokens_keeps_the_same_count_in_both_paths_and_transformers() -> None:
    from transformers.generation.logits_process import TopPLogitsWarper

    logits = torch.zeros(5000)
    levers = Levers(**{**PLAIN, "top_p": 0.5})
    p = TokenPicker([], 5000, CPU)
    hf = TopPLogitsWarper(0.5)(None, logits.unsqueeze(0))[0]
    _values, ids = p.candidates(p.penalised(logits, levers), levers)
    assert int(torch.isfinite(hf).sum()) == 2500
    assert len(ids) == len(reference_kept(p, logits, levers)) == 2500


def test_top_p_ending_in_a_group_of_equal_tokens_keeps_the_lowest_ids_in_both_paths() -> None:
    # The fast path starts from 64 candidates; the nucleus ends inside a tie group of 5000.
    logits = torch.cat([torch.tensor([3.0, 2.0]), torch.zeros(5000)])
    levers = Levers(**{**PLAIN, "top_p": 0.5})
    p = TokenPicker([], len(logits), CPU)
    _values, ids = p.candidates(p.penalised(logits, levers), levers)
    kept = reference_kept(p, logits, levers)
    assert ids.tolist()[:2] == [0, 1]
    assert set(ids.tolist()) == kept
    assert kept == set(range(len(kept)))  # the lowest ids of the tie group, every time
    assert 2 < len(kept) < 5000
