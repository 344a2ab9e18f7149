"""The growing KV cache computes exactly what transformers' DynamicCache does, through prefill,
one-token steps past its growth boundary, crops (prefix reuse) and resets."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

from leverchat.engine import kv_cache
from leverchat.engine.kv_cache import GROWTH_TOKENS, GrowingLayer
from test_lean_step import random_model


def step(model: Any, cache: Any, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        output = model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
    return output.logits[0, -1]


def test_every_step_equals_the_dynamic_cache_and_crops_rewrite_in_place() -> None:
    model = random_model("llama")
    mine = kv_cache.new_cache(model.config)
    theirs = DynamicCache(config=model.config)
    assert all(isinstance(layer, GrowingLayer) for layer in mine.layers)
    prompt = list(range(5, 5 + GROWTH_TOKENS - 3))
    assert torch.equal(step(model, mine, prompt), step(model, theirs, prompt))
    storage = mine.layers[0]._key_storage
    assert storage is not None
    steps = storage.shape[-2] - len(prompt) + 2  # one past the storage's room
    for token in range(steps):
        assert torch.equal(step(model, mine, [token % 200]), step(model, theirs, [token % 200]))
    assert mine.get_seq_length() == theirs.get_seq_length() == len(prompt) + steps
    grown = mine.layers[0]._key_storage
    assert grown is not storage  # it grew, once
    assert grown is not None and grown.shape[-2] - mine.get_seq_length() <= GROWTH_TOKENS * 2
    mine.crop(-20)
    theirs.crop(-20)
    for token in (42, 43, 44):  # written over the cropped tokens, no new storage
        assert torch.equal(step(model, mine, [token]), step(model, theirs, [token]))
    assert mine.layers[0]._key_storage is grown
    assert torch.equal(mine.layers[0].keys, theirs.layers[0].keys)
    mine.reset()
    theirs.reset()
    assert mine.get_seq_length() == 0
    assert torch.equal(step(model, mine, [1, 2, 3]), step(model, theirs, [1, 2, 3]))


def test_sliding_window_layers_stay_transformers_own() -> None:
    model = random_model("mistral", sliding_window=16)
    cache = kv_cache.new_cache(model.config)
    assert not any(isinstance(layer, GrowingLayer) for layer in cache.layers)
