"""Boost by text (the ``boost`` lever, a logit bias written as phrases): validated in profiles
with the key and the phrase named, mapped through the loaded tokenizer (the phrase and its
leading-space form), applied to each variant's first token, live from the next token, and
reported in ``lever_tokens``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from leverchat.cli import main
from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.sampling import TokenPicker
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.lever_weights import WeightError, format_weights, parse_weights_text
from leverchat.levers import LeverError, Levers, LiveLevers
from leverchat.profiles import (
    Profile,
    ProfileError,
    profile_from_toml_bytes,
    profile_to_toml,
)

CPU = torch.device("cpu")
PLAIN: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "min_p": 0.0}
GREEDY = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=12)
ALPHABET = "abcdefgh ABCDEFGH"


def char_encode(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


# -- validation: profiles, the panel's text, the command line ----------------------------------


def test_a_profile_boost_table_loads_and_saves_back_the_same() -> None:
    raw = b'name = "p"\n[levers]\nboost = { "Arr" = 2, "As an AI" = -100, matey = 1.5 }\n'
    profile = profile_from_toml_bytes(raw, Path("p.toml"))
    assert profile.levers.boost == (("Arr", 2.0), ("As an AI", -100.0), ("matey", 1.5))
    saved = profile_to_toml(profile).encode()
    assert profile_from_toml_bytes(saved, Path("p.toml")) == profile


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (
            '{ "Arr" = 200 }',
            "levers.boost: boost['Arr'] = 200 is out of range: allowed -100 to 100",
        ),
        ('{ "Arr" = "hot" }', "boost['Arr'] must be a number from -100 to 100, not 'hot'"),
        ('{ "Arr" = true }', "boost['Arr'] must be a number"),
        ('{ "" = 1 }', "boost: a phrase cannot be empty"),
        ('{ "  " = 1 }', "boost: a phrase cannot be empty"),
        ('["Arr"]', 'boost must be a table of phrases and weights like {"Arr" = 2.0}'),
        ("{ " + ", ".join(f'"w{i}" = 1' for i in range(33)) + " }", "the limit is 32"),
    ],
)
def test_a_bad_boost_is_refused_naming_the_file_key_and_phrase(table: str, words: str) -> None:
    raw = f'name = "p"\n[levers]\nboost = {table}\n'.encode()
    with pytest.raises(ProfileError) as caught:
        profile_from_toml_bytes(raw, Path("pirate.toml"))
    assert caught.value.key == "levers.boost"
    assert words.removeprefix("levers.boost: ") in caught.value.message
    assert str(caught.value).startswith("pirate.toml:3:1: ")


def test_the_panel_text_round_trips_and_its_errors_name_the_entry() -> None:
    for value in [
        (("Arr", 2.0), ("matey", 1.5)),
        (("As an AI", -100.0),),
        (("a,b", 1.0), ("x=y", -2.5), (" lead", 3.0), ('say "hi"', 0.5)),
    ]:
        assert Levers(boost=value).boost == value
        text = format_weights(value)
        assert "\n" not in text
        assert Levers.from_mapping({"boost": parse_weights_text("boost", text)}).boost == value
    assert parse_weights_text("boost", "") == {}
    for text, words in [
        ("Arr", "boost: 'Arr' needs a weight, like Arr=2"),
        ("Arr=2, matey", "'matey' needs a weight"),
        ("=2", "needs a phrase before '='"),
        ("Arr=lots", "boost['Arr']: 'lots' is not a number"),
        ("Arr=\u0662", "is not a number"),  # an Arabic-Indic digit: ASCII digits only
        ('{ "Arr" = }', "boost must be like Arr=2"),
    ]:
        with pytest.raises(WeightError, match=words.replace("[", r"\[").replace("(", r"\(")):
            parse_weights_text("boost", text)
    with pytest.raises(LeverError, match=r"boost\['Arr'\] = 101.0 is out of range"):
        Levers.from_mapping({"boost": parse_weights_text("boost", "Arr=101")})


EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "200"))
PHRASES = st.text(min_size=1, max_size=12).filter(lambda text: text.strip() != "")
WEIGHTS = st.floats(-100, 100, allow_nan=False).map(lambda w: round(w, 3))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(PHRASES, WEIGHTS, max_size=6))
def test_any_boost_shown_in_the_panel_reads_back_the_same(table: dict[str, float]) -> None:
    """Commas, equals signs, quotes, braces, edge spaces, newlines: the one-line text the
    panel shows is read back as exactly the same phrases and weights."""
    value = Levers(boost=table).boost
    text = format_weights(value)
    assert "\n" not in text and "\r" not in text
    assert Levers.from_mapping({"boost": parse_weights_text("boost", text)}).boost == value


def test_a_phrase_given_twice_keeps_the_last_weight() -> None:
    assert Levers(boost=(("a", 1.0), ("b", 2.0), ("a", 3.0))).boost == (("b", 2.0), ("a", 3.0))


# -- the sampler, on a tokenizer stand-in -------------------------------------------------------


def test_the_weight_goes_to_each_variants_first_token_only() -> None:
    picker = TokenPicker([], len(ALPHABET), CPU, char_encode)
    logits = torch.zeros(len(ALPHABET))
    out = picker.penalised(logits, Levers(boost=(("bad", 2.0),), **PLAIN))
    # Variants: "bad", " bad", "Bad", " Bad": first tokens b, space, B.
    first = {ALPHABET.index(c) for c in "b B"}
    assert {i for i in range(len(ALPHABET)) if out[i] != 0.0} == first
    assert all(out[i] == 2.0 for i in first)
    assert logits.eq(0.0).all()  # the caller's logits are not touched


def test_boosts_that_start_alike_add_up_and_minus_100_bans() -> None:
    picker = TokenPicker([], len(ALPHABET), CPU, char_encode)
    logits = torch.zeros(len(ALPHABET))
    added = picker.penalised(logits, Levers(boost=(("ab", 1.5), ("ac", 2.0)), **PLAIN))
    assert added[ALPHABET.index("a")] == 3.5
    logits[ALPHABET.index("h")] = 50.0  # by far the likeliest
    banned = Levers(boost=(("h", -100.0), ("hg", 5.0)), **PLAIN)
    assert picker.process(logits, banned)[ALPHABET.index("h")] == -math.inf
    generator = torch.Generator().manual_seed(0)
    assert all(picker.pick(logits, banned, generator) != ALPHABET.index("h") for _ in range(30))
    greedy = Levers(temperature=0.0, boost=(("h", -100.0),))
    assert picker.pick(logits, greedy, generator) != ALPHABET.index("h")


def test_a_boost_changes_what_is_picked() -> None:
    picker = TokenPicker([], len(ALPHABET), CPU, char_encode)
    logits = torch.zeros(len(ALPHABET))
    logits[0] = 5.0  # "a" wins unless "e" is boosted past it
    greedy = Levers(temperature=0.0)
    assert picker.pick(logits, greedy, torch.Generator()) == 0
    boosted = greedy.with_value("boost", {"e": 6.0})
    assert picker.pick(logits, boosted, torch.Generator()) == ALPHABET.index("e")


# -- against the loaded tokenizer, in the decode loop ----------------------------------------


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    return load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))


@pytest.fixture
def generator(loaded: Any) -> Generator:
    return Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)


def ask(generator: Generator, levers: Levers | LiveLevers, on_chunk: Any = None) -> Any:
    live = levers if isinstance(levers, LiveLevers) else FixedLevers(levers)
    request = GenerationRequest(messages=(ChatMessage("user", "Ahoy"),), levers=live)
    return generator.run(request, on_chunk)


@pytest.mark.parametrize("phrase", ["matey", "treasure", "The capital", "Zürich", "levers"])
def test_a_phrase_maps_to_the_tokenizers_own_encoding_with_and_without_a_space(
    loaded: Any, generator: Generator, phrase: str
) -> None:
    def encode(text: str) -> tuple[int, ...]:
        return tuple(loaded.tokenizer.encode(text, add_special_tokens=False))

    result = ask(generator, GREEDY.with_value("boost", {phrase: 2.5}))
    [entry] = [item for item in result.lever_tokens if item.lever == "boost"]
    assert (entry.text, entry.weight) == (phrase, 2.5)
    assert encode(phrase) in entry.sequences and encode(" " + phrase) in entry.sequences
    # The only other forms: capitalised at the start of a sentence, with and without a space.
    capital = phrase[0].upper() + phrase[1:]
    forms = {phrase, " " + phrase, capital, " " + capital}
    assert set(entry.sequences) == {encode(form) for form in forms}
    # And the bias lands on their first tokens, in the picker the loop uses.
    picker = TokenPicker([], generator.vocab_size, CPU, generator._encode_text)
    logits = torch.zeros(generator.vocab_size)
    biased = picker.penalised(logits, GREEDY.with_value("boost", {phrase: 2.5}))
    assert set(torch.nonzero(biased).flatten().tolist()) == {encode(f)[0] for f in forms}
    assert set(biased[biased != 0].tolist()) == {2.5}


def test_a_boost_set_mid_reply_applies_from_the_next_token(
    loaded: Any, generator: Generator
) -> None:
    plain = ask(generator, GREEDY).token_ids
    live = LiveLevers(GREEDY)
    seen: list[str] = []
    word = "treasure"
    target = loaded.tokenizer.encode(" " + word, add_special_tokens=False)[0]

    def on_chunk(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            live.set(live.get().with_value("boost", {word: 100.0}))

    result = ask(generator, live, on_chunk)
    change = result.lever_changes[0]
    assert change.changed == ("boost",) and change.token_index == 2
    assert result.token_ids[:2] == plain[:2]
    # +100 on its first token: greedy writes it at once.
    first_tokens = {seq[0] for item in result.lever_tokens for seq in item.sequences}
    assert target in first_tokens
    assert result.token_ids[2] in first_tokens
    assert result.token_ids[2] != plain[2]


def test_ask_boost_option_json_and_stats(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", "--model", str(tiny_model_dir), "--temperature", "0", "--max-tokens", "4"]
    code = main([*argv, "--json", "--boost", "matey=2", "--boost", "As an AI=-100", "hi"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["levers"]["boost"] == {"matey": 2.0, "As an AI": -100.0}
    boosts = {item["text"]: item["weight"] for item in data["lever_tokens"]}
    assert boosts == {"matey": 2.0, "As an AI": -100.0}
    assert main([*argv, "--stats", "--boost", "matey=1.5", "hi"]) == 0
    err = capsys.readouterr().err
    assert "boost 'matey' (+1.5 on the first token) -> tokens [" in err
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--boost", "matey", "hi"])
    assert exited.value.code == 2
    assert "boost: 'matey' needs a weight, like matey=2" in capsys.readouterr().err


def test_profile_and_levers_keep_boost_in_a_profile_object() -> None:
    profile = Profile(name="p", levers=Levers(boost=(("Arr", 2.0),)))
    assert "Arr = 2.0" in profile_to_toml(profile)


def test_profiles_show_prints_the_boost_table(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    from leverchat.profiles import ProfileStore

    levers = Levers(boost=(("Arr", 2.0), ("As an AI", -5.0)))
    ProfileStore().save(Profile(name="corsair", levers=levers), expected_fingerprint=None)
    assert main(["profiles", "show", "corsair"]) == 0
    out = capsys.readouterr().out
    assert 'boost = { Arr = 2.0, "As an AI" = -5.0 }' in out
    assert tomllib.loads(out)["levers"]["boost"] == {"Arr": 2.0, "As an AI": -5.0}


def test_the_engine_says_what_the_panels_phrases_become(loaded: Any, generator: Generator) -> None:
    """What the panel shows: each phrase's sequences, and each token's own text."""
    levers = Levers(ban=("As an AI",), boost=(("treasure", 2.0),))
    items = generator.lever_tokens(levers)
    assert [(item.lever, item.text, item.weight) for item in items] == [
        ("ban", "As an AI", None),
        ("boost", "treasure", 2.0),
    ]
    for item in items:
        assert tuple(loaded.tokenizer.encode(item.text, add_special_tokens=False)) in (
            item.sequences
        )
        assert item.pieces == tuple(
            tuple(loaded.tokenizer.decode([token]) for token in sequence)
            for sequence in item.sequences
        )
        assert "".join(item.pieces[0]) == item.text


def test_history_and_markdown_keep_the_boost(tmp_path: Path) -> None:
    from leverchat.chat import MessageStatus, ReplyProvenance
    from leverchat.engine.types import LeverChange
    from leverchat.export import from_json, to_json, to_markdown
    from leverchat.history import HistoryStore

    boosted = Levers(boost=(("Arr", 2.0), ("As an AI", -100.0)))
    later = boosted.with_value("boost", {"matey": 1.5})
    provenance = ReplyProvenance(
        "m", "p", "", boosted, seed=1, lever_changes=(LeverChange(3, later, ("boost",)),)
    )
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        chat = store.create_conversation(profile="p", system_prompt="")
        user = store.add_user_message(chat, "hi", parent_id=None)
        reply = store.start_reply(chat, parent_id=user.id, provenance=provenance)
        store.finish_reply(reply.id, "Arr!", status=MessageStatus.COMPLETE)
        loaded = store.load_conversation(chat).messages[-1].provenance
        assert loaded.levers.boost == boosted.boost
        assert loaded.lever_changes[0].levers.boost == (("matey", 1.5),)
        markdown = to_markdown(store.get_info(chat), store.load_conversation(chat))
        exported = to_json(store.export_record(chat))
    assert 'boost {"Arr": 2.0, "As an AI": -100.0}' in markdown
    assert 'from token 3: boost {"matey": 1.5}' in markdown
    assert '"boost": {\n' in exported and '"As an AI": -100.0' in exported
    assert to_json(from_json(exported)) == exported  # byte for byte


def test_the_panels_question_does_not_wait_behind_a_busy_engine(tiny_model_dir: Path) -> None:
    """A reply can hold the engine thread for many seconds: what a phrase becomes is asked of
    the tokenizer alone, beside it, so the panel's view follows the typing."""
    import threading

    from leverchat.engine.worker import EngineThread

    engine = EngineThread()
    busy = threading.Event()
    release = threading.Event()
    try:
        engine.load(ModelSpec(source=str(tiny_model_dir), device="cpu")).result(timeout=120)
        blocked = engine.call(lambda: (busy.set(), release.wait(60)))
        assert busy.wait(30)
        items = engine.lever_tokens(Levers(ban=("treasure",))).result(timeout=30)
        assert not blocked.done()  # answered while the engine thread was still busy
        assert [item.text for item in items] == ["treasure"]
    finally:
        release.set()
        engine.close()
