"""The "Branch at…" dialog: where to cut a reply, and what to write there (keyboard only).

The reply's text is shown read-only with a cursor: the arrow keys (Home/End, Ctrl+arrows)
put it where the reply should be cut; Tab or Enter moves to the line for the new text; Enter there
branches (the reply is kept up to the cursor, then the new text, then the model continues);
Escape cancels. The text is shown through safetext's one-cell glyphs, so a cursor index in
what is drawn is the same index in the reply.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from leverchat.safetext import visible_glyphs
from leverchat.ui.widgets.visible_editors import VisibleInput, VisibleTextArea


class BranchAtScreen(ModalScreen[tuple[int, str] | None]):
    """Returns (character offset to keep, text to put there), or None when cancelled."""

    DEFAULT_CSS = """
    #branch-at-dialog {
        width: 80;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        padding: 0 1;
    }
    #branch-at-dialog .dialog-title {
        margin: 0;
    }
    #branch-at-text {
        height: 10;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=False),
        # In the (read-only) reply, Enter means "cut here": on to the new text.
        Binding("enter", "to_new_text", "Cut here", show=False),
    ]

    def __init__(self, text: str) -> None:
        super().__init__(classes="dialog-screen")
        self._text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="branch-at-dialog"):
            yield Static(Content.styled("Branch the reply at…", "bold"), classes="dialog-title")
            yield Static("Move the cursor to where the reply should be cut, then Enter.")
            yield VisibleTextArea(
                visible_glyphs(self._text),
                read_only=True,
                soft_wrap=True,
                show_line_numbers=False,
                id="branch-at-text",
            )
            yield VisibleInput(
                id="branch-at-new", placeholder="Text to put there (may be empty), then Enter"
            )
            yield Static(
                "The model continues from there with the current levers, as a new version.",
                classes="dialog-detail",
            )

    def on_mount(self) -> None:
        area = self.query_one(VisibleTextArea)
        area.focus()
        area.move_cursor(area.document.end)

    @property
    def cut_at(self) -> int:
        """The cursor's place in the reply, in characters (each line ends with one newline
        character in the document; the reply's own newlines are glyphs on one line)."""
        area = self.query_one(VisibleTextArea)
        row, column = area.cursor_location
        return sum(len(line) + 1 for line in area.document.lines[:row]) + column

    @on(Input.Submitted, "#branch-at-new")
    def _branch(self, event: Input.Submitted) -> None:
        self.dismiss((self.cut_at, event.value))

    def action_to_new_text(self) -> None:
        self.query_one("#branch-at-new", Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
