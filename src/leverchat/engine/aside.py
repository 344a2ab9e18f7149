"""Quick questions to an engine that must not queue behind a streaming reply."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def run_aside(job: Callable[[], T]) -> Future[T]:
    """``job`` on a short-lived thread of its own. For tokenizer-only work (what a phrase
    becomes, for the panel): no torch call, so it need not wait for the engine's one thread,
    which may be busy with a reply for many seconds."""
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(job())
        except BaseException as error:  # handed to the caller, who decides
            future.set_exception(error)

    threading.Thread(target=run, name="leverchat-aside", daemon=True).start()
    return future
