"""F1: every key binding with its id (for the keymap) and what it does."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from leverchat import paths
from leverchat.safetext import plain
from leverchat.ui.keymap import FIXED_KEYS, KEYS


def help_lines(keymap: dict[str, str]) -> list[str]:
    lines = [f"{'Keys':<22} {'Binding id':<18} What it does"]
    for spec in KEYS:
        keys = keymap.get(spec.id, spec.keys)
        lines.append(f"{keys:<22} {spec.id:<18} {spec.description} ({spec.where})")
    lines.append("")
    for keys, description in FIXED_KEYS:
        lines.append(f"{keys:<22} {'':<18} {description}")
    return lines


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "close", "Close", show=False)]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__(classes="dialog-screen")
        self._keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Static(Content.styled("leverchat keys", "bold"), classes="dialog-title")
            yield Static(plain("\n".join(help_lines(self._keymap))), id="help-keys")
            yield Static(
                plain(
                    "Rebind any of them in the [keymap] table of "
                    f'{paths.config_file()}, e.g. toggle_panel = "f3". '
                    "Escape closes this help."
                ),
                classes="dialog-detail",
            )

    def action_close(self) -> None:
        self.dismiss(None)
