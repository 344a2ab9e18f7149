"""The "Save profile as" dialog: a name, checked by trying to save it; errors shown in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from leverchat.safetext import plain
from leverchat.ui.widgets.visible_editors import VisibleInput


class SaveAsScreen(ModalScreen[str | None]):
    """Returns the name saved under, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, suggested: str, attempt: Callable[[str], str | None]) -> None:
        super().__init__(classes="dialog-screen")
        self._suggested = suggested
        self._attempt = attempt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="save-as-dialog"):
            yield Static(Content.styled("Save profile as", "bold"), classes="dialog-title")
            yield Static("A new profile with the current system prompt and levers.")
            yield VisibleInput(self._suggested, id="save-as-name", placeholder="Profile name")
            yield Static("", id="save-as-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", id="save-as-save", variant="primary", compact=True)
                yield Button("Cancel", id="save-as-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#save-as-error").display = False
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#save-as-save")
    def _save(self) -> None:
        name = self.query_one(Input).value
        problem = self._attempt(name)
        if problem is None:
            self.dismiss(name)
            return
        error = self.query_one("#save-as-error", Static)
        error.update(plain(problem))
        error.display = True

    @on(Button.Pressed, "#save-as-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
