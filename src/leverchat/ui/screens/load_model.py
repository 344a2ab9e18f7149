"""Asks for another model to load (a folder, a .gguf file or a Hugging Face id)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from leverchat.ui.widgets.visible_editors import VisibleInput


class LoadModelScreen(ModalScreen[str | None]):
    """Returns what the user typed ("" for the bundled model), or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, current: str) -> None:
        super().__init__(classes="dialog-screen")
        self._current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="load-model-dialog"):
            yield Static(Content.styled("Load a model", "bold"), classes="dialog-title")
            yield Static(
                "A model folder, a .gguf file or a Hugging Face id; empty for the bundled model. "
                "Enter loads it, Escape cancels."
            )
            yield VisibleInput(
                self._current, id="load-model-source", placeholder="path or model id"
            )

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
