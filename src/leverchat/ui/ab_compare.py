"""A/B (F8): the next message answered under two settings, with one seed; one is kept.

A is the chat's current settings (the panel's levers, system prompt and profile); B is another
profile, or the current settings with one lever changed (a variant), or both. Both answer the
same history with the same seed, one after the other (see screens/ab.py). The user keeps one:
it becomes the chat's reply, and the other stays in the history as a version of the same reply
(alt+left/right and F3 reach it). Both carry their full provenance.

Nothing enters the chat until the A/B starts: then the user's message is added, and both
replies are saved as they stream, as any reply is (:class:`HistoryRecorder`). Keeping one only
makes it the active version (closing the screen keeps A).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from leverchat.chat import MessageStatus, ReplyProvenance, new_id
from leverchat.engine.types import ChatMessage, FormatChoice, GenerationResult, Stats, StopReason
from leverchat.profiles import Profile
from leverchat.ui.replies import ReplySettings, describe_changes

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen

SIDES = ("A", "B")


@dataclass(frozen=True)
class ABSide:
    """What one side answers with."""

    name: str  # "A" or "B"
    settings: ReplySettings  # the levers carry the shared seed
    prompt_format: FormatChoice
    messages: tuple[ChatMessage, ...]


@dataclass
class ABReply:
    """One side's reply as it streams and ends."""

    side: ABSide
    reply_id: str = field(default_factory=new_id)
    text: str = ""
    result: GenerationResult | None = None
    error: str | None = None  # the engine failed outright (no result)

    @property
    def status(self) -> MessageStatus:
        result = self.result
        if result is None:
            return MessageStatus.FAILED if self.error else MessageStatus.STOPPED
        return {
            StopReason.ERROR: MessageStatus.FAILED,
            StopReason.CANCELLED: MessageStatus.STOPPED,
            StopReason.INTERRUPTED: MessageStatus.INTERRUPTED,
        }.get(result.stop_reason, MessageStatus.COMPLETE)


@dataclass(frozen=True)
class ABOutcome:
    replies: tuple[ABReply, ...]
    kept: int  # index into replies


def side_b_settings(
    a: ReplySettings, profile: Profile | None, lever: str | None, value: Any
) -> ReplySettings:
    """B: ``profile``'s settings (or A's), then ``lever`` set to ``value``; A's seed."""
    b = a
    if profile is not None:
        b = ReplySettings(profile.name, profile.system_prompt, profile.levers)
    levers = b.levers
    if lever is not None:
        levers = levers.with_value(lever, value)
    return replace(b, levers=levers.with_value("seed", a.levers.seed))


def what_differed(a: ReplySettings, b: ReplySettings) -> str:
    """One line: what B changes against A (e.g. "B: profile default → pirate; temperature
    0.7 → 1.1")."""
    changes = describe_changes(a, b)
    return f"B: {changes}" if changes else "B: the same settings as A (the same reply expected)"


def messages_for(
    history: tuple[ChatMessage, ...], system_prompt: str, text: str
) -> tuple[ChatMessage, ...]:
    """The history (without a system prompt) under ``system_prompt``, then the new message."""
    system = (ChatMessage("system", system_prompt),) if system_prompt.strip() else ()
    return (*system, *history, ChatMessage("user", text))


def provenance(model: str, reply: ABReply, *, final: bool = True) -> ReplyProvenance:
    """How one side's reply was made: at its start (``final`` False) or at its end."""
    settings = reply.side.settings
    result = reply.result
    return ReplyProvenance(
        model=model,
        profile=settings.profile,
        system_prompt=settings.system_prompt,
        levers=result.levers if result else settings.levers,
        seed=result.seed if result else settings.levers.seed,
        lever_changes=result.lever_changes if result else (),
        stats=result.stats if result else Stats(),
        stop_reason=(result.stop_reason if result else StopReason.ERROR) if final else None,
        error=(result.error if result else reply.error) if final else None,
        remote=result.remote if result else None,
        format_stops=result.format_stops if result else (),
        prompt_format=result.prompt_format if result else "",
    )


# -- the chat's side -------------------------------------------------------------------------


class ABRecorder(Protocol):
    """Where the A/B screen reports to: the chat adds the message, the history keeps both."""

    async def begin(self) -> None: ...

    def started(self, reply: ABReply) -> None: ...

    def progress(self, reply: ABReply, text: str) -> None: ...

    def finished(self, reply: ABReply) -> None: ...


class HistoryRecorder:
    """Puts the message in the chat when the A/B starts, and saves each reply as any reply is
    saved (at its start, every SAVE_INTERVAL_S while it streams, at its end), both as replies
    to that message: a kill in the middle loses at most that much of either."""

    def __init__(self, screen: ChatScreen, text: str, model: str) -> None:
        self.screen = screen
        self.text = text
        self.model = model
        self.parent_id: str | None = None
        self.saved: set[str] = set()
        self._saved_at: dict[str, float] = {}

    async def begin(self) -> None:
        from leverchat.ui import reply_lifecycle

        await reply_lifecycle.add_user_turn(self.screen, self.text)
        self.parent_id = self.screen.conversation.messages[-1].id

    def started(self, reply: ABReply) -> None:
        history = self.screen.history
        chat_id = self.screen.conversation.id
        if self.parent_id is None or not history.is_saved(chat_id):
            return
        recorded = provenance(self.model, reply, final=False)
        if history.start_reply(chat_id, reply.reply_id, self.parent_id, recorded) is not None:
            self.saved.add(reply.reply_id)
            self._saved_at[reply.reply_id] = time.monotonic()

    def progress(self, reply: ABReply, text: str) -> None:
        from leverchat.ui.reply_lifecycle import SAVE_INTERVAL_S

        now = time.monotonic()
        if reply.reply_id in self.saved and now - self._saved_at[reply.reply_id] >= SAVE_INTERVAL_S:
            self.screen.history.update_reply(reply.reply_id, text)
            self._saved_at[reply.reply_id] = now

    def finished(self, reply: ABReply) -> None:
        if reply.reply_id in self.saved:
            recorded = provenance(self.model, reply)
            self.screen.history.finish_reply(reply.reply_id, reply.text, reply.status, recorded)


def open_ab(screen: ChatScreen) -> None:
    """F8: the A/B screen for the text in the prompt."""
    from leverchat.ui import hints, reply_lifecycle
    from leverchat.ui.screens.ab import ABScreen, ABSetup

    if screen.streaming:
        screen.notify(hints.busy(screen.app))
        return
    if screen.model_info is None:
        screen.notify("Wait for the model to load, then compare.")
        return
    text = screen.prompt.text
    if not text.strip():
        screen.notify("Type the message first: A/B sends it under two settings.")
        return
    settings = reply_lifecycle.panel_settings(screen)
    model = screen.model_info.provenance_name
    setup = ABSetup(
        text=text,
        history=screen.conversation.to_chat_messages(""),
        a=settings,
        a_format=screen.profiles.profile.prompt_format,
        profiles=tuple(screen.profiles.names()),
        load_profile=lambda name: screen.profiles.store.load(name).profile,
        model=model,
    )
    recorder = HistoryRecorder(screen, text, model)

    async def done(outcome: ABOutcome | None) -> None:
        if outcome is not None:
            await keep(screen, outcome, recorder)

    screen.app.push_screen(ABScreen(screen.engine, setup, recorder), done)


async def keep(screen: ChatScreen, outcome: ABOutcome, recorder: HistoryRecorder) -> None:
    """The kept reply becomes the chat's; the other stays a version (both already saved)."""
    from leverchat.ui import saved_chats

    kept = outcome.replies[outcome.kept]
    conversation = None
    if kept.reply_id in recorder.saved:
        conversation = screen.history.select_version(kept.reply_id)
    if conversation is None:  # the history is off (or failed): only the kept one stays
        conversation = screen.conversation.with_reply(
            kept.text,
            status=kept.status,
            provenance=provenance(recorder.model, kept),
            message_id=kept.reply_id,
        )
    screen.conversation = conversation
    if kept.result is not None:
        screen.last_result = kept.result
    await saved_chats.render_conversation(screen, focus_id=kept.reply_id)
    screen._refresh_status()
    other = outcome.replies[1 - outcome.kept]
    name = SIDES[1 - outcome.kept]
    if other.reply_id in recorder.saved:
        where = f"{name} stays a version of this reply (older/newer version keys show it)"
    elif other.result is None and other.error is None:
        where = f"{name} was not written"
    else:
        where = f"{name} was not saved: the history is off for this chat"
    screen.notify(f"Kept {SIDES[outcome.kept]}; {where}.", timeout=5, markup=False)
