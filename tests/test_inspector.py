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
        alone = loaded.tokenizer.decode([item.token_id])
        if "\ufffd" not in alone + item.text:  # no character split here: its own text
            assert item.text == alone
        for alt in item.alternatives:
            assert (alt.removed_by is not None) == (alt.after == 0.0)
    assert "".join(item.text for item in result.inspection) == result.text


def test_tokens_that_split_a_character_join_into_the_reply(
    generator: Generator, loaded: Any
) -> None:
    """A byte-level vocabulary writes a character such as "é" with two tokens, each of which
    decodes alone to U+FFFD. The records say what each token added to the reply (nothing, then
    the character), so the tinted view shows the reply's text, not "��"."""
    split_seen = False
    for seed in range(1, 9):
        levers = Levers(temperature=1.5, max_new_tokens=24, seed=seed)
        result = generator.run(_request(levers, inspect=3), None)
        generator.reset_cache()
        texts = [item.text for item in result.inspection]
        assert "".join(texts) == result.text
        assert all("\ufffd" not in text for text in texts) or "\ufffd" in result.text
        alone = [loaded.tokenizer.decode([item.token_id]) for item in result.inspection]
        split_seen = split_seen or any("\ufffd" in text for text in alone)
    assert split_seen, "no reply split a character: the test proves nothing; change the seeds"


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


# -- the samplers beyond the common levers ----------------------------------------------------


def _encode(text: str) -> list[int]:
    """A tokenizer stand-in for ban and boost: one token per character."""
    return [ord(char) % VOCAB for char in text]


NEW_LEVER_SETTINGS = [
    Levers(**NO_FILTERS, dry_multiplier=2.0, dry_allowed_length=1, dry_sequence_breakers=()),
    Levers(temperature=1.0, top_p=0.9, min_p=0.0, xtc_probability=1.0, xtc_threshold=0.05),
    Levers(**NO_FILTERS, xtc_probability=0.5, xtc_threshold=0.02),
    Levers(**NO_FILTERS, mirostat_tau=3.0, mirostat_eta=0.5),
    Levers(temperature=1.0, top_k=10, top_p=0.8, min_p=0.0, dynatemp_range=0.7),
    Levers(temperature=0.8, top_p=0.9, min_p=0.05, temperature_last=1),
    Levers(**NO_FILTERS, ban=("ab", "c")),
    Levers(**NO_FILTERS, boost=(("d", -100.0), ("e", 4.0), ("f", -3.0))),
    Levers(temperature=0.0, boost=(("g", 6.0),), ban=("h",)),
]


@pytest.mark.parametrize(
    "levers", NEW_LEVER_SETTINGS, ids=lambda lv: str(lv.changed_names(Levers()))
)
def test_after_levers_is_what_pick_drew_from_with_the_new_samplers(levers: Levers) -> None:
    """XTC's coin and mirostat's mu are drawn by pick: the inspector, called after it, must
    show the distribution of that very draw (mu moves on after each token)."""
    for seed in range(6):
        picker = TokenPicker([1, 2, 3, 1], VOCAB, torch.device("cpu"), _encode)
        for token in [5, 5, 7, 1]:
            picker.accept(token)
        for step in range(4):
            logits = _logits(seed * 10 + step)
            replay = torch.Generator().manual_seed(seed)
            fired = (
                levers.xtc_probability > 0
                and not levers.mirostat
                and (float(torch.rand(1, generator=replay)) < levers.xtc_probability)
            )
            probs, ids = picker.distribution(logits, levers, xtc_fired=fired)  # before pick
            token = picker.pick(logits, levers, torch.Generator().manual_seed(seed))
            if levers.is_greedy:
                assert token == int(ids[0])
            else:
                assert token == int(ids[torch.multinomial(probs, 1, generator=replay)])
            record = Inspector(_Tokenizer(), VOCAB).observe(picker, logits, levers, token)
            after = {alt.token_id: alt.after for alt in record.alternatives}
            expected = torch.zeros(VOCAB).index_put_((ids,), probs)
            assert [after[t] for t in range(VOCAB)] == expected.tolist()
            assert record.after == float(expected[token]) > 0
            for alt in record.alternatives:
                assert (alt.removed_by is not None) == (alt.after == 0.0)
            picker.accept(token)


@pytest.mark.parametrize(
    "levers", NEW_LEVER_SETTINGS[:-1], ids=lambda lv: str(lv.changed_names(Levers()))
)
@pytest.mark.parametrize("fired", [False, True])
def test_the_stages_replay_the_new_samplers(levers: Levers, fired: bool) -> None:
    for seed in range(4):
        logits = _logits(seed)
        picker = TokenPicker([1, 2, 3, 1], VOCAB, torch.device("cpu"), _encode)
        for token in [5, 5, 7, 1]:
            picker.accept(token)
        # As if this step's pick had drawn the coin so (it draws one only while XTC is on).
        picker._drawn_xtc = fired and levers.xtc_probability > 0
        replayed = run_stages(logits, levers, picker)
        reference = picker.process(logits, levers)
        assert torch.equal(torch.isinf(replayed), torch.isinf(reference))
        finite = torch.isfinite(reference)
        assert torch.allclose(replayed[finite], reference[finite], rtol=1e-5)


def _char_picker(text: str = "") -> TokenPicker:
    picker = TokenPicker([], VOCAB, torch.device("cpu"), _encode)
    for token in _encode(text):
        picker.accept(token)
    return picker


def _token(char: str) -> int:
    return _encode(char)[0]


def test_a_ban_and_a_minus_100_boost_are_named() -> None:
    levers = Levers(**NO_FILTERS, ban=("x",), boost=(("y", -100.0), ("z", -2.0)))
    record = _observe(_ordered_logits(), levers, _char_picker())
    removed = _removed(record)
    assert removed[_token("x")] == "ban" and removed[_token("X")] == "ban"
    assert removed[_token("y")] == "boost"
    assert removed[_token("z")] is None  # lowered, not removed: nothing cut it
    assert {name for name in removed.values()} == {None, "ban", "boost"}


def test_a_boost_that_pushes_a_token_past_top_k_is_named() -> None:
    # Token 0 is the likeliest; a -2 boost on it puts it below token 1 (4 - 2 < 3.5).
    char = next(c for c in map(chr, range(33, 127)) if _token(c) == 0)
    levers = Levers(temperature=1.0, top_k=1, top_p=1.0, min_p=0.0, boost=((char, -2.0),))
    record = _observe(_ordered_logits(), levers, _char_picker())
    assert record.token_id == 1
    assert _removed(record)[0] == "boost"


def test_dry_pushing_a_repeat_out_is_named() -> None:
    # "...0 1 ... 0": another 1 would repeat "0 1". DRY lowers it below token 2 (3.5 - 1 < 3).
    levers = Levers(
        temperature=1.0,
        top_k=2,
        top_p=1.0,
        min_p=0.0,
        dry_multiplier=1.0,
        dry_allowed_length=1,
        dry_sequence_breakers=(),
    )
    picker = _picker(prompt=[9, 0, 1, 9, 9, 0])
    removed = _removed(_observe(_ordered_logits(), levers, picker))
    assert removed[1] == "dry_multiplier"
    assert removed[3] == "top_k"  # cut with or without DRY


def test_xtc_that_fired_is_named_and_one_that_did_not_removes_nothing() -> None:
    logits = torch.full((VOCAB,), -20.0)
    logits[:4] = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    levers = Levers(**NO_FILTERS, xtc_probability=1.0, xtc_threshold=0.15)
    record = _observe(logits, levers)  # the coin always comes up at probability 1
    assert record.token_id in (2, 3)
    removed = _removed(record)
    assert [removed[t] for t in range(4)] == ["xtc_probability", "xtc_probability", None, None]
    rarely = Levers(**NO_FILTERS, xtc_probability=0.001, xtc_threshold=0.15)
    record = _observe(logits, rarely)  # seed 0's coin: 0.50 > 0.001, no cut
    assert {alt.removed_by for alt in record.alternatives} == {None}


def test_mirostat_cuts_are_named_and_replace_the_filters() -> None:
    logits = torch.full((VOCAB,), -20.0)
    logits[:4] = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    # tau 0.5: mu = 1 bit keeps only p >= 0.5; top_k 3 is replaced, not applied.
    levers = Levers(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0, mirostat_tau=0.5)
    record = _observe(logits, levers)
    removed = _removed(record)
    assert record.token_id == 0
    assert {removed[t] for t in range(1, VOCAB)} == {"mirostat_tau"}


def test_dynamic_temperature_that_narrows_top_p_is_named() -> None:
    # Two likely tokens and a flat tail: a confident step, so dynamic temperature goes to its
    # low end (0.2) and top-p 0.9 keeps only the two; at the plain temperature 1 it would
    # need a third.
    logits = torch.full((VOCAB,), -3.0)
    logits[:2] = torch.tensor([2.0, 1.8])
    plain = Levers(temperature=1.0, top_k=0, top_p=0.9, min_p=0.0)
    dynamic = plain.with_value("dynatemp_range", 0.8).with_value("dynatemp_exponent", 4.0)
    assert _removed(_observe(logits, plain)).get(2) is None
    removed = _removed(_observe(logits, dynamic))
    assert removed[2] == "dynatemp_range"
    assert removed[0] is None and removed[1] is None


def _single_token_word(loaded: Any, token: int) -> str:
    text = str(loaded.tokenizer.decode([token])).strip()
    encoded = loaded.tokenizer.encode(text, add_special_tokens=False)
    return text if text.isprintable() and encoded == [token] else ""


def test_the_new_samplers_are_named_in_a_real_reply(generator: Generator, loaded: Any) -> None:
    """Through the decode loop on the tiny model, every alternative of every token (top-N =
    the whole vocabulary): each lever's cuts carry its name, and the chosen token is always
    one the levers kept."""
    vocab = generator.vocab_size
    plain = generator.run(_request(GREEDY), None).token_ids
    word = next(filter(None, (_single_token_word(loaded, t) for t in plain)))
    banned = loaded.tokenizer.encode(word, add_special_tokens=False)[0]
    sampled = {"temperature": 1.0, "top_p": 1.0, "min_p": 0.0, "max_new_tokens": 6, "seed": 3}
    cases = {
        "ban": Levers(**{**GREEDY.to_mapping(), "ban": [word]}),
        "boost": Levers(**{**GREEDY.to_mapping(), "boost": {word: -100}}),
        "mirostat_tau": Levers(**sampled, mirostat_tau=0.5),
        "xtc_probability": Levers(**sampled, xtc_probability=1.0, xtc_threshold=0.0),
        # With exponent 4 the dynamic temperature (0.1 to 2.9) stays below the plain 1.5
        # unless a step is nearly flat, so top-p keeps fewer tokens than at 1.5: those it
        # cuts are dynamic temperature's doing.
        "dynatemp_range": Levers(
            **{**sampled, "temperature": 1.5, "top_p": 0.5},
            dynatemp_range=1.4,
            dynatemp_exponent=4.0,
        ),
    }
    for name, levers in cases.items():
        generator.reset_cache()
        result = generator.run(_request(levers, inspect=vocab), None)
        assert result.inspection, name
        for step in result.inspection:
            assert step.after is not None and step.after > 0
            cut = {alt.token_id: alt.removed_by for alt in step.alternatives if alt.after == 0}
            assert name in cut.values(), name
            if name in ("ban", "boost"):
                assert cut[banned] == name
                assert banned not in result.token_ids
