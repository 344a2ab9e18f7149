"""The widgets of one transcript entry: a user message, an assistant reply, a change marker."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Markdown, Static

from leverchat.chat import MessageStatus
from leverchat.safetext import plain, visible
from leverchat.ui.keymap import binding
from leverchat.ui.widgets.markdown_guard import too_heavy_for_markdown
from leverchat.ui.widgets.markdown_text import reply_parser


class UserMessage(Static, can_focus=True):
    """What the user sent, shown literally (never as markup or Markdown)."""

    def __init__(self, message_id: str, text: str) -> None:
        super().__init__(plain(text), classes="user-message")
        self.message_id = message_id
        self.text = text


class ChangeMarker(Static):
    """One line between replies saying what changed: profile, system prompt or levers."""

    def __init__(self, description: str) -> None:
        super().__init__(Content("⟳ ") + plain(description), classes="change-marker")


class Notice(Static):
    """A line from the app itself in the transcript (load failure, trimmed history, ...)."""

    def __init__(self, text: str, *, error: bool = False) -> None:
        super().__init__(plain(text), classes="notice -error" if error else "notice")


_STATUS_TEXT = {
    MessageStatus.STOPPED: "■ stopped",
    MessageStatus.FAILED: "✗ failed",
    MessageStatus.INTERRUPTED: "■ interrupted",
}


class ReplyView(Vertical, can_focus=True):
    """An assistant reply. Streams Markdown (or plain text when it is too heavy to lay out)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        binding("reply.copy", "copy_reply"),
        binding("reply.provenance", "show_provenance"),
        binding("reply.branch", "branch_reply"),
    ]

    class Action(Message):
        """The user asked for something about this reply (copy it, show its provenance)."""

        def __init__(self, reply: ReplyView, action: str) -> None:
            super().__init__()
            self.reply = reply
            self.action = action

    def __init__(
        self,
        reply_id: str,
        text: str = "",
        *,
        waiting: bool = False,
        status: MessageStatus = MessageStatus.STREAMING,
        detail: str = "",
        version: int = 1,
        version_count: int = 1,
    ) -> None:
        super().__init__(classes="reply")
        self.reply_id = reply_id
        self.text = text
        self.status = status
        self._plain_mode = too_heavy_for_markdown(text)
        self._waiting = waiting
        self._detail = detail
        self.version = version
        self.version_count = version_count
        self._shown_status: tuple[str, MessageStatus] | None = None

    def compose(self) -> ComposeResult:
        if self._plain_mode:
            yield Static(plain(self.text), classes="reply-body -plain")
        else:
            yield Markdown(
                visible(self.text),
                classes="reply-body",
                open_links=False,
                parser_factory=reply_parser,
            )
        yield Static(self._status_content(), classes="reply-status")

    def on_mount(self) -> None:
        self._refresh_status()

    @property
    def plain_mode(self) -> bool:
        return self._plain_mode

    async def append(self, chunk: str) -> None:
        """Add streamed text (one batch of chunks)."""
        if not chunk:
            return
        self._waiting = False
        self.text += chunk
        if not self._plain_mode and too_heavy_for_markdown(self.text):
            await self._switch_to_plain()
        elif self._plain_mode:
            self.query_one(".reply-body", Static).update(plain(self.text))
        else:
            # The caller batches chunks (every 50-250 ms), so a direct append is one layout
            # per batch. Not Markdown.get_stream(): stopping a stream whose task has not started
            # yet raises CancelledError in the caller, which silently ended the screen's
            # message loop (seen under load in the tests).
            await self.query_one(".reply-body", Markdown).append(visible(chunk))
        self._refresh_status()

    async def finish(self, status: MessageStatus, detail: str = "") -> None:
        """The reply ended: flush the stream and show how it ended."""
        self.status = status
        self._waiting = False
        self._detail = detail
        self._refresh_status()

    async def set_text(self, text: str) -> None:
        """Replace the whole text (the engine's final text differs from what streamed)."""
        self.text = text
        if not self._plain_mode and too_heavy_for_markdown(text):
            await self._switch_to_plain()
        elif self._plain_mode:
            self.query_one(".reply-body", Static).update(plain(text))
        else:
            await self.query_one(".reply-body", Markdown).update(visible(text))

    def set_version(self, version: int, count: int) -> None:
        """Show "version 2/3" when this turn has several replies (alt+left/right steps)."""
        self.version = version
        self.version_count = count
        if self.is_mounted:
            self._refresh_status()

    def set_waiting(self, waiting: bool) -> None:
        self._waiting = waiting
        self._refresh_status()

    async def _switch_to_plain(self) -> None:
        self._plain_mode = True
        await self.query_one(".reply-body").remove()
        body = Static(plain(self.text), classes="reply-body -plain")
        await self.mount(body, before=self.query_one(".reply-status"))
        self.notify(
            "This reply holds a very large table or text: it is shown as plain text.",
            markup=False,
        )

    def _status_content(self) -> Content:
        content = self._state_content()
        if self.version_count <= 1:
            return content
        label = Content(f"◀ version {self.version}/{self.version_count} ▶")
        return label if not content.plain else content + Content("  ") + label

    def _state_content(self) -> Content:
        if self._waiting:
            return Content("… waiting for the model to load")
        if self.status is MessageStatus.STREAMING:
            return Content("▍")
        label = _STATUS_TEXT.get(self.status)
        if label is None:
            return Content("")
        if not self._detail:
            return Content(label)
        return Content(label + ": ") + plain(self._detail)

    def _refresh_status(self) -> None:
        content = self._status_content()
        # Content equality ignores styles, so compare the markup (and the status: its class).
        shown = (content.markup, self.status)
        if shown == self._shown_status:
            # Unchanged (the streaming cursor on every batch): an update would cost a layout.
            return
        self._shown_status = shown
        status = self.query_one(".reply-status", Static)
        status.update(content)
        status.set_class(self.status is MessageStatus.FAILED, "-failed")
        status.set_class(self.status is MessageStatus.STOPPED, "-stopped")
        status.display = bool(content.plain)

    def action_copy_reply(self) -> None:
        self.post_message(self.Action(self, "copy"))

    def action_show_provenance(self) -> None:
        self.post_message(self.Action(self, "provenance"))

    def action_branch_reply(self) -> None:
        self.post_message(self.Action(self, "branch"))
