"""The versions of one reply as a tree (F7): one line each, branches indented under their source.

Up/Down choose, Enter opens the chosen version (the chat continues from it), Escape closes.
Every line is plain Content (a reply's words are untrusted), cut to fit 80 columns.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from leverchat.safetext import plain
from leverchat.version_tree import INDENT, TreeLine


class VersionTreeScreen(ModalScreen[str | None]):
    """Returns the id of the version to open, or None (closed)."""

    DEFAULT_CSS = """
    #version-tree-dialog {
        width: 80;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        padding: 0 1;
    }
    #version-tree-dialog .dialog-title {
        margin: 0;
    }
    #version-tree-options {
        height: auto;
        max-height: 18;
        border: none;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
    ]

    def __init__(self, lines: tuple[TreeLine, ...], current_id: str) -> None:
        super().__init__(classes="dialog-screen")
        self._lines = lines
        self._current_id = current_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="version-tree-dialog"):
            yield Static(
                Content.styled(f"Versions of this reply ({len(self._lines)})", "bold"),
                classes="dialog-title",
            )
            options = [Option(self._prompt(line), id=line.message_id) for line in self._lines]
            yield OptionList(*options, id="version-tree-options")
            yield Static(
                "Up/Down choose · Enter opens it (the chat continues from it) · Esc closes",
                classes="dialog-detail",
            )

    def _prompt(self, line: TreeLine) -> Content:
        marker = "● " if line.message_id == self._current_id else "  "
        branch = " " * (INDENT * (line.depth - 1)) + "└ " if line.depth else ""
        # The label holds a reply's words: plain Content, never markup.
        return Content(marker + branch) + plain(line.label)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        for index, line in enumerate(self._lines):
            if line.message_id == self._current_id:
                options.highlighted = index
                break

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)
