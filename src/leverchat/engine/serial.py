"""SerialExecutor: run jobs one at a time, in order, on one named daemon thread.

Both engines need exactly this. The local one because every torch call must stay on a single
thread (generation ran at ~14 tok/s instead of ~22 once another thread had run it), the remote
one so that one reply's HTTP stream finishes before the next request is sent. Callers get a
``Future`` at once; an exception raised by a job is delivered to its future, never to the
thread, so a failed job leaves the executor usable.

``shutdown`` sets the running job's cancel event (a streaming reply stops within a token),
fails every job still queued with :class:`EngineClosed`, and refuses later submissions the
same way, so nobody waits on a future that would never complete.

This module imports neither torch nor Textual.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from leverchat.engine.types import EngineError

log = logging.getLogger(__name__)

T = TypeVar("T")


class EngineClosed(EngineError):
    """The engine was closed before (or while) this job could run."""

    def __init__(self) -> None:
        super().__init__("the engine was closed")


@dataclass(frozen=True)
class _Job:
    run: Callable[[], Any]
    future: Future[Any]
    cancel: threading.Event | None


class SerialExecutor:
    """One lazily started daemon thread that runs submitted jobs in order.

    A daemon thread: a hung torch call or a server that never answers cannot keep the
    process alive after the app exits.
    """

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._current: _Job | None = None

    def submit(self, run: Callable[[], T], cancel: threading.Event | None = None) -> Future[T]:
        """Queue ``run``; ``cancel`` is set by :meth:`shutdown` if the job is running then."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                future.set_exception(EngineClosed())
                return future
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name=self._thread_name, daemon=True
                )
                self._thread.start()
            self._jobs.put(_Job(run, future, cancel))
        return future

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Cancel the running job, fail the queued ones and stop the thread (waiting up to
        ``timeout`` seconds for it). Returns False when it had already been shut down."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        current = self._current
        if current is not None and current.cancel is not None:
            current.cancel.set()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(EngineClosed())
        self._jobs.put(None)
        # A job may close its own engine: joining the current thread would deadlock.
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return True

    @property
    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller cancelled the future while it was queued
            self._current = job
            if self._closed and job.cancel is not None:
                # shutdown() ran between taking the job and publishing it as current.
                job.cancel.set()
            try:
                result = job.run()
            except BaseException as error:
                # An EngineError is a message for the user; anything else is a bug to log.
                if not isinstance(error, EngineError):
                    log.exception("%s: job failed", self._thread_name)
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
            finally:
                self._current = None
