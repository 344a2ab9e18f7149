"""Which chat the screen shows: a new one, a saved one opened from the chat list (with its
profile, system prompt and levers restored), and the transcript drawn from a conversation."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from leverchat.chat import Conversation, Message, MessageStatus
from leverchat.history import HistoryError
from leverchat.profiles import ProfileError
from leverchat.safetext import single_line
from leverchat.ui import hints, profile_actions, reply_lifecycle
from leverchat.ui.replies import ReplySettings, describe_changes
from leverchat.ui.unsaved_guard import ask_before_leaving
from leverchat.ui.widgets.messages_view import ChangeMarker, ReplyView, UserMessage
from leverchat.wording import sentence

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


async def new_chat(screen: ChatScreen) -> None:
    """Start an empty conversation."""
    # A reply still streaming is stopped and saved as it is; so are the settings.
    reply_lifecycle.save_and_stop(screen, MessageStatus.STOPPED)
    if screen._flush_timer is not None:
        screen._flush_timer.pause()
    screen.conversation = Conversation()
    screen._last_settings = None
    screen._saved_settings = None
    screen.last_result = None
    async with screen._view_lock:
        await screen.chat.clear()
    screen.inspector.retint_all()
    screen._refresh_status()
    screen.prompt.focus()


async def open_chat(screen: ChatScreen, chat_id: str) -> bool:
    """Show a saved chat and restore the profile, system prompt and levers at its end."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return False
    try:
        conversation, info, skipped = screen.history.load(chat_id)
    except HistoryError as error:
        screen.notify(f"Could not open the chat: {error}", severity="error", markup=False)
        return False
    for record in skipped:  # damaged rows: the rest of the chat opens, the user is told
        screen.notify(record.describe(), severity="warning", markup=False, timeout=10)
    # The settings of the chat being left.
    reply_lifecycle.save_and_stop(screen, MessageStatus.STOPPED)
    profiles = screen.profiles
    if info.profile and info.profile != profiles.profile.name:
        if info.profile in profiles.names():
            try:
                profiles.switch(info.profile)
            except (ProfileError, OSError) as error:
                screen.notify(
                    f"Could not switch to profile {single_line(info.profile, 40)}: {error}",
                    severity="warning",
                    markup=False,
                )
        else:
            screen.notify(
                f"This chat used profile {single_line(info.profile, 40)}, which no longer "
                "exists: its system prompt and levers are restored on "
                f"{sentence(single_line(profiles.profile.name, 40))}",
                severity="warning",
                markup=False,
                timeout=8,
            )
    screen.live_levers.set(info.levers)
    screen.system_prompt = info.system_prompt
    screen.panel.show_levers(info.levers)
    screen.panel.show_system_prompt(info.system_prompt)
    profile_actions.refresh_profile_list(screen)
    screen.history.known(conversation.id)
    screen.conversation = conversation
    screen.last_result = None
    settings = ReplySettings(profiles.profile.name, screen.system_prompt, info.levers)
    screen._last_settings = settings
    screen._saved_settings = settings
    await render_conversation(screen)
    screen.notify(f"Opened: {single_line(conversation.title or 'untitled chat', 60)}", markup=False)
    screen.prompt.focus()
    return True


def show_chat_list(screen: ChatScreen) -> None:
    """Open the saved chats; the one chosen opens here."""
    from leverchat.ui.screens.chat_list import ChatListScreen

    if not screen.history.enabled:
        screen.notify(
            screen.history.problem or "The history is off: there are no saved chats.",
            severity="warning",
            markup=False,
        )
        return

    def chosen(chat_id: str | None) -> None:
        if chat_id is None or chat_id == screen.conversation.id:
            return
        if screen._reply is not None:  # open_chat would refuse: ask nothing
            screen.notify(hints.busy(screen.app))
            return
        # Opening restores the chat's own levers and system prompt over the panel's: unsaved
        # edits would be lost without a word, so ask first as a profile switch or quit does.
        ask_before_leaving(
            screen, "open another chat", lambda: screen.call_later(screen.open_chat, chat_id)
        )

    async def changed(chat_id: str, title: str | None) -> None:
        """The chat list renamed (``title``) or deleted (None) ``chat_id``."""
        if chat_id != screen.conversation.id:
            return
        if title is not None:
            screen.conversation = replace(screen.conversation, title=title)
        else:
            await screen.action_new_chat()

    screen.app.push_screen(ChatListScreen(screen.history, screen.conversation.id, changed), chosen)


async def render_conversation(screen: ChatScreen, focus_id: str | None = None) -> None:
    """Show ``screen.conversation`` from scratch (opened, or another version chosen)."""
    widgets: list[UserMessage | ReplyView | ChangeMarker] = []
    previous: ReplySettings | None = None
    for message in screen.conversation.messages:
        if message.role == "user":
            widgets.append(UserMessage(message.id, message.content))
            continue
        recorded = message.provenance
        if recorded is not None:
            settings = ReplySettings(recorded.profile, recorded.system_prompt, recorded.levers)
            change = describe_changes(previous, settings) if previous is not None else None
            if change is not None:
                widgets.insert(len(widgets) - 1, ChangeMarker(change))
            previous = settings
        widgets.append(finished_view(message))
    async with screen._view_lock:
        await screen.chat.clear()
        if widgets:
            await screen.chat.add(*widgets)
    screen.inspector.retint_all()  # replies with token records show tinted while it is on
    screen.chat.follow()
    if focus_id is not None:
        view = screen.chat.reply(focus_id) or screen.chat.user_message(focus_id)
        if view is not None:
            view.focus()
            view.scroll_visible(animate=False)


def finished_view(message: Message) -> ReplyView:
    """A saved reply as the transcript shows it, with how it ended and its version."""
    detail = ""
    if message.status is MessageStatus.FAILED and message.provenance is not None:
        detail = message.provenance.error or ""
    status = message.status
    if status is MessageStatus.STREAMING:
        # Still being written by another leverchat (or not marked yet): nothing streams here.
        status = MessageStatus.INTERRUPTED
    return ReplyView(
        message.id,
        message.content,
        status=status,
        detail=detail,
        version=message.version,
        version_count=message.version_count,
    )
