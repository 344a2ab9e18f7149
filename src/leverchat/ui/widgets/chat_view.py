"""The scrolling transcript. It follows a streaming reply unless the user scrolled up."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from leverchat.ui import hints
from leverchat.ui.widgets.messages_view import ReplyView, UserMessage


class ChatView(VerticalScroll):
    """Holds the transcript widgets in order. Anchored to the bottom: new text keeps the end in
    view until the user scrolls up, and scrolling back to the end follows again."""

    def compose(self) -> ComposeResult:
        yield self._hint()

    def _hint(self) -> Static:
        # Names the keys the user's keymap gives them now.
        return Static(Content.styled(hints.welcome(self.app), "dim italic"), id="chat-hint")

    def on_mount(self) -> None:
        self.anchor()

    async def add(self, *widgets: Widget) -> None:
        for hint in self.query("#chat-hint"):
            await hint.remove()
        await self.mount_all(widgets)

    async def clear(self) -> None:
        """Empty the transcript (a new chat) and show the hint again."""
        await self.remove_children()
        await self.mount(self._hint())

    def follow(self) -> None:
        """Jump to the end and follow it again (the user just sent something)."""
        self.anchor()
        self.scroll_end(animate=False, immediate=False)

    def reply(self, reply_id: str) -> ReplyView | None:
        for view in self.query(ReplyView):
            if view.reply_id == reply_id:
                return view
        return None

    async def remove_from(self, widget: Widget) -> None:
        """Remove ``widget`` and everything after it (regenerate, edit the last message)."""
        children = list(self.children)
        if widget in children:
            await self.remove_children(children[children.index(widget) :])
        if not self.children:
            await self.mount(self._hint())

    def user_message(self, message_id: str) -> UserMessage | None:
        for view in self.query(UserMessage):
            if view.message_id == message_id:
                return view
        return None
