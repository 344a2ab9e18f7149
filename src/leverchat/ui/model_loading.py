"""Loading a model in the background while the chat stays usable: progress on the status line,
the lever panel told what a remote server cannot apply, and a reply that was waiting for the
model started (or failed) once the load ends."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from leverchat.chat import MessageStatus
from leverchat.engine.types import LoadProgress, ModelInfo, ModelSpec
from leverchat.ui import hints, reply_lifecycle
from leverchat.ui.messages import LoadProgressed, ModelLoaded, ModelLoadFailed
from leverchat.ui.remote_levers import show_unavailable
from leverchat.ui.widgets.messages_view import Notice
from leverchat.wording import sentence

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def load_model(screen: ChatScreen, spec: ModelSpec) -> None:
    """Load ``spec`` in the background; the engine's callbacks post messages to ``screen``."""
    screen.model_spec = spec
    screen.model_info = None
    screen.load_error = None
    screen.load_status = "Loading the model…"
    screen._load_generation += 1
    generation = screen._load_generation
    screen._refresh_status()

    def progress(step: LoadProgress) -> None:
        screen.post_message(LoadProgressed(step))

    def done(future: Future[ModelInfo]) -> None:
        if generation != screen._load_generation:
            return  # a newer load replaced this one
        error = future.exception()
        if error is None:
            screen.post_message(ModelLoaded(future.result()))
        else:
            screen.post_message(ModelLoadFailed(str(error) or type(error).__name__))

    screen.engine.load(spec, progress).add_done_callback(done)


def progressed(screen: ChatScreen, message: LoadProgressed) -> None:
    if screen.model_info is None and screen.load_error is None:
        step = message.progress
        percent = f" {step.fraction:.0%}" if step.fraction is not None else ""
        screen.load_status = f"{step.message}{percent}"
        screen._refresh_status()


def loaded(screen: ChatScreen, message: ModelLoaded) -> None:
    screen.model_info = message.info
    screen.load_status = None
    show_unavailable(screen.panel, message.info.unavailable_levers)
    screen.panel.refresh_tokens()  # the phrases, in this model's tokenizer
    screen._refresh_status()
    if screen._reply is not None and screen._reply.future is None:
        reply_lifecycle.launch(screen, screen._reply)


async def failed(screen: ChatScreen, message: ModelLoadFailed) -> None:
    screen.load_status = None
    screen.load_error = message.error
    screen._refresh_status()
    await screen.chat.add(
        Notice(
            f"The model did not load: {sentence(message.error)} {hints.load_failed(screen.app)}",
            error=True,
        )
    )
    if screen._reply is not None and screen._reply.future is None:
        await reply_lifecycle.end_reply(
            screen, screen._reply, None, MessageStatus.FAILED, f"no model: {message.error}"
        )
