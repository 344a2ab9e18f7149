"""Asked before a profile switch, opening a saved chat or quit would drop unsaved lever and
system prompt edits.

Keyboard first: S saves, D discards, Escape cancels; Cancel has the focus, so Enter alone
changes nothing. The profile names are untrusted: every text here is literal ``Content``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from leverchat.safetext import single_line

Choice = Literal["save", "discard"]


class UnsavedEditsScreen(ModalScreen[Choice | None]):
    """Returns "save", "discard", or None (cancel: stay, nothing changes)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "choose('save')", "Save", show=False),
        Binding("d", "choose('discard')", "Discard", show=False),
        Binding("escape", "choose(None)", "Cancel", show=False),
    ]

    def __init__(self, profile_name: str, edits: str, leaving: str) -> None:
        """``edits``: what is unsaved ("the system prompt and temperature"); ``leaving``: what
        the user asked for ("switch to profile pirate", "quit")."""
        super().__init__(classes="dialog-screen")
        self._profile_name = profile_name
        self._edits = edits
        self._leaving = leaving

    def compose(self) -> ComposeResult:
        name = single_line(self._profile_name, 40)
        with Vertical(classes="dialog", id="unsaved-dialog"):
            yield Static(
                Content.styled("Unsaved edits to profile ", "bold")
                + Content.styled(name, "bold $accent"),
                classes="dialog-title",
            )
            yield Static(
                Content(f"Your edits to {self._edits} are not saved. Save them to ")
                + Content.styled(name, "bold")
                + Content(f" before you {self._leaving}?")
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save  S", id="unsaved-save", variant="primary", compact=True)
                yield Button("Discard  D", id="unsaved-discard", variant="error", compact=True)
                yield Button("Cancel  Esc", id="unsaved-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#unsaved-cancel").focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choices: dict[str, Choice] = {"unsaved-save": "save", "unsaved-discard": "discard"}
        self.dismiss(choices.get(event.button.id or ""))

    def action_choose(self, choice: Choice | None) -> None:
        self.dismiss(choice)
