"""The token inspector: its numbers are the picker's own, and it names the right lever."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat.engine.generate import Generator
from leverchat.engine.inspection import (
    inspection_from_mapping,
    inspection_to_mapping,
)
from leverchat.engine.inspector import Inspector, run_stages
from leverchat.engine.loading import load_model
from leverchat.engine.sampling import TokenPicker
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers

VOCAB = 40
NO_FILTERS: dict[str, Any] = {
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "typical_p": 1.0,
}

LEVER_SETTINGS = [
    Levers(),  # the defaults: temperature 0.7, top-p 0.95, min-p 0.05
    Levers(**NO_FILTERS),
    Levers(temperature=1.3, top_k=5, top_p=1.0, min_p=0.0),
    Levers(temperature=0.8, top_k=12, top_p=0.8, min_p=0.1),
    Levers(temperature=1.0, top_p=1.0, min_p=0.2),
    Levers(temperature=0.9, top_p=1.0, min_p=0.0, typical_p=0.6),
    Levers(temperature=1.1, repetition_penalty=1.4, frequency_penalty=0.5, presence_penalty=0.3),
    Levers(temperature=1.0, top_p=0.9, min_p=0.0, no_repeat_ngram_size=2),
    Levers(temperature=0.0),
]


class _Tokenizer:
    def decode(self, ids: list[int]) -> str:
        return f"<{ids[0]}>"


def _picker(prompt: Sequence[int] = (), reply: Sequence[int] = ()) -> TokenPicker:
    picker = TokenPicker(list(prompt), VOCAB, torch.device("cpu"))
    for token in reply:
        picker.accept(token)
    return picker


def _logits(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(VOCAB, generator=generator) * 3


def _observe(
    logits: torch.Tensor, levers: Levers, picker: TokenPicker | None = None, token: int = -1
) -> Any:
    picker = picker if picker is not None else _picker()
    if token < 0:
        token = picker.pick(logits, levers, torch.Generator().manual_seed(0))
    return Inspector(_Tokenizer(), VOCAB).observe(picker, logits, levers, token)


@pytest.mark.parametrize("levers", LEVER_SETTINGS, ids=lambda lv: str(lv.to_mapping()))
def test_after_levers_is_exactly_what_the_picker_samples_from(levers: Levers) -> None:
    for seed in range(5):
        logits = _logits(seed)
        picker = _picker(prompt=[1, 2, 3, 1], reply=[5, 5, 7, 1])
        probs, ids = picker.distribution(logits, levers)
        expected = torch.zeros(VOCAB).index_put_((ids,), probs)
        record = _observe(logits, levers, picker)
        # Every token of the vocabulary is an alternative here (top-N = the vocabulary).
        after = {alt.token_id: alt.after for alt in record.alternatives}
        assert sorted(after) == list(range(VOCAB))
        assert [after[t] for t in range(VOCAB)] == expected.tolist()
        # ... and that vector is what pick draws from: the same seed, the same token.
        for draw in range(20):
            picked = picker.pick(logits, levers, torch.Generator().manual_seed(draw))
            if levers.is_greedy:
                assert picked == int(ids[0])
                continue
            index = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(draw))
            assert picked == int(ids[index])
            assert after[picked] > 0


@pytest.mark.parametrize("levers", LEVER_SETTINGS[:4], ids=lambda lv: str(lv.to_mapping()))
def test_raw_is_the_softmax_of_the_model_logits_whatever_the_levers(levers: Levers) -> None:
    logits = _logits(3)
    record = _observe(logits, levers, _picker(prompt=[2, 2], reply=[4]))
    softmax = torch.softmax(logits, dim=-1)
    for alt in record.alternatives:
        assert alt.raw == pytest.approx(float(softmax[alt.token_id]), rel=1e-6)
    assert record.raw == pytest.approx(float(softmax[record.token_id]), rel=1e-6)


@pytest.mark.parametrize("levers", LEVER_SETTINGS[:-1], ids=lambda lv: str(lv.to_mapping()))
def test_the_stages_replay_the_pickers_reference_path(levers: Levers) -> None:
    """Attribution replays the levers stage by stage: together they must be process()."""
    for seed in range(5):
        logits = _logits(seed)
        picker = _picker(prompt=[1, 2, 3, 1], reply=[5, 5, 7, 1])
        replayed = run_stages(logits, levers, picker)
        reference = picker.process(logits, levers)
        assert torch.equal(torch.isinf(replayed), torch.isinf(reference))
        finite = torch.isfinite(reference)
        assert torch.allclose(replayed[finite], reference[finite], rtol=1e-5)


def _ordered_logits() -> torch.Tensor:
    # Token i has logit 4 - i/2: token 0 the likeliest, each next one a bit less likely.
    return torch.tensor([4.0 - i / 2 for i in range(VOCAB)])


def _removed(record: Any) -> dict[int, str | None]:
    return {alt.token_id: alt.removed_by for alt in record.alternatives}


def test_a_top_k_cut_is_credited_to_top_k() -> None:
    levers = Levers(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0)
    removed = _removed(_observe(_ordered_logits(), levers))
    assert [removed[t] for t in range(4)] == [None, None, None, "top_k"]


def test_a_top_p_cut_is_credited_to_top_p() -> None:
    logits = torch.full((VOCAB,), -20.0)
    logits[:3] = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    levers = Levers(temperature=1.0, top_k=0, top_p=0.8, min_p=0.0)
    removed = _removed(_observe(logits, levers))
    assert [removed[t] for t in range(3)] == [None, None, "top_p"]


def test_a_min_p_cut_is_credited_to_min_p() -> None:
    logits = torch.full((VOCAB,), -20.0)
    logits[:3] = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    levers = Levers(temperature=1.0, top_k=0, top_p=1.0, min_p=0.5)  # floor: 0.25
    removed = _removed(_observe(logits, levers))
    assert [removed[t] for t in range(3)] == [None, None, "min_p"]


def test_a_typical_p_cut_is_credited_to_typical_p() -> None:
    levers = Levers(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, typical_p=0.3)
    record = _observe(_ordered_logits(), levers)
    names = {alt.removed_by for alt in record.alternatives if alt.after == 0.0}
    assert names == {"typical_p"}


def test_a_penalty_that_pushes_a_token_past_a_filter_is_credited_to_the_penalty() -> None:
    # Token 0 would win, but it was said before: the repetition penalty halves its logit
    # (4 -> 2), below token 1 (3.5), and top-k 1 then cuts it. Token 2 was said too, but top-k
    # would cut it without the penalty as well: top-k removed it.
    levers = Levers(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0, repetition_penalty=2.0)
    record = _observe(_ordered_logits(), levers, _picker(prompt=[0, 2]))
    removed = _removed(record)
    assert record.token_id == 1
    assert removed[0] == "repetition_penalty"
    assert removed[2] == "top_k"


def test_frequency_and_presence_penalties_are_named_when_they_push_a_token_out() -> None:
    levers = Levers(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0, frequency_penalty=1.0)
    assert _removed(_observe(_ordered_logits(), levers, _picker(reply=[0])))[0] == (
        "frequency_penalty"
    )
    levers = Levers(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0, presence_penalty=1.0)
    assert _removed(_observe(_ordered_logits(), levers, _picker(reply=[0])))[0] == (
        "presence_penalty"
    )


def test_n_gram_blocking_is_named() -> None:
    # The prompt holds "0 1" and ends in "0": another 1 would repeat the 2-gram.
    levers = Levers(**NO_FILTERS, no_repeat_ngram_size=2)
    record = _observe(_ordered_logits(), levers, _picker(prompt=[0, 1, 5, 0]))
    assert _removed(record)[1] == "no_repeat_ngram_size"
    assert {name for t, name in _removed(record).items() if t != 1} == {None}


def test_at_temperature_0_every_other_token_is_removed_by_temperature() -> None:
    record = _observe(_ordered_logits(), Levers(temperature=0.0))
    assert record.token_id == 0 and record.after == 1.0
    assert record.raw_rank == record.after_rank == 1
    assert {alt.removed_by for alt in record.alternatives if alt.token_id != 0} == {"temperature"}


def test_the_chosen_tokens_rank_counts_the_likelier_tokens() -> None:
    levers = Levers(**NO_FILTERS)
    record = _observe(_ordered_logits(), levers, token=3)
    assert (record.raw_rank, record.after_rank) == (4, 4)
    tied = torch.zeros(VOCAB)
    assert _observe(tied, levers, token=7).raw_rank == 1  # equally likely tokens share rank 1


def test_a_record_survives_its_json_mapping() -> None:
    levers = Levers(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0)
    record = _observe(_ordered_logits(), levers)
    assert inspection_from_mapping(inspection_to_mapping(record), "x") == record
    bad = inspection_to_mapping(record)
    bad["alternatives"][1]["raw"] = 1.5
    with pytest.raises(ValueError, match=r"x\.alternatives\[1\]\.raw must be a probability"):
        inspection_from_mapping(bad, "x")


# -- on the tiny model, through the generation loop -------------------------------------------


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    return load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))


@pytest.fixture
def generator(loaded: Any) -> Generator:
    return Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)


def _request(levers: Levers, inspect: int = 0) -> GenerationRequest:
    messages = (ChatMessage("user", "Tell me about levers"),)
    return GenerationRequest(messages=messages, levers=FixedLevers(levers), inspect=inspect)


GREEDY = Levers(temperature=0.0, max_new_tokens=16)
SEEDED = Levers(temperature=1.2, top_k=30, top_p=0.9, repetition_penalty=1.2, max_new_tokens=16)


@pytest.mark.parametrize("levers", [GREEDY, Levers(**{**SEEDED.to_mapping(), "seed": 99})])
def test_inspection_changes_nothing_in_the_reply(generator: Generator, levers: Levers) -> None:
    plain = generator.run(_request(levers), None)
    generator.reset_cache()
    inspected = generator.run(_request(levers, inspect=10), None)
    assert plain.inspection == ()
    assert (inspected.token_ids, inspected.text) == (plain.token_ids, plain.text)
    assert len(inspected.inspection) == len(inspected.token_ids) > 0


def test_each_reply_token_gets_its_record(generator: Generator, loaded: Any) -> None:
    levers = Levers(**{**SEEDED.to_mapping(), "seed": 5})
    result = generator.run(_request(levers, inspect=12), None)
    assert [item.token_id for item in result.inspection] == list(result.token_ids)
    for item in result.inspection:
        assert len(item.alternatives) == 12
        assert item.after is not None and item.after > 0
        raws = [alt.raw or 0.0 for alt in item.alternatives]
        assert raws == sorted(raws, reverse=True)
        assert item.text == loaded.tokenizer.decode([item.token_id])
        for alt in item.alternatives:
            assert (alt.removed_by is not None) == (alt.after == 0.0)


def test_the_token_that_completes_a_stop_string_is_marked(generator: Generator) -> None:
    free = generator.run(_request(GREEDY, inspect=10), None)
    pieces = [item.text for item in free.inspection]
    at = next(i for i, piece in enumerate(pieces) if i >= 2 and piece.strip())
    stop = pieces[at].strip()
    generator.reset_cache()
    levers = Levers(temperature=0.0, max_new_tokens=16, stop=(stop,))
    stopped = generator.run(_request(levers, inspect=10), None)
    first = next(i for i, piece in enumerate(pieces) if stop in "".join(pieces[: i + 1]))
    assert len(stopped.inspection) == first + 1
    assert stopped.inspection[-1].stopped_by == "stop"
    assert all(item.stopped_by is None for item in stopped.inspection[:-1])
