"""DRY, XTC, mirostat v2, dynamic temperature, temperature-last and banned phrases, each
against its published formula re-derived here on the same logits (text-generation-webui's
modules/sampler_hijack.py and llama.cpp's src/llama-sampling.cpp)."""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from leverchat.engine.samplers.dry import dry_penalties
from leverchat.engine.samplers.mirostat import next_mu
from leverchat.engine.samplers.phrase_ban import banned_phrases, blocked_tokens
from leverchat.engine.sampling import TokenPicker
from leverchat.levers import LeverError, Levers

CPU = torch.device("cpu")
EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "200"))
PLAIN = {"temperature": 1.0, "top_p": 1.0, "min_p": 0.0}

# A tokenizer stand-in: one token per character, "a" + breaker -> [a, breaker].
ALPHABET = 'abcdefgh\n:"* ABCDEFGH'


def char_encode(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


def picker(ids: list[int], vocab: int, encode: object = char_encode) -> TokenPicker:
    return TokenPicker(ids, vocab, CPU, encode)  # type: ignore[arg-type]


# -- DRY ---------------------------------------------------------------------------------


def webui_dry(
    ids: list[int], multiplier: float, base: float, allowed: int, breakers: set[int]
) -> dict[int, float]:
    """text-generation-webui's DRYLogitsProcessor.__call__, line for line on one row."""
    last_token = ids[-1]
    if last_token in breakers:
        return {}
    match_indices = [idx for idx, val in enumerate(ids[:-1]) if val == last_token]
    match_lengths: dict[int, int] = {}
    for i in match_indices:
        next_token = ids[i + 1]
        if next_token in breakers:
            continue
        match_length = 1
        while match_length < 50:
            j = i - match_length
            if j < 0:
                break
            previous_token = ids[-(match_length + 1)]
            if ids[j] != previous_token:
                break
            if previous_token in breakers:
                break
            match_length += 1
        match_lengths[next_token] = max(match_length, match_lengths.get(next_token, 0))
    return {
        token: multiplier * base ** (length - allowed)
        for token, length in match_lengths.items()
        if length >= allowed
    }


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    ids=st.lists(st.integers(0, 5), min_size=2, max_size=80),
    multiplier=st.floats(0.1, 5.0),
    base=st.floats(1.0, 4.0),
    allowed=st.integers(1, 6),
    breakers=st.sets(st.integers(0, 5), max_size=2),
)
def test_dry_penalties_match_text_generation_webui(
    ids: list[int], multiplier: float, base: float, allowed: int, breakers: set[int]
) -> None:
    ours = dry_penalties(ids, multiplier, base, allowed, breakers)
    assert ours == pytest.approx(webui_dry(ids, multiplier, base, allowed, breakers))


def test_dry_penalises_the_token_that_would_continue_a_repeat() -> None:
    # "abcd ... abc": d would repeat a 4-token sequence (match length 3 before it).
    text = "abcdhgabc"
    p = picker(char_encode(text), len(ALPHABET))
    logits = torch.zeros(len(ALPHABET))
    levers = Levers(dry_multiplier=0.8, dry_base=1.75, dry_allowed_length=2)
    out = p.penalised(logits, levers)
    assert out[3] == pytest.approx(-0.8 * 1.75 ** (3 - 2))
    assert torch.count_nonzero(out) == 1


def test_dry_sequence_breakers_are_mapped_through_the_tokenizer() -> None:
    # The repeat "ab:ab" -> "c" would be penalised, but ':' breaks the match.
    p = picker(char_encode("ab:chab:"), len(ALPHABET))
    logits = torch.zeros(len(ALPHABET))
    on = Levers(dry_multiplier=1.0, dry_sequence_breakers=(":",))
    assert torch.count_nonzero(p.penalised(logits, on)) == 0  # ':' is the last token
    off = Levers(dry_multiplier=1.0, dry_sequence_breakers=("\n",))
    assert p.penalised(logits, off)[ALPHABET.index("c")] < 0
    assert p.breaker_ids((":",)) == frozenset({ALPHABET.index(":")})


# -- XTC ---------------------------------------------------------------------------------


def llama_cpp_xtc(logits: torch.Tensor, threshold: float) -> set[int]:
    """llama_sampler_xtc_apply: sort, find the last token with p >= threshold; if it is not
    the first, remove every token before it. Returns the kept ids."""
    probs = torch.softmax(logits, -1)
    order = torch.argsort(probs, descending=True).tolist()
    pos_last = 0
    for index, token in enumerate(order):
        if probs[token] >= threshold:
            pos_last = index
        else:
            break
    kept = order[pos_last:] if pos_last > 0 else order
    return {t for t in kept if math.isfinite(float(logits[t]))}


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    values=st.lists(st.integers(-300, 300), min_size=2, max_size=40, unique=True),
    threshold=st.floats(0.0, 0.5),
)
def test_xtc_removes_what_llama_cpp_removes(values: list[int], threshold: float) -> None:
    logits = torch.tensor(values, dtype=torch.float32) / 50  # distinct: no ties
    p = picker([], len(values), None)
    levers = Levers(xtc_probability=1.0, xtc_threshold=threshold, **PLAIN)
    ours = p.process(logits, levers, xtc_fired=True)
    kept = set(torch.nonzero(torch.isfinite(ours)).flatten().tolist())
    expected = llama_cpp_xtc(logits, threshold)
    # A probability within float rounding of the threshold may fall either way.
    near = any(
        abs(float(q) - threshold) < 1e-6 for q in torch.softmax(logits.double(), -1).tolist()
    )
    assert kept == expected or near


def test_xtc_coin_comes_from_the_reply_seed() -> None:
    logits = torch.tensor([3.0, 2.9, 2.8, 0.0, -1.0])
    levers = Levers(xtc_probability=0.5, xtc_threshold=0.1, **PLAIN)

    def reply(seed: int) -> list[int]:
        p, gen = picker([], 5, None), torch.Generator().manual_seed(seed)
        return [p.pick(logits, levers, gen) for _ in range(40)]

    assert reply(7) == reply(7)
    picks = reply(7)
    # Some steps excluded the top choices (token 2 and below), others did not.
    assert 0 in picks and any(t >= 2 for t in picks)


def test_xtc_off_draws_nothing_so_replies_stay_as_before() -> None:
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))
    plain = Levers(**PLAIN)
    off = Levers(xtc_probability=0.0, xtc_threshold=0.05, **PLAIN)

    def reply(levers: Levers) -> list[int]:
        p, gen = picker([], 50, None), torch.Generator().manual_seed(3)
        return [p.pick(logits, levers, gen) for _ in range(30)]

    assert reply(plain) == reply(off)


# -- mirostat v2 ---------------------------------------------------------------------------


def test_mirostat_v2_follows_llama_cpps_update_rule() -> None:
    torch.manual_seed(0)
    logits = torch.randn(200) * 3
    tau, eta = 3.0, 0.2
    levers = Levers(mirostat_tau=tau, mirostat_eta=eta, temperature=0.8)
    p = picker([], 200, None)
    gen = torch.Generator().manual_seed(11)
    mu = 2 * tau  # llama.cpp: mu starts at 2 * tau
    for _ in range(25):
        # llama.cpp: softmax, keep the tokens with -log2 p <= mu (at least one), softmax again.
        probs = torch.softmax(logits / 0.8, -1)
        keep = -torch.log2(probs) <= mu
        keep[torch.argmax(probs)] = True
        renormalised = torch.where(keep, probs, torch.zeros_like(probs))
        renormalised = renormalised / renormalised.sum()
        token = p.pick(logits, levers, gen)
        assert keep[token], "mirostat sampled a token above mu"
        mu = mu - eta * (-math.log2(float(renormalised[token])) - tau)
        assert p.mirostat.mu == pytest.approx(mu, rel=1e-4, abs=1e-4)
    assert next_mu(6.0, 3.0, 0.5, 0.25) == pytest.approx(6.0 - 0.5 * (2.0 - 3.0))


def test_mirostat_replaces_the_truncation_levers() -> None:
    logits = torch.tensor([2.0, 1.9, 1.8, 1.7, 1.6, 1.5])
    p = picker([], 6, None)
    truncating = Levers(top_k=1, min_p=0.9, temperature=1.0)
    assert torch.isfinite(p.process(logits, truncating)).sum() == 1
    # tau 10 bits: mu 20 keeps every one of these tokens whatever top-k says.
    with_mirostat = Levers(top_k=1, min_p=0.9, temperature=1.0, mirostat_tau=10)
    assert torch.isfinite(p.process(logits, with_mirostat)).sum() == 6


# -- dynamic temperature and temperature-last ---------------------------------------------


def llama_cpp_dynatemp(logits: torch.Tensor, temp: float, delta: float, exponent: float) -> float:
    """llama_sampler_temp_ext_apply's temperature for these candidates."""
    finite = logits[torch.isfinite(logits)].double()
    min_temp, max_temp = max(0.0, temp - delta), temp + delta
    max_entropy = -math.log(1.0 / len(finite))
    probs = torch.softmax(finite, -1)
    entropy = float(-(probs * probs.log()).sum())
    return min_temp + (max_temp - min_temp) * (entropy / max_entropy) ** exponent


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("scale", [0.3, 1.0, 5.0])
def test_dynamic_temperature_matches_llama_cpp(exponent: float, scale: float) -> None:
    torch.manual_seed(2)
    logits = torch.randn(300) * scale
    levers = Levers(temperature=1.0, dynatemp_range=0.7, dynatemp_exponent=exponent, **_no_trunc())
    out = picker([], 300, None).process(logits, levers)
    expected = llama_cpp_dynatemp(logits, 1.0, 0.7, exponent)
    assert torch.allclose(out, logits / expected, rtol=1e-5)


def _no_trunc() -> dict[str, float]:
    return {"top_p": 1.0, "min_p": 0.0}


def test_temperature_last_truncates_on_the_unscaled_distribution() -> None:
    # min-p 0.2 at temperature 3 keeps more tokens when temperature comes first (it flattens
    # the distribution before the cut); with temperature last the cut sees the raw logits.
    logits = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0, -1.0])
    p = picker([], 6, None)
    first = p.process(logits, Levers(temperature=3.0, min_p=0.2, top_p=1.0))
    last = p.process(logits, Levers(temperature=3.0, min_p=0.2, top_p=1.0, temperature_last=1))
    assert torch.isfinite(first).sum() == 5  # e^(-5/3) < 0.2 < e^(-4/3)
    assert torch.isfinite(last).sum() == 2  # e^-1 >= 0.2 > e^-2
    assert torch.allclose(last[:2], logits[:2] / 3.0)


# -- banned phrases ------------------------------------------------------------------------


def test_a_banned_phrase_blocks_its_last_token_after_the_rest() -> None:
    phrases = banned_phrases(["bad"], char_encode)
    assert (1, 0, 3) in phrases[0].sequences  # "bad" as the tokenizer writes it
    assert blocked_tokens(char_encode("hhba"), phrases) == {3}
    assert blocked_tokens(char_encode("hhb"), phrases) == set()
    single = banned_phrases(["h"], char_encode)
    # One token: banned outright, and so is its capitalised variant.
    assert blocked_tokens([], single) == {ALPHABET.index("h"), ALPHABET.index("H")}


def test_ban_removes_the_token_in_both_paths_and_pick_never_writes_it() -> None:
    p = picker(char_encode("ba"), len(ALPHABET))
    logits = torch.zeros(len(ALPHABET))
    logits[3] = 10.0  # "d" is by far the likeliest
    levers = Levers(ban=("bad",), **PLAIN)
    assert p.process(logits, levers)[3] == -math.inf
    gen = torch.Generator().manual_seed(0)
    assert all(p.pick(logits, levers, gen) != 3 for _ in range(50))
    assert p.pick(logits, Levers(**PLAIN), gen) == 3  # without the ban it is written


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("xtc_probability", 1.5, "xtc_probability = 1.5 is out of range: allowed 0 to 1"),
        ("mirostat_tau", -1, "mirostat_tau = -1.0 is out of range: allowed 0 to 20"),
        ("dry_allowed_length", 0, "dry_allowed_length = 0 is out of range"),
        ("dynatemp_range", "wide", "dynatemp_range must be a number"),
        ("ban", [""], "ban cannot contain an empty string"),
    ],
)
def test_a_bad_value_names_the_lever(key: str, value: object, words: str) -> None:
    with pytest.raises(LeverError) as raised:
        Levers.from_mapping({key: value})
    assert raised.value.key == key
    assert words in raised.value.message


def test_profile_imports_llama_cpp_spellings_and_flags() -> None:
    assert Levers.from_mapping({"temperature_last": True}).temperature_last == 1
    with pytest.raises(LeverError, match="did you mean 'mirostat_tau'"):
        Levers.from_mapping({"mirostat": 2})


def test_neutral_samplers_do_no_work() -> None:
    """At their neutral values nothing is tokenized, nothing drawn, nothing copied."""
    calls: list[str] = []

    def counting_encode(text: str) -> list[int]:
        calls.append(text)
        return char_encode(text)

    p = picker(char_encode("abcabc"), len(ALPHABET), counting_encode)
    logits = torch.randn(len(ALPHABET))
    neutral = Levers(repetition_penalty=1.0, **PLAIN)
    assert p.penalised(logits, neutral).data_ptr() == logits.data_ptr()  # no copy
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)
    one_draw = gen.get_state()
    gen.set_state(state)
    p.pick(logits, neutral, gen)
    assert torch.equal(gen.get_state(), one_draw)  # only the sampling draw itself
    assert calls == []


def test_provenance_lists_the_more_levers_only_when_they_did_something() -> None:
    from leverchat.chat import ReplyProvenance
    from leverchat.ui.screens.provenance import provenance_lines

    def lines(levers: Levers) -> str:
        return "\n".join(provenance_lines(ReplyProvenance("m", "p", "", levers, seed=1)))

    plain = lines(Levers())
    assert "temperature" in plain and "dry_multiplier" not in plain
    with_dry = lines(Levers(dry_multiplier=0.8, ban=("As an AI",)))
    assert "dry_multiplier         0.8" in with_dry
    assert "As an AI" in with_dry
