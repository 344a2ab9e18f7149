"""--compile: a static KV cache sized once and a compiled one-token step.

Most tests compile with torch.compile's "eager" backend: it traces and guards exactly as the
real one (so a recompile shows) without spending seconds generating code. One test goes
through EngineThread with the real (inductor) backend, as a user's --compile does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.compiled import DEFAULT_COMPILED_CONTEXT, compiled_graph_count
from leverchat.engine.generate import Generator
from leverchat.engine.loading import STAGE_COMPILING, load_model
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    LoadProgress,
    ModelSpec,
    StopReason,
)
from leverchat.engine.worker import EngineThread, session_context_window
from leverchat.levers import Levers, LiveLevers

GREEDY = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=20)
SAMPLED = Levers(temperature=0.9, top_p=0.9, top_k=40, repetition_penalty=1.1, seed=7)


@pytest.fixture(scope="module")
def loaded(tiny_long_model_dir: Path) -> Any:
    # Float weights, as the compiled path runs them (the CPU default would be int8).
    return load_model(ModelSpec(source=str(tiny_long_model_dir), device="cpu", quantize="none"))


def eager(loaded: Any, window: int = 256) -> Generator:
    return Generator(loaded.model, loaded.tokenizer, loaded.device, window)


def compiled(loaded: Any, window: int = 256) -> Generator:
    generator = Generator(
        loaded.model, loaded.tokenizer, loaded.device, window, compile=True, compile_backend="eager"
    )
    generator.warm_up()
    return generator


def turn(*texts: str, levers: Levers = GREEDY) -> GenerationRequest:
    roles = ["user", "assistant"]
    messages = tuple(ChatMessage(roles[i % 2], text) for i, text in enumerate(texts))
    return GenerationRequest(messages, FixedLevers(levers))


def test_compiled_replies_match_eager_ones_over_a_conversation(loaded: Any) -> None:
    fast, reference = compiled(loaded), eager(loaded)
    first = fast.run(turn("Hello there"), None)
    assert first.stop_reason is StopReason.MAX_TOKENS
    assert first.token_ids == reference.run(turn("Hello there"), None).token_ids
    # The second turn reuses the first turn's cached prefix in the static cache.
    second_request = turn("Hello there", first.text, "Tell me more", levers=SAMPLED)
    second = fast.run(second_request, None)
    assert second.stats.reused_prefix_tokens > 0
    fresh = eager(loaded).run(second_request, None)
    assert second.token_ids == fresh.token_ids
    assert second.text == fresh.text


def test_no_recompilation_between_turns(loaded: Any) -> None:
    fast = compiled(loaded)
    graphs = compiled_graph_count()
    assert fast.compiled is not None and fast.compiled.graphs_after_warm_up == graphs
    first = fast.run(turn("One"), None)
    # A longer prompt, a different one (cache cropped to nothing), levers changing mid-reply.
    fast.run(turn("One", first.text, "Two, with a much longer question this time"), None)
    fast.run(turn("Something else entirely"), None)
    live = LiveLevers(SAMPLED.with_value("max_new_tokens", 30))
    chunks = 0

    def on_chunk(_: str) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 5:
            live.set(live.get().with_value("temperature", 1.5).with_value("top_k", 0))

    changed = fast.run(GenerationRequest(turn("Three").messages, live), on_chunk)
    assert changed.lever_changes
    assert compiled_graph_count() == graphs


def test_a_full_static_cache_ends_the_reply_cleanly(loaded: Any) -> None:
    fast = compiled(loaded, window=128)
    long = fast.run(turn("Fill it up", levers=GREEDY.with_value("max_new_tokens", 500)), None)
    assert long.stop_reason is StopReason.CONTEXT_FULL
    assert long.stats.prompt_tokens + long.stats.new_tokens <= 128
    # And the session goes on: the next turn starts from a trimmed history.
    after = fast.run(turn("Fill it up", long.text, "Again"), None)
    assert after.stop_reason is not StopReason.ERROR


def test_a_failed_step_leaves_the_cache_usable(loaded: Any, monkeypatch: Any) -> None:
    fast = compiled(loaded)
    assert fast.compiled is not None
    real_step = fast.compiled.step
    calls = 0

    def failing(argument: str, token: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("device lost")
        return real_step(argument, token)

    monkeypatch.setattr(fast.compiled, "step", failing)
    broken = fast.run(turn("Hello"), None)
    assert broken.stop_reason is StopReason.ERROR and "device lost" in (broken.error or "")
    monkeypatch.setattr(fast.compiled, "step", real_step)
    reference = eager(loaded).run(turn("Hello"), None)
    assert fast.run(turn("Hello"), None).token_ids == reference.token_ids


def test_session_context_window() -> None:
    assert session_context_window(8192, ModelSpec()) == 8192
    assert session_context_window(8192, ModelSpec(compile=True)) == DEFAULT_COMPILED_CONTEXT
    assert session_context_window(2048, ModelSpec(compile=True)) == 2048
    assert session_context_window(8192, ModelSpec(compile=True, context=6000)) == 6000
    assert session_context_window(8192, ModelSpec(context=100_000)) == 8192


def test_compile_with_int8_is_refused_before_loading(tiny_model_dir: Path) -> None:
    engine = EngineThread()
    try:
        future = engine.load(ModelSpec(source=str(tiny_model_dir), compile=True, quantize="int8"))
        with pytest.raises(EngineError, match="--compile and --quantize int8"):
            future.result(timeout=60)
    finally:
        engine.close()


def test_engine_compiles_at_load_with_the_real_backend(tiny_long_model_dir: Path) -> None:
    """What `leverchat --compile` does: inductor on this CPU, compiled before the first reply."""
    steps: list[LoadProgress] = []
    engine = EngineThread()
    try:
        spec = ModelSpec(source=str(tiny_long_model_dir), device="cpu", compile=True, context=512)
        info = engine.load(spec, steps.append).result(timeout=600)
        assert info.context_window == 512
        assert info.device == "cpu, compiled"
        stages = [step.stage for step in steps]
        assert STAGE_COMPILING in stages
        assert stages[-1] == "ready" and stages.count("ready") == 1
        result = engine.generate(turn("Hello there")).result(timeout=120)
    finally:
        engine.close()
    float_spec = ModelSpec(source=str(tiny_long_model_dir), device="cpu", quantize="none")
    reference = eager(load_model(float_spec), 512)
    assert result.stop_reason is StopReason.MAX_TOKENS
    assert result.token_ids == reference.run(turn("Hello there"), None).token_ids
