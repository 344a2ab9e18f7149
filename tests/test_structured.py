"""Structured output (engine/structured.py) in the real decode loop, on a tiny random model with
its own 400-token tokenizer: the mask keeps exactly the tokens the grammar allows, the reply
ends when the grammar completes, a mid-reply change re-syncs or is refused with a notice, the
inspector names the lever, and nothing is built while no structured lever is set."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.structured import ConstraintTokenizer, ReplyConstraint
from leverchat.engine.types import (
    ChatMessage,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers, LiveLevers

SAMPLED = Levers(temperature=1.0, top_p=1.0, min_p=0.0, max_new_tokens=48)
CHOICE_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {
            "answer": {"enum": ["yes", "no"]},
            "n": {"type": "integer", "minimum": 0, "maximum": 99},
        },
        "required": ["answer", "n"],
        "additionalProperties": False,
    }
)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path) -> Any:
    return load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))


@pytest.fixture
def generator(loaded: Any) -> Generator:
    return Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)


def ask(generator: Generator, levers: Levers | LiveLevers, on_chunk: Any = None, **kw: Any) -> Any:
    live = levers if isinstance(levers, LiveLevers) else FixedLevers(levers)
    request = GenerationRequest(messages=(ChatMessage("user", "Ahoy"),), levers=live, **kw)
    return generator.run(request, on_chunk)


def with_(levers: Levers, **values: Any) -> Levers:
    return Levers.from_mapping(values, base=levers)


def token_texts(loaded: Any, vocab: int) -> dict[int, str]:
    special = set(loaded.tokenizer.all_special_ids)
    return {
        t: loaded.tokenizer.convert_tokens_to_string([loaded.tokenizer.convert_ids_to_tokens(t)])
        for t in range(vocab)
        if t not in special
    }


def test_the_mask_keeps_exactly_the_tokens_the_regex_allows(
    loaded: Any, generator: Generator
) -> None:
    """A tiny vocabulary checked by brute force: at the start only tokens made of digits are
    allowed (not the end of turn); after one digit, digits and the end of turn."""
    import torch

    vocab = generator.vocab_size
    tokens = ConstraintTokenizer(loaded.tokenizer, vocab, generator.eos_ids)
    constraint = ReplyConstraint(tokens)
    levers = with_(SAMPLED, regex="[0-9]+")
    allowed = torch.isfinite(constraint.apply(torch.zeros(vocab), levers))
    texts = token_texts(loaded, vocab)
    digits = {t for t, text in texts.items() if re.fullmatch("[0-9]+", text)}
    assert digits, "the tiny tokenizer has digit tokens"
    assert set(torch.nonzero(allowed).flatten().tolist()) == digits
    constraint.accept(min(digits))
    allowed = torch.isfinite(constraint.apply(torch.zeros(vocab), levers))
    assert set(torch.nonzero(allowed).flatten().tolist()) == digits | set(generator.eos_ids)


@pytest.mark.parametrize("seed", range(8))
def test_a_schema_reply_validates_and_ends_when_the_grammar_completes(
    generator: Generator, seed: int
) -> None:
    result = ask(generator, with_(SAMPLED, json_schema=CHOICE_SCHEMA, seed=seed))
    assert result.stop_reason is StopReason.END_OF_TURN, result.text
    reply = json.loads(result.text)
    assert set(reply) == {"answer", "n"}
    assert reply["answer"] in ("yes", "no")
    assert isinstance(reply["n"], int) and 0 <= reply["n"] <= 99


# Bounded patterns: each ends by itself, so the reply must end with the pattern complete.
PATTERNS = (
    "(yes|no)",
    "[a-z]{1,8}",
    "[0-9]{3}-[0-9]{4}",
    "(Arr|Ahoy)(, matey)?!",
    "[A-Z][a-z ]{0,12}\\.",
)


@settings(
    max_examples=int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), pattern=st.sampled_from(PATTERNS))
def test_any_seed_gives_a_whole_match_of_the_regex(
    generator: Generator, seed: int, pattern: str
) -> None:
    result = ask(generator, with_(SAMPLED, regex=pattern, seed=seed))
    assert result.stop_reason is StopReason.END_OF_TURN, (pattern, result.text)
    assert re.fullmatch(pattern, result.text), (pattern, result.text)


@pytest.mark.parametrize("seed", range(4))
def test_a_grammar_reply_follows_the_gbnf_grammar(generator: Generator, seed: int) -> None:
    grammar = 'root ::= "Arr" (", " word)* "!"\nword ::= "matey" | "ahoy"'
    result = ask(generator, with_(SAMPLED, grammar=grammar, seed=seed, max_new_tokens=200))
    assert result.stop_reason is StopReason.END_OF_TURN, result.text
    assert re.fullmatch(r"Arr(, (matey|ahoy))*!", result.text)


@pytest.mark.parametrize("seed", range(6))
def test_json_mode_on_a_random_model_gives_a_json_object(generator: Generator, seed: int) -> None:
    """A random model writes arbitrary keys and values; what it writes is still one object,
    unless max tokens cuts it (then the reply says so: it did not end by itself)."""
    result = ask(generator, with_(SAMPLED, json_mode=True, seed=seed, max_new_tokens=400))
    if result.stop_reason is StopReason.END_OF_TURN:
        assert isinstance(json.loads(result.text), dict)
    else:
        assert result.stop_reason is StopReason.MAX_TOKENS
        assert result.text.lstrip().startswith("{")


def test_nothing_is_built_and_the_logits_are_untouched_while_no_structured_lever_is_set(
    loaded: Any, generator: Generator
) -> None:
    import torch

    plain = ask(generator, with_(SAMPLED, seed=3))
    assert generator._constraint_tokens._built is None
    constraint = ReplyConstraint(generator._constraint_tokens)
    logits = torch.randn(generator.vocab_size)
    assert constraint.apply(logits, SAMPLED) is logits
    # And the same seed gives the same reply as before any constraint was ever used.
    ask(generator, with_(SAMPLED, regex="[a-z]+", seed=3))
    assert ask(generator, with_(SAMPLED, seed=3)).token_ids == plain.token_ids


def test_a_constraint_set_mid_reply_that_the_text_so_far_fits_applies(
    generator: Generator,
) -> None:
    """JSON mode from the start, the schema set after the first token ("{" fits it): the
    reply follows the schema, and the change is recorded."""
    live = LiveLevers(with_(SAMPLED, json_mode=True, seed=1))
    changed: list[str] = []

    def on_chunk(text: str) -> None:
        if not changed:
            changed.append(text)
            live.set(with_(live.get(), json_schema=CHOICE_SCHEMA))

    result = ask(generator, live, on_chunk)
    assert result.notices == ()
    assert [change.changed for change in result.lever_changes] == [("json_schema",)]
    assert set(json.loads(result.text)) == {"answer", "n"}


def test_a_constraint_the_text_so_far_does_not_fit_is_refused_with_a_notice(
    tiny_long_model_dir: Path,
) -> None:
    loaded = load_model(ModelSpec(source=str(tiny_long_model_dir), device="cpu"))
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)
    live = LiveLevers(with_(SAMPLED, seed=2, max_new_tokens=12))
    count = [0]

    def on_chunk(text: str) -> None:
        count[0] += 1
        if count[0] == 3:
            live.set(with_(live.get(), regex="[0-9]+"))
        if count[0] == 5:  # another lever later: the refusal is not repeated
            live.set(with_(live.get(), temperature=0.9))

    result = ask(generator, live, on_chunk)
    [notice] = result.notices
    assert "regex was changed mid-reply" in notice
    assert "applies from the next reply" in notice
    # The reply went on unconstrained rather than being bent into digits.
    assert result.stop_reason is StopReason.MAX_TOKENS
    assert not re.fullmatch("[0-9]+", result.text)


def test_the_inspector_names_the_structured_lever_for_what_it_removed(
    generator: Generator,
) -> None:
    result = ask(generator, with_(SAMPLED, regex="[0-9]+", seed=0, max_new_tokens=3), inspect=5)
    first = result.inspection[0]
    removed = {alt.removed_by for alt in first.alternatives if alt.after == 0.0}
    assert removed == {"regex"}
    assert re.fullmatch("[0-9]+", first.text)
