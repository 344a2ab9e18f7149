"""ReplayLevers replays recorded lever changes at the exact token: the real engine on the tiny
model, with sampling on, gives the same tokens and records the same changes."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.types import ChatMessage, GenerationRequest, ModelSpec, StopReason
from leverchat.levers import Levers, LiveLevers
from leverchat.replay import ReplayLevers, compare_texts

SAMPLED = Levers(temperature=1.0, top_p=1.0, min_p=0.0, top_k=0, max_new_tokens=30, seed=7)
MESSAGES = (ChatMessage("user", "Tell me a story"),)


class ChangeAtRead:
    """Live levers that a 'user' changes right before the engine's n-th read (0 = first)."""

    def __init__(self, start: Levers, changes: dict[int, Levers]) -> None:
        self.live = LiveLevers(start)
        self._changes = changes
        self._reads = 0

    def snapshot(self) -> tuple[int, Levers]:
        change = self._changes.get(self._reads)
        if change is not None:
            self.live.set(change)
        self._reads += 1
        return self.live.snapshot()


@pytest.fixture(scope="module")
def generator(tiny_model_dir: Path) -> Generator:
    loaded: Any = load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))
    return Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)


def replay(generator: Generator, original: Any, **options: Any) -> Any:
    cancel = threading.Event()
    source = ReplayLevers(original.levers, original.lever_changes, cancel=cancel, **options)
    return generator.run(GenerationRequest(MESSAGES, levers=source, cancel=cancel), None)


def test_changes_mid_reply_replay_to_the_same_tokens(generator: Generator) -> None:
    start = SAMPLED
    changes = {
        1: replace(start, temperature=0.0),  # before token 0
        6: replace(start, temperature=1.6, top_k=5),  # before token 5
        12: replace(start, temperature=0.7, repetition_penalty=1.3),  # before token 11
    }
    original = generator.run(GenerationRequest(MESSAGES, levers=ChangeAtRead(start, changes)), None)
    assert [c.token_index for c in original.lever_changes] == [0, 5, 11]
    again = replay(generator, original)
    assert again.token_ids == original.token_ids
    assert again.text == original.text
    assert again.lever_changes == original.lever_changes
    # Without the changes the same seed gives another reply: the replay did apply them.
    plain = generator.run(GenerationRequest(MESSAGES, levers=ReplayLevers(start)), None)
    assert plain.token_ids != original.token_ids


def test_a_change_at_the_max_tokens_boundary_is_replayed(generator: Generator) -> None:
    start = replace(SAMPLED, max_new_tokens=6)
    # Reads: 0 initial, 1..6 before tokens 0..5, 7 the "done?" check after token 5, then
    # 8.. before tokens 6.. (a later change must stay on its token after the extra read).
    longer = replace(start, max_new_tokens=14, temperature=1.4)
    greedy = replace(longer, temperature=0.0)
    source = ChangeAtRead(start, {7: longer, 10: greedy})
    original = generator.run(GenerationRequest(MESSAGES, levers=source), None)
    assert [c.token_index for c in original.lever_changes] == [6, 8]
    assert len(original.token_ids) == 14
    again = replay(generator, original)
    assert again.token_ids == original.token_ids
    assert again.lever_changes == original.lever_changes
    assert again.stop_reason is StopReason.MAX_TOKENS


def test_a_stopped_reply_is_replayed_to_the_same_length(generator: Generator) -> None:
    full = generator.run(GenerationRequest(MESSAGES, levers=ReplayLevers(SAMPLED)), None)
    again = replay(generator, full, stop_after_tokens=9)
    assert again.stop_reason is StopReason.CANCELLED
    assert again.token_ids == full.token_ids[:9]


def test_compare_texts_says_where_it_diverged() -> None:
    assert compare_texts("abc", "abc", original_complete=True).identical
    diverged = compare_texts("hello world", "hello there", original_complete=True)
    assert diverged.diverged_at == 6
    assert "character 6" in diverged.describe("hello world", "hello there")
    cut = compare_texts("hello", "hello world", original_complete=False)
    assert cut.prefix_only and not cut.identical
    assert compare_texts("hello", "hello world", original_complete=True).diverged_at == 5
