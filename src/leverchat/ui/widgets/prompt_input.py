"""The multi-line prompt: Enter sends, Shift+Enter or Ctrl+J inserts a newline, Up recalls."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import BindingType
from textual.events import Key
from textual.message import Message

from leverchat.ui.keymap import binding, current_keys
from leverchat.ui.widgets.visible_editors import VisibleTextArea


class PromptInput(VisibleTextArea):
    """Where the user types. What they typed is never lost: it is only cleared once sent."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Not priority bindings: those run when the key reaches the app, before this widget
        # has inserted the keys typed just before (a fast "hi<Enter>" sent an empty prompt).
        binding("send", "submit"),
        binding("newline", "newline", show=False),
    ]

    class Submitted(Message):
        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptInput:
            return self.prompt

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            "",
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            highlight_cursor_line=False,
            placeholder="Ask something (Enter sends, Shift+Enter or Ctrl+J for a new line)",
        )
        self._sent: list[str] = []
        self._recall_index: int | None = None

    def on_mount(self) -> None:
        from leverchat.ui.hints import prompt_placeholder

        self.placeholder = prompt_placeholder(self.app)  # the keys the keymap gives now

    async def _on_key(self, event: Key) -> None:
        # TextArea inserts a newline on Enter. The key that sends (Enter unless the keymap says
        # otherwise) is handled here, in order with the keys typed before it.
        keymap: dict[str, str] = getattr(self.app, "keymap", {})
        if event.key in current_keys(keymap, "send"):
            event.prevent_default()
            event.stop()
            self.action_submit()
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        self._sent.append(text)
        self._recall_index = None
        self.post_message(self.Submitted(self, text))

    def action_newline(self) -> None:
        start, end = self.selection
        self.replace("\n", start, end, maintain_selection_offset=False)

    def action_cursor_up(self, select: bool = False) -> None:
        # Up in an empty prompt (or while browsing recalled prompts) walks back through history.
        browsing = self._recall_index is not None and self.text == self._sent[self._recall_index]
        if not select and self._sent and (not self.text or browsing):
            index = len(self._sent) - 1 if self._recall_index is None else self._recall_index - 1
            if index >= 0:
                self._recall_index = index
                self.load_text(self._sent[index])
                self.move_cursor(self.document.end)
            return
        super().action_cursor_up(select)

    def remember(self, text: str) -> None:
        """Add a prompt to the recall history without sending it (an edited message)."""
        if text.strip() and (not self._sent or self._sent[-1] != text):
            self._sent.append(text)

    def clear_prompt(self) -> None:
        self.load_text("")
        self._recall_index = None
