"""A reply continued from a given start (a branch), on a tiny random model loaded for real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.types import (
    ChatMessage,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    ReplyPrefix,
)
from leverchat.levers import Levers

SAMPLED = Levers(temperature=1.0, top_p=0.95, min_p=0.0, top_k=50, max_new_tokens=20, seed=77)
GREEDY = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=20)
QUESTION = "Tell me about the pirate"


@pytest.fixture(scope="module")
def loaded(tiny_long_model_dir: Path) -> Any:
    # The model that (almost) never ends a reply: every reply runs to max_new_tokens.
    return load_model(ModelSpec(source=str(tiny_long_model_dir), device="cpu", quantize="none"))


@pytest.fixture
def generator(loaded: Any) -> Generator:
    return Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)


def request(
    levers: Levers, prefix: ReplyPrefix | None = None, inspect: int = 0
) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", QUESTION),),
        levers=FixedLevers(levers),
        reply_prefix=prefix,
        inspect=inspect,
    )


def other_token(loaded: Any, avoid: int) -> int:
    """A vocabulary token that is not ``avoid`` and decodes to plain text."""
    for token in loaded.tokenizer.encode(" Arr matey", add_special_tokens=False):
        if token != avoid:
            return int(token)
    raise AssertionError("no other token")


def test_a_branch_continues_from_the_kept_tokens_and_the_chosen_token(
    loaded: Any, generator: Generator
) -> None:
    original = generator.run(request(SAMPLED), None)
    assert len(original.token_ids) == 20
    kept = original.token_ids[:7]
    chosen = other_token(loaded, original.token_ids[7])
    prefix_ids = (*kept, chosen)
    prefix_text = loaded.tokenizer.decode(list(prefix_ids))
    chunks: list[str] = []
    branch = generator.run(
        request(SAMPLED, ReplyPrefix(prefix_text, token_ids=prefix_ids)), chunks.append
    )
    assert branch.token_ids[:8] == prefix_ids
    assert branch.prefix_tokens == 8
    assert branch.text.startswith(prefix_text)
    assert "".join(chunks) == branch.text
    assert chunks[0] == prefix_text  # the given start streams first, in one piece
    # max_new_tokens bounds the whole reply, the given start included.
    assert len(branch.token_ids) == 20
    assert branch.stats.new_tokens == 20


def test_a_greedy_branch_is_what_the_model_says_after_the_prefix(
    loaded: Any, generator: Generator
) -> None:
    """The continuation is the model's own: transformers' greedy decoding of the prompt with
    the prefix tokens appended gives the same tokens."""
    original = generator.run(request(GREEDY), None)
    prefix_ids = (*original.token_ids[:4], other_token(loaded, original.token_ids[4]))
    text = loaded.tokenizer.decode(list(prefix_ids))
    branch = generator.run(request(GREEDY, ReplyPrefix(text, token_ids=prefix_ids)), None)
    prompt = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], add_generation_prompt=True, tokenize=False
    )
    ids = loaded.tokenizer(prompt, add_special_tokens=False).input_ids + list(prefix_ids)
    tensor = torch.tensor([ids])
    out = loaded.model.generate(
        tensor,
        attention_mask=torch.ones_like(tensor),
        do_sample=False,
        max_new_tokens=20 - len(prefix_ids),
        eos_token_id=loaded.tokenizer.eos_token_id,
        pad_token_id=loaded.tokenizer.pad_token_id,
    )
    assert list(branch.token_ids) == list(prefix_ids) + out[0, len(ids) :].tolist()


def test_the_same_branch_with_the_same_seed_is_the_same_reply(
    loaded: Any, generator: Generator
) -> None:
    original = generator.run(request(SAMPLED), None)
    prefix = ReplyPrefix("x", token_ids=original.token_ids[:5], tail=" Arr")
    first = generator.run(request(SAMPLED, prefix), None)
    generator.reset_cache()
    second = generator.run(request(SAMPLED, prefix), None)
    tail_ids = tuple(loaded.tokenizer.encode(" Arr", add_special_tokens=False))
    assert first.token_ids[: 5 + len(tail_ids)] == (*original.token_ids[:5], *tail_ids)
    assert first.prefix_tokens == 5 + len(tail_ids)
    assert first.token_ids == second.token_ids
    assert first.text == second.text


def test_a_text_prefix_is_tokenized_and_streamed_as_written(generator: Generator) -> None:
    branch = generator.run(request(SAMPLED, ReplyPrefix("Ahoy matey! The")), None)
    assert branch.text.startswith("Ahoy matey! The")
    assert branch.prefix_tokens > 0


def test_with_the_inspector_every_token_of_the_branch_has_its_record(
    loaded: Any, generator: Generator
) -> None:
    original = generator.run(request(GREEDY), None)
    prefix_ids = (*original.token_ids[:3], other_token(loaded, original.token_ids[3]))
    text = loaded.tokenizer.decode(list(prefix_ids))
    branch = generator.run(request(GREEDY, ReplyPrefix(text, token_ids=prefix_ids), 5), None)
    assert [item.token_id for item in branch.inspection] == list(branch.token_ids)
    # The given tokens' records say what the model would have said there: the original's
    # tokens were its greedy choice (rank 1); the replaced one was not.
    assert [item.after_rank for item in branch.inspection[:3]] == [1, 1, 1]
    assert branch.inspection[3].after_rank != 1
    # Fed one at a time for the records, the prefix gives the same reply as in one pass.
    plain = generator.run(request(GREEDY, ReplyPrefix(text, token_ids=prefix_ids)), None)
    assert plain.token_ids == branch.token_ids
