"""A/B (F8): the next message answered under two settings, with one seed; one is kept.

A is the chat's current settings (the panel's levers, system prompt and profile); B is another
profile, or the current settings with one lever changed (a variant), or both. Both answer the
same history with the same seed, one after the other (see screens/ab.py). The user keeps one:
it becomes the chat's reply, and the other stays in the history as a version of the same reply
(alt+left/right and F3 reach it). Both carry their full provenance.

Nothing enters the chat until the A/B starts: then the user's message is added (saved as any
message is); the two replies are saved when the user keeps one (or closes the screen: A is
kept then).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

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


def provenance(model: str, reply: ABReply) -> ReplyProvenance:
    """How one side's reply was made (final: its stop reason and error are known)."""
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
        stop_reason=result.stop_reason if result else StopReason.ERROR,
        error=(result.error if result else reply.error),
        remote=result.remote if result else None,
        format_stops=result.format_stops if result else (),
        prompt_format=result.prompt_format if result else "",
    )


# -- the chat's side -------------------------------------------------------------------------


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
    history = screen.conversation.to_chat_messages("")
    setup = ABSetup(
        text=text,
        history=history,
        a=settings,
        a_format=screen.profiles.profile.prompt_format,
        profiles=tuple(screen.profiles.names()),
        load_profile=lambda name: screen.profiles.store.load(name).profile,
        model=screen.model_info.provenance_name,
    )

    async def started() -> None:
        await reply_lifecycle.add_user_turn(screen, text)

    async def done(outcome: ABOutcome | None) -> None:
        if outcome is not None:
            await keep(screen, outcome)

    screen.app.push_screen(ABScreen(screen.engine, setup, started), done)


async def keep(screen: ChatScreen, outcome: ABOutcome) -> None:
    """Save both replies as versions of the same reply; the kept one is the chat's."""
    from leverchat.ui import saved_chats

    model = screen.model_info.provenance_name if screen.model_info else ""
    kept = outcome.replies[outcome.kept]
    parent = screen.conversation.messages[-1] if screen.conversation.messages else None
    chat_id = screen.conversation.id
    saved = parent is not None and screen.history.is_saved(chat_id)
    if saved and parent is not None:
        # The other one first: the kept one is then the newest version as well as the active.
        others = [reply for reply in outcome.replies if reply is not kept]
        for reply in [*others, kept]:
            recorded = provenance(model, reply)
            if screen.history.start_reply(chat_id, reply.reply_id, parent.id, recorded) is None:
                saved = False
                break
            screen.history.finish_reply(reply.reply_id, reply.text, reply.status, recorded)
    conversation = screen.history.select_version(kept.reply_id) if saved else None
    if conversation is None:
        conversation = screen.conversation.with_reply(
            kept.text,
            status=kept.status,
            provenance=provenance(model, kept),
            message_id=kept.reply_id,
        )
    screen.conversation = conversation
    if kept.result is not None:
        screen.last_result = kept.result
    await saved_chats.render_conversation(screen, focus_id=kept.reply_id)
    screen._refresh_status()
    other = SIDES[1 - outcome.kept]
    where = (
        f"{other} stays a version of this reply (older/newer version keys show it)"
        if saved
        else f"{other} was not saved: the history is off for this chat"
    )
    screen.notify(f"Kept {SIDES[outcome.kept]}; {where}.", timeout=5, markup=False)
