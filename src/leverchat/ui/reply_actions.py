"""What the user can do with a reply on screen: copy it or one of its code blocks (OSC 52),
open its provenance, and what a click on a link in it does (copy, never open)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leverchat.safetext import single_line
from leverchat.ui.replies import code_blocks

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def copy_last_reply(screen: ChatScreen) -> None:
    last = screen.conversation.last_reply
    if last is None or not last.content:
        screen.notify("There is no reply to copy yet.")
        return
    copy_text(screen, last.content, "the last reply")


def copy_text(screen: ChatScreen, text: str, what: str) -> None:
    # App.copy_to_clipboard writes OSC 52 (base64, so nothing in the text can escape it).
    screen.app.copy_to_clipboard(text)
    screen.notify(f"Copied {what} ({len(text)} characters) to the clipboard.", markup=False)


def copy_code_block(screen: ChatScreen, index: int) -> None:
    last = screen.conversation.last_reply
    blocks = code_blocks(last.content) if last is not None else []
    if not 0 <= index < len(blocks):
        screen.notify("The last reply has no such code block.")
        return
    copy_text(screen, blocks[index], f"code block {index + 1}")


def show_last_provenance(screen: ChatScreen) -> None:
    last = screen.conversation.last_reply
    if last is None or last.provenance is None:
        screen.notify("There is no finished reply to explain yet.")
        return
    show_provenance(screen, last.id)


def show_provenance(screen: ChatScreen, message_id: str) -> None:
    from leverchat.ui.screens.provenance import ProvenanceScreen

    for message in screen.conversation.messages:
        if message.id == message_id and message.provenance is not None:
            screen.app.push_screen(ProvenanceScreen(message.provenance))
            return
    screen.notify("This reply is still being written.")


def reply_button(screen: ChatScreen, action: str, reply_id: str, text: str) -> None:
    """A button under a reply: copy it, or show its provenance."""
    if action == "copy":
        if text:
            copy_text(screen, text, "the reply")
    elif action == "provenance":
        show_provenance(screen, reply_id)


def link_clicked(screen: ChatScreen, href: str) -> None:
    # Links are never opened by a click: over SSH that would open a browser on the host.
    screen.app.copy_to_clipboard(href)
    screen.notify(
        f"Link not opened; copied to the clipboard: {single_line(href, 200)}", markup=False
    )
