"""A reply's life on the chat screen: sent, launched, streamed, finished, stopped or saved at exit.

Threading: the engine calls back on its own thread. The chunk callback only appends to a
locked buffer (no message per token); a timer on the UI thread drains it into the streaming
Markdown when the :class:`FlushPacer` says so (every 50-250 ms, keeping the UI thread's share of
a core small: its time holds the GIL the engine needs). The future's done-callback posts one
``ReplyFinished`` message.

History (``HistorySession``): the chat row is created at the first message; a user message is
saved when sent, a reply when it starts (with the provenance known then), every
SAVE_INTERVAL_S from the flush while it streams, and at its end with its full provenance. On
quit or a signal, :func:`save_and_stop` saves a streaming reply synchronously.

The state (the running reply, the flush timer, the settings last used) lives on the screen;
these functions are its reply lifecycle, called by the screen's handlers and actions.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from leverchat.branch import BranchStart
from leverchat.chat import MessageStatus, ReplyProvenance, new_id
from leverchat.engine.types import (
    GenerationRequest,
    GenerationResult,
    LeverSource,
    Stats,
    StopReason,
)
from leverchat.levers import Levers, random_seed
from leverchat.replay import ReplayLevers, replay_start_levers
from leverchat.ui import hints
from leverchat.ui.messages import ReplyFinished
from leverchat.ui.replies import ChunkBuffer, FreshSeed, ReplySettings, describe_changes
from leverchat.ui.reproduce import ReplayPlan, report_reproduction
from leverchat.ui.widgets.messages_view import ChangeMarker, Notice, ReplyView, UserMessage

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen

SAVE_INTERVAL_S = 0.5  # a streaming reply is saved this often (kill -9 loses at most this)
EXIT_WAIT_S = 1.0  # on quit or a signal, how long to wait for the engine's final result


@dataclass
class Reply:
    """The reply being written: its view, what shapes it, and how far it is saved."""

    reply_id: str
    view: ReplyView
    settings: ReplySettings
    new_seed: bool = False
    request: GenerationRequest | None = None
    buffer: ChunkBuffer = field(default_factory=ChunkBuffer)
    future: Future[GenerationResult] | None = None
    replay: ReplayPlan | None = None
    saved: bool = False  # the reply row exists in the history
    saved_at: float = 0.0
    saved_length: int = 0
    # The seed this reply runs with (chosen when it starts; None for a replay, which has one).
    seed: int | None = None
    # A branch of another version: the start it continues from (see ui/branching.py).
    branch: BranchStart | None = None


# -- sending -------------------------------------------------------------------------------


async def send(screen: ChatScreen, text: str) -> bool:
    """Send ``text`` as the user's next message. Refused (text kept) while a reply runs."""
    if screen._reply is not None:
        screen.notify(hints.busy_send(screen.app), severity="warning")
        return False
    await add_user_turn(screen, text)
    await start_reply(screen, new_seed=False)
    return True


async def add_user_turn(screen: ChatScreen, text: str) -> None:
    """Put ``text`` in the chat and the history as the user's next message (its reply, or an
    A/B pair of replies, follows)."""
    screen.prompt.clear_prompt()
    await mark_changes(screen)
    conversation = screen.conversation
    parent_id = conversation.messages[-1].id if conversation.messages else None
    screen.conversation = conversation.with_user(text)
    message = screen.conversation.messages[-1]
    settings = screen._last_settings or panel_settings(screen)
    screen.history.ensure_chat(
        screen.conversation, settings.profile, settings.system_prompt, settings.levers
    )
    screen._saved_settings = screen._saved_settings or settings
    screen.history.add_user_message(screen.conversation.id, message, parent_id)
    await screen.chat.add(UserMessage(message.id, text))


def panel_settings(screen: ChatScreen) -> ReplySettings:
    """The settings the next reply gets from the panel."""
    # A value typed in the panel but not confirmed with Enter still counts when sending.
    committed = screen.panel.commit_pending()
    if committed:
        screen.live_levers.set(Levers.from_mapping(committed, base=screen.live_levers.get()))
    return current_settings(screen)


def current_settings(screen: ChatScreen) -> ReplySettings:
    return ReplySettings(
        screen.profiles.profile.name, screen.system_prompt, screen.live_levers.get()
    )


async def mark_changes(screen: ChatScreen) -> None:
    """Show what changed since the last reply (a change marker) and save the new settings."""
    settings = panel_settings(screen)
    if screen._last_settings is not None:
        description = describe_changes(screen._last_settings, settings)
        if description is not None:
            await screen.chat.add(ChangeMarker(description))
    screen._last_settings = settings
    save_settings(screen, settings)


def save_settings(screen: ChatScreen, settings: ReplySettings) -> None:
    """Write the chat's profile, system prompt and levers when they changed."""
    if not screen.history.is_saved(screen.conversation.id) or settings == screen._saved_settings:
        return
    screen.history.set_settings(
        screen.conversation.id, settings.profile, settings.system_prompt, settings.levers
    )
    screen._saved_settings = settings


# -- starting and streaming ----------------------------------------------------------------


async def start_reply(
    screen: ChatScreen,
    *,
    new_seed: bool,
    replay: ReplayPlan | None = None,
    branch: BranchStart | None = None,
) -> None:
    reply_id = new_id()
    waiting = screen.model_info is None and screen.load_error is None
    view = ReplyView(reply_id, waiting=waiting)
    if replay is not None:
        recorded = replay.provenance
        settings = ReplySettings(recorded.profile, recorded.system_prompt, recorded.levers)
    else:
        settings = panel_settings(screen)
    if replay is not None and replay.provenance.branch is not None:
        branch = BranchStart.again(replay.provenance.branch)  # the same start again
    reply = Reply(reply_id, view, settings, new_seed=new_seed, replay=replay, branch=branch)
    if replay is None:
        # Pick the seed now rather than letting the engine pick it, so that it is saved
        # with the reply from its first token: a reply cut short by a kill can still be
        # reproduced.
        fixed = settings.levers.seed
        reply.seed = fixed if fixed is not None and not new_seed else random_seed()
    screen._reply = reply
    parent = screen.conversation.messages[-1] if screen.conversation.messages else None
    screen.conversation = screen.conversation.with_reply(
        "", status=MessageStatus.STREAMING, message_id=reply_id
    )
    if parent is not None and screen.history.is_saved(screen.conversation.id):
        stored = screen.history.start_reply(
            screen.conversation.id, reply_id, parent.id, provenance(screen, reply, None, "")
        )
        if stored is not None:
            reply.saved = True
            view.set_version(stored.version, stored.version_count)
    screen.chat.follow()
    await screen.chat.add(view)
    screen._refresh_status()
    if screen.model_info is not None:
        launch(screen, reply)
    elif screen.load_error is not None:
        await end_reply(
            screen, reply, None, MessageStatus.FAILED, f"no model is loaded: {screen.load_error}"
        )


def launch(screen: ChatScreen, reply: Reply) -> None:
    """Hand the conversation to the engine (the model is ready)."""
    reply.view.set_waiting(False)
    messages = screen.conversation.without_last_reply().to_chat_messages(
        reply.settings.system_prompt
    )
    cancel = threading.Event()
    source: LeverSource = screen.live_levers
    if reply.replay is not None:
        recorded = reply.replay.provenance
        source = ReplayLevers(
            replay_start_levers(recorded.levers, recorded.seed),
            recorded.lever_changes,
            cancel=cancel,
            stop_after_tokens=reply.replay.stop_after_tokens,
            # A branch's given tokens take no lever reads: its first sampled token has this index.
            first_token=len(reply.branch.prefix.token_ids) if reply.branch else 0,
        )
    elif reply.seed is not None and reply.seed != screen.live_levers.get().seed:
        source = FreshSeed(screen.live_levers, reply.seed)
    request = GenerationRequest(
        messages,
        levers=source,
        cancel=cancel,
        prompt_format=screen.profiles.profile.prompt_format,
        inspect=screen.inspector.top_n(),  # 0 while the token inspector is off: no cost
        reply_prefix=reply.branch.prefix if reply.branch is not None else None,
    )
    reply.request = request
    reply_id = reply.reply_id

    def done(future: Future[GenerationResult]) -> None:
        error = future.exception()
        if error is not None:
            screen.post_message(ReplyFinished(reply_id, None, str(error) or repr(error)))
        else:
            screen.post_message(ReplyFinished(reply_id, future.result()))

    reply.future = screen.engine.generate(request, reply.buffer.append)
    screen._flush_pacer.start()
    if screen._flush_timer is not None:
        screen._flush_timer.resume()
    reply.future.add_done_callback(done)


async def flush(screen: ChatScreen) -> None:
    """The flush timer's tick: show the streamed text when the pacer says it is time."""
    if not screen._flush_pacer.due():
        return
    async with screen._view_lock:
        await flush_locked(screen)


async def flush_locked(screen: ChatScreen) -> None:
    reply = screen._reply
    if reply is None:
        return
    text = reply.buffer.drain()
    if text:
        # One layout for the whole batch (the Markdown blocks and the status under them).
        with screen.app.batch_update():
            await reply.view.append(text)
        screen._flush_pacer.flushed()
    save_progress(screen, reply)


def save_progress(screen: ChatScreen, reply: Reply, *, force: bool = False) -> None:
    """Save the streamed text (at most every SAVE_INTERVAL_S: one short row update)."""
    if reply is not screen._reply:
        # It ended (save_and_stop ran on a signal while this flush awaited the view): its
        # final row is written, and an update would mark it streaming again.
        return
    if not reply.saved or len(reply.view.text) == reply.saved_length:
        return
    now = time.monotonic()
    if force or now - reply.saved_at >= SAVE_INTERVAL_S:
        screen.history.update_reply(reply.reply_id, reply.view.text)
        reply.saved_at = now
        reply.saved_length = len(reply.view.text)


# -- the end -------------------------------------------------------------------------------


async def finish_reply(screen: ChatScreen, message: ReplyFinished) -> None:
    """The engine's result arrived (``screen._view_lock`` held)."""
    reply = screen._reply
    if reply is None or reply.reply_id != message.reply_id:
        return
    await flush_locked(screen)
    result = message.result
    if result is None:
        await end_reply(screen, reply, None, MessageStatus.FAILED, message.error or "")
        return
    if result.stop_reason is StopReason.ERROR:
        status, detail = MessageStatus.FAILED, result.error or "the engine failed"
    elif result.stop_reason is StopReason.CANCELLED:
        status, detail = MessageStatus.STOPPED, ""
    elif result.stop_reason is StopReason.INTERRUPTED:  # a server's stream was cut
        status, detail = MessageStatus.INTERRUPTED, result.error or ""
    else:
        status, detail = MessageStatus.COMPLETE, ""
    if result.text and result.text != reply.view.text:
        await reply.view.set_text(result.text)
    await end_reply(screen, reply, result, status, detail)
    if result.stats.trimmed_messages:
        await screen.chat.add(
            Notice(
                f"The {result.stats.trimmed_messages} oldest messages no longer fit the "
                "context window: the model did not see them (the system prompt was kept)."
            )
        )
    for notice in result.notices:  # a structured-output change refused mid-reply
        await screen.chat.add(Notice(notice))


async def end_reply(
    screen: ChatScreen,
    reply: Reply,
    result: GenerationResult | None,
    status: MessageStatus,
    detail: str,
) -> None:
    screen._reply = None
    if screen._flush_timer is not None:
        screen._flush_timer.pause()
    text = reply.view.text
    recorded = provenance(screen, reply, result, detail, final=True)
    screen.conversation = screen.conversation.with_reply(
        text, status=status, provenance=recorded, message_id=reply.reply_id
    )
    if reply.saved:
        screen.history.finish_reply(reply.reply_id, text, status, recorded)
        # finish_reply makes the reply's levers the chat's; a reproduction (or a
        # regenerate with a fresh seed) ran with a seed the user did not choose.
        screen._saved_settings = None
        save_settings(screen, current_settings(screen))
    screen.inspector.reply_ended(reply.reply_id, result, reply.saved)
    if result is not None:
        screen.last_result = result
    await reply.view.finish(status, detail)
    screen._refresh_status()
    if reply.replay is not None and result is not None and not result.failed:
        await report_reproduction(screen, reply.replay, text, recorded)


def provenance(
    screen: ChatScreen,
    reply: Reply,
    result: GenerationResult | None,
    detail: str,
    *,
    final: bool = False,
) -> ReplyProvenance:
    """What produced ``reply``: at its start (``final`` False) or at its end."""
    settings = reply.settings
    seed = reply.seed
    if reply.replay is not None:
        seed = reply.replay.provenance.seed
    return ReplyProvenance(
        model=screen.model_info.provenance_name if screen.model_info else "",
        profile=settings.profile,
        system_prompt=settings.system_prompt,
        levers=result.levers if result else settings.levers,
        seed=result.seed if result else seed,
        lever_changes=result.lever_changes if result else (),
        stats=result.stats if result else Stats(),
        stop_reason=(result.stop_reason if result else StopReason.ERROR) if final else None,
        error=(detail or (result.error if result else None)) if final else None,
        remote=result.remote if result else None,
        format_stops=result.format_stops if result else (),
        prompt_format=result.prompt_format if result else "",
        branch=reply.branch.recorded(result) if reply.branch is not None else None,
        lever_tokens=result.lever_tokens if result else (),
        notices=result.notices if result else (),
    )


def cancel(reply: Reply) -> None:
    """Ask the engine to stop ``reply`` (it stops within one token)."""
    if reply.request is not None:
        reply.request.cancel.set()


async def stop(screen: ChatScreen, reply: Reply) -> None:
    """The user stops ``reply``: the engine stops it, or it ends now if it never started."""
    if reply.request is not None:
        reply.request.cancel.set()  # the engine stops within one token
    else:
        await end_reply(screen, reply, None, MessageStatus.STOPPED, "")


def save_and_stop(screen: ChatScreen, status: MessageStatus) -> None:
    """Stop a streaming reply and save everything now (quit, SIGTERM, SIGHUP).

    Synchronous on purpose: the app is about to exit, so no message will be handled
    after this. Waits at most EXIT_WAIT_S for the engine's final result (it stops within
    one token) to save the reply's full provenance.
    """
    reply = screen._reply
    if reply is not None:
        screen._reply = None
        cancel(reply)
        result: GenerationResult | None = None
        if reply.future is not None:
            try:
                result = reply.future.result(timeout=EXIT_WAIT_S)
            except (FutureTimeout, Exception):  # saving matters more than why it failed
                result = None
        text = reply.view.text + reply.buffer.drain()
        if result is not None and result.text.startswith(text):
            text = result.text
        reply.view.text = text
        if reply.saved:
            detail = "" if result is None else (result.error or "")
            recorded = provenance(screen, reply, result, detail, final=True)
            screen.history.finish_reply(reply.reply_id, text, status, recorded)
            if result is not None and result.inspection:
                screen.history.save_inspection(reply.reply_id, result.inspection)
    save_settings(screen, current_settings(screen))
