"""Textual messages that carry engine events to the UI thread.

Engine callbacks run on the engine's own thread; they only ever ``post_message`` one of these
(thread-safe, non-blocking), and the handlers on the UI thread touch the widgets.
"""

from __future__ import annotations

from textual.message import Message

from leverchat.engine.types import GenerationResult, LoadProgress, ModelInfo


class LoadProgressed(Message):
    """One loading step of the model, for the progress display."""

    def __init__(self, progress: LoadProgress) -> None:
        super().__init__()
        self.progress = progress


class ModelLoaded(Message):
    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info


class ModelLoadFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ReplyFinished(Message):
    """A generation ended: ``result`` when the engine returned one, else ``error``."""

    def __init__(
        self, reply_id: str, result: GenerationResult | None, error: str | None = None
    ) -> None:
        super().__init__()
        self.reply_id = reply_id
        self.result = result
        self.error = error
