"""The new samplers in the real decode loop (tiny random model, its own tokenizer): banned
phrases mapped through the loaded tokenizer and shown, a change mid-reply applied from the next
token, and a fixed seed reproducing a reply with XTC and mirostat on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers, LiveLevers

GREEDY = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=12)


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


def banned_text(loaded: Any, token: int) -> str:
    """The token's text if it is a word the tokenizer writes as exactly this token, else ""
    (a random model also writes byte fragments and control characters)."""
    text = str(loaded.tokenizer.decode([token])).strip()
    if not text.isprintable() or loaded.tokenizer.encode(text, add_special_tokens=False) != [token]:
        return ""
    return text


def test_a_banned_word_never_appears_and_its_tokens_are_reported(
    loaded: Any, generator: Generator
) -> None:
    plain = ask(generator, GREEDY).token_ids
    word = next(filter(None, (banned_text(loaded, token) for token in plain)))
    result = ask(generator, Levers(**{**GREEDY.to_mapping(), "ban": [word]}))
    [entry] = [item for item in result.lever_tokens if item.lever == "ban"]
    assert entry.text == word
    encode = loaded.tokenizer.encode
    assert tuple(encode(word, add_special_tokens=False)) in entry.sequences
    assert tuple(encode(" " + word, add_special_tokens=False)) in entry.sequences
    singles = {seq[0] for seq in entry.sequences if len(seq) == 1}
    assert singles and not singles & set(result.token_ids)
    assert result.token_ids != plain


def test_a_ban_set_mid_reply_applies_from_the_next_token(loaded: Any, generator: Generator) -> None:
    plain = ask(generator, GREEDY).token_ids
    target = next(i for i in range(3, len(plain)) if banned_text(loaded, plain[i]))
    word = banned_text(loaded, plain[target])
    live = LiveLevers(GREEDY)
    seen: list[str] = []

    def on_chunk(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 2:
            live.set(live.get().with_value("ban", [word]))

    result = ask(generator, live, on_chunk)
    change = result.lever_changes[0]
    assert change.changed == ("ban",) and change.token_index == 2
    assert result.token_ids[:2] == plain[:2]
    singles = {seq[0] for item in result.lever_tokens for seq in item.sequences if len(seq) == 1}
    assert plain[target] in singles
    assert plain[target] not in result.token_ids[2:]


@pytest.mark.parametrize(
    "extra",
    [
        {"xtc_probability": 0.5, "xtc_threshold": 0.05},
        {"mirostat_tau": 3.0},
        {"dry_multiplier": 1.0, "dynatemp_range": 0.5, "temperature_last": 1},
    ],
)
def test_a_fixed_seed_reproduces_the_reply(generator: Generator, extra: dict[str, Any]) -> None:
    levers = Levers.from_mapping({"temperature": 1.0, "max_new_tokens": 16, "seed": 99, **extra})
    first, second = ask(generator, levers), ask(generator, levers)
    assert first.token_ids == second.token_ids
    assert first.seed == 99


def test_ask_json_and_stats_show_what_each_phrase_became(loaded: Any, generator: Generator) -> None:
    from leverchat.commands.ask import format_lever_tokens, result_to_json

    levers = Levers.from_mapping({**GREEDY.to_mapping(), "ban": ["As an AI"], "dry_multiplier": 1})
    result = ask(generator, levers)
    encode = loaded.tokenizer.encode
    sequence = encode("As an AI", add_special_tokens=False)
    data = result_to_json(result, loaded.info)
    [ban] = [item for item in data["lever_tokens"] if item["lever"] == "ban"]
    assert ban["text"] == "As an AI" and sequence in ban["token_ids"]
    breakers = {i["text"]: i["token_ids"] for i in data["lever_tokens"] if i["lever"] != "ban"}
    assert breakers["\n"] == [encode("a\n", add_special_tokens=False)[-1:]]
    lines = format_lever_tokens(result)
    assert lines[0].startswith("ban 'As an AI' -> tokens " + str(sequence))
