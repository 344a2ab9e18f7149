"""Asked when saving a profile whose file changed on disk since it was loaded."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from leverchat.safetext import plain, single_line


class ConflictScreen(ModalScreen[str | None]):
    """Returns "reload", "save_as", or None (keep editing, nothing saved)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, profile_name: str, detail: str) -> None:
        super().__init__(classes="dialog-screen")
        self._profile_name = profile_name
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="conflict-dialog"):
            yield Static(
                Content.styled("The profile changed on disk", "bold"), classes="dialog-title"
            )
            yield Static(
                plain(
                    f"Another program changed profile '{single_line(self._profile_name, 40)}' "
                    "since it was loaded. Saving now would overwrite that change, so nothing "
                    "was saved."
                )
            )
            yield Static(plain(self._detail), classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Reload from disk", id="conflict-reload", compact=True)
                yield Button("Save as new", id="conflict-save-as", variant="primary", compact=True)
                yield Button("Cancel", id="conflict-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#conflict-save-as").focus()

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        choices = {"conflict-reload": "reload", "conflict-save-as": "save_as"}
        self.dismiss(choices.get(event.button.id or ""))

    def action_cancel(self) -> None:
        self.dismiss(None)
