"""New versions of a turn and moving between them: regenerate (alt+left/right), edit and
resend the last message, reproduce a reply (its new version), step to another version.

Every version stays in the history; the one shown is the one the chat continues from.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from leverchat.chat import Message
from leverchat.history import HistoryError
from leverchat.ui import hints, reply_lifecycle, saved_chats
from leverchat.ui.reproduce import replay_plan
from leverchat.ui.widgets.messages_view import ReplyView, UserMessage

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def target_message(screen: ChatScreen, role: str) -> Message | None:
    """The focused message (of ``role``, or any when role is ""), else the last reply."""
    focused = screen.focused
    focused_id = None
    if isinstance(focused, ReplyView):
        focused_id = focused.reply_id
    elif isinstance(focused, UserMessage) and role != "assistant":
        focused_id = focused.message_id
    for message in screen.conversation.messages:
        if message.id == focused_id:
            return message
    return screen.conversation.last_reply


def focused_versions(screen: ChatScreen) -> tuple[Message, tuple[Message, ...]] | None:
    """The focused (or last) message and every version of its turn, or None after telling
    the user why not (a reply streams, no reply yet, the history is off or unreadable)."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return None
    target = target_message(screen, "")
    if target is None:
        screen.notify("There is no reply yet.")
        return None
    if not screen.history.is_saved(screen.conversation.id):
        screen.notify("Versions are kept in the history, which is off for this chat.")
        return None
    try:
        return target, screen.history.versions(target.id)
    except HistoryError as error:
        screen.notify(f"Could not read the versions: {error}", severity="error", markup=False)
        return None


async def step_version(screen: ChatScreen, step: int) -> None:
    """Show the previous (-1) or next (1) version of the focused or last reply."""
    found = focused_versions(screen)
    if found is None:
        return
    target, versions = found
    ids = [version.id for version in versions]
    index = ids.index(target.id) if target.id in ids else 0
    wanted = index + step
    if not 0 <= wanted < len(ids):
        edge = "first" if wanted < 0 else "last"
        screen.notify(f"This is the {edge} version ({index + 1}/{len(ids)}).", timeout=2)
        return
    conversation = screen.history.select_version(ids[wanted])
    if conversation is None:
        return
    screen.conversation = conversation
    await saved_chats.render_conversation(screen, focus_id=ids[wanted])
    screen.notify(f"Version {wanted + 1}/{len(ids)}: the chat continues from it.", timeout=2)


async def reproduce(screen: ChatScreen) -> None:
    """Generate the focused (or last) reply again with its recorded levers and seed."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return
    target = target_message(screen, "assistant")
    if target is None or target.role != "assistant":
        screen.notify("There is no reply to reproduce yet.")
        return
    recorded = target.provenance
    if recorded is None or recorded.seed is None:
        screen.notify(
            "This reply has no recorded seed (it was cut off before it finished): it cannot "
            "be reproduced exactly."
        )
        return
    if screen.model_info is None:
        screen.notify("Wait for the model to load, then reproduce.")
        return
    index = screen.conversation.messages.index(target)
    plan = replay_plan(target, recorded)
    # The recorded reply stays a version of its turn; the reproduction becomes the active
    # one (for an earlier reply, what followed it stays on the other version's branch).
    screen.conversation = replace(
        screen.conversation, messages=screen.conversation.messages[:index]
    )
    await saved_chats.render_conversation(screen)
    screen.notify("Reproducing the reply with its recorded levers and seed…", timeout=3)
    await reply_lifecycle.start_reply(screen, new_seed=False, replay=plan)


async def regenerate(screen: ChatScreen) -> None:
    """Write the last reply again with a fresh seed (the old one stays a version)."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return
    last = screen.conversation.messages[-1] if screen.conversation.messages else None
    if last is None or last.role != "assistant":
        screen.notify("There is no reply to regenerate yet.")
        return
    # The old reply stays in the history as a version (alt+left shows it again).
    view = screen.chat.reply(last.id)
    screen.conversation = screen.conversation.without_last_reply()
    if view is not None:
        await screen.chat.remove_from(view)
    await reply_lifecycle.mark_changes(screen)
    await reply_lifecycle.start_reply(screen, new_seed=True)


async def edit_last(screen: ChatScreen) -> None:
    """Take back the last exchange and put its message in the prompt to edit and resend."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return
    before = screen.conversation
    conversation, text = before.without_last_exchange()
    if text is None:
        screen.notify("There is no message to edit yet.")
        return
    removed_id = before.messages[len(conversation.messages)].id
    widget = screen.chat.user_message(removed_id)
    if widget is not None:
        await screen.chat.remove_from(widget)
    screen.conversation = conversation
    if screen.prompt.text.strip():
        screen.prompt.remember(screen.prompt.text)  # what was being typed stays recallable
    screen.prompt.load_text(text)
    screen.prompt.move_cursor(screen.prompt.document.end)
    screen.prompt.focus()
