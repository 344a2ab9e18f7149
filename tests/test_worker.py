"""EngineThread: one thread owns the model; failures never hang a caller."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    StopReason,
)
from leverchat.engine.worker import EngineThread
from leverchat.levers import Levers

GREEDY = Levers(temperature=0.0, max_new_tokens=16)


def ask(text: str, levers: Levers = GREEDY) -> GenerationRequest:
    return GenerationRequest((ChatMessage("user", text),), FixedLevers(levers))


@pytest.fixture
def engine(tiny_model_dir: Path):
    engine = EngineThread()
    engine.load(ModelSpec(source=str(tiny_model_dir), device="cpu")).result(timeout=60)
    yield engine
    engine.close()


def test_every_torch_call_runs_on_the_engine_thread(engine: EngineThread) -> None:
    threads: set[str] = set()
    result = engine.generate(ask("Hello"), lambda _: threads.add(threading.current_thread().name))
    assert result.result(timeout=60).stop_reason is not StopReason.ERROR
    assert threads == {"leverchat-engine"}


def test_requests_queue_and_all_complete(engine: EngineThread) -> None:
    futures = [engine.generate(ask(f"Question {i}")) for i in range(3)]
    results = [f.result(timeout=60) for f in futures]
    assert all(r.stop_reason is not StopReason.ERROR for r in results)


def test_count_tokens(engine: EngineThread) -> None:
    n = engine.count_tokens((ChatMessage("user", "Hello"),)).result(timeout=30)
    assert 3 < n < 40


def test_load_failure_is_reported_and_generate_fails_cleanly(tmp_path: Path) -> None:
    engine = EngineThread()
    try:
        missing = tmp_path / "no-such-model"
        with pytest.raises(EngineError) as raised:
            engine.load(ModelSpec(source=str(missing), device="cpu")).result(timeout=30)
        assert str(missing) in str(raised.value)
        result = engine.generate(ask("Hello")).result(timeout=30)
        assert result.stop_reason is StopReason.ERROR
        assert result.error is not None and "no model is loaded" in result.error
    finally:
        engine.close()


def test_close_cancels_running_reply_and_fails_queued(tiny_model_dir: Path) -> None:
    engine = EngineThread()
    engine.load(ModelSpec(source=str(tiny_model_dir), device="cpu")).result(timeout=60)
    started = threading.Event()
    long = ask("Count forever", Levers(temperature=1.0, max_new_tokens=100_000, seed=1))
    running = engine.generate(long, lambda _: started.set())
    queued = engine.generate(ask("queued"))
    assert started.wait(30)
    begin = time.monotonic()
    engine.close(timeout=10)
    assert time.monotonic() - begin < 5
    assert not engine.is_alive
    assert running.result(timeout=1).stop_reason is StopReason.CANCELLED
    with pytest.raises(EngineError):
        queued.result(timeout=1)
    with pytest.raises(EngineError):
        engine.generate(ask("after close")).result(timeout=1)


def test_callback_error_fails_only_that_request(engine: EngineThread) -> None:
    def broken(_: str) -> None:
        raise OSError("terminal went away")

    failed = engine.generate(ask("Hello"), broken).result(timeout=60)
    assert failed.stop_reason is StopReason.ERROR
    assert failed.error is not None and "terminal went away" in failed.error
    assert engine.generate(ask("Hello")).result(timeout=60).stop_reason is not StopReason.ERROR


def test_cpu_thread_policy() -> None:
    from leverchat.engine.worker import cpu_threads_for

    assert cpu_threads_for(None, cores=2, environment={}) == 1
    assert cpu_threads_for(None, cores=8, environment={}) == 7
    assert cpu_threads_for(None, cores=1, environment={}) == 1
    assert cpu_threads_for(3, cores=8, environment={}) == 3
    # The user's OpenMP setting wins over our default, not over an explicit --threads.
    assert cpu_threads_for(None, cores=8, environment={"OMP_NUM_THREADS": "4"}) is None
    assert cpu_threads_for(2, cores=8, environment={"OMP_NUM_THREADS": "4"}) == 2
    # Without a UI to keep responsive (ask, sweep), every core.
    headless = {"leave_core_for_ui": False}
    assert cpu_threads_for(None, cores=2, environment={}, **headless) == 2
    assert cpu_threads_for(3, cores=8, environment={}, **headless) == 3
    assert cpu_threads_for(None, cores=8, environment={"OMP_NUM_THREADS": "4"}, **headless) is None


@pytest.mark.parametrize(
    "command",
    [["ask", "hi"], ["sweep", "--lever", "temperature", "--values", "0,1", "hi"]],
)
def test_ask_and_sweep_load_for_every_core(
    command: list[str], tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands without a UI ask the engine for every core; the chat leaves one."""
    from leverchat import cli
    from leverchat.commands.options import model_spec_from_args
    from leverchat.engine import select
    from leverchat.engine.types import EngineError

    specs: list[Any] = []

    class Recording(select.AnyEngine):
        def load(self, spec: Any, progress: Any = None) -> Any:
            specs.append(spec)
            raise EngineError("recorded")

    monkeypatch.setattr(select, "AnyEngine", Recording)
    cli.main([command[0], "--model", str(tiny_model_dir), *command[1:]])
    assert [spec.leave_core_for_ui for spec in specs] == [False]
    assert model_spec_from_args(cli.build_parser().parse_args([])).leave_core_for_ui


def test_threads_option_reaches_the_engine_thread(tiny_model_dir: Path) -> None:
    import torch

    engine = EngineThread()
    try:
        engine.load(ModelSpec(source=str(tiny_model_dir), device="cpu", threads=1)).result(60)
        assert engine.call(torch.get_num_threads).result(10) == 1
    finally:
        engine.close()
