"""SerialExecutor: the one-thread job queue both engines run on."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

import pytest

from leverchat.engine.serial import EngineClosed, SerialExecutor
from leverchat.engine.types import EngineError


@pytest.fixture
def executor():
    executor = SerialExecutor("test-serial")
    yield executor
    executor.shutdown()


def test_jobs_run_in_order_on_the_one_named_thread(executor: SerialExecutor) -> None:
    seen: list[tuple[int, str]] = []
    futures = [
        executor.submit(lambda i=i: seen.append((i, threading.current_thread().name)) or i)
        for i in range(5)
    ]
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2, 3, 4]
    assert seen == [(i, "test-serial") for i in range(5)]
    assert executor.is_alive


def test_a_failing_job_fails_its_future_only(
    executor: SerialExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> int:
        raise RuntimeError("out of memory")

    def refused() -> int:
        raise EngineError("no model is loaded")

    with caplog.at_level(logging.ERROR, logger="leverchat.engine.serial"):
        failed = executor.submit(boom)
        told = executor.submit(refused)
        after = executor.submit(lambda: 7)
        with pytest.raises(RuntimeError, match="out of memory"):
            failed.result(timeout=10)
        with pytest.raises(EngineError, match="no model is loaded"):
            told.result(timeout=10)
        assert after.result(timeout=10) == 7
    # A bug is logged with its traceback; a message meant for the user is not.
    logged = [r for r in caplog.records if r.exc_info]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["out of memory"]


def test_shutdown_cancels_the_running_job_and_fails_the_queued(
    executor: SerialExecutor,
) -> None:
    started = threading.Event()
    cancel = threading.Event()

    def stream() -> str:
        started.set()
        # Stands in for a reply that streams until cancelled (it never ends on its own).
        while not cancel.wait(0.01):
            pass
        return "cancelled"

    running = executor.submit(stream, cancel=cancel)
    queued = executor.submit(lambda: "never")
    assert started.wait(10)
    assert executor.shutdown(timeout=10) is True
    assert not executor.is_alive
    assert running.result(timeout=1) == "cancelled"
    with pytest.raises(EngineClosed, match="the engine was closed"):
        queued.result(timeout=1)
    late = executor.submit(lambda: "late")
    with pytest.raises(EngineError, match="the engine was closed"):
        late.result(timeout=1)
    assert executor.shutdown() is False


def test_a_future_cancelled_while_queued_never_runs(executor: SerialExecutor) -> None:
    gate = threading.Event()
    ran: list[str] = []
    blocker = executor.submit(gate.wait)
    skipped = executor.submit(lambda: ran.append("skipped"))
    assert skipped.cancel()
    gate.set()
    assert blocker.result(timeout=10) is True
    assert executor.submit(lambda: ran.append("next")).result(timeout=10) is None
    assert ran == ["next"]


def test_a_job_may_shut_down_its_own_executor(executor: SerialExecutor) -> None:
    # The engine thread closing the engine (an error path) must not join itself.
    result: Future[bool] = executor.submit(lambda: executor.shutdown(timeout=10))
    assert result.result(timeout=10) is True


def test_nothing_starts_before_the_first_job() -> None:
    executor = SerialExecutor("test-lazy")
    assert not executor.is_alive
    assert executor.shutdown() is True
    assert not executor.is_alive
