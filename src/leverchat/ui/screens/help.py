"""F1: every key binding with its id (for the keymap) and what it does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from leverchat import paths
from leverchat.safetext import plain
from leverchat.ui.keymap import FIXED_KEYS, KEYS, key_list


def help_rows(keymap: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(keys, binding id, what it does) for every binding, then the fixed keys."""
    rows = [
        (",".join(key_list(keymap, spec.id)), spec.id, f"{spec.description} ({spec.where})")
        for spec in KEYS
    ]
    rows.append(("", "", ""))
    rows.extend((keys, "", description) for keys, description in FIXED_KEYS)
    return rows


def help_table(keymap: Mapping[str, str]) -> Table:
    """The keys as a table: a long description wraps inside its own column (hanging indent),
    never back under the keys."""
    table = Table(box=None, expand=True, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("Keys", no_wrap=True, overflow="fold")
    table.add_column("Binding id", no_wrap=True)
    table.add_column("What it does", ratio=1, overflow="fold")
    for keys, binding_id, description in help_rows(keymap):
        # Text, not markup: the keys come from the user's config file.
        table.add_row(Text(keys), Text(binding_id), Text(description))
    return table


def free_example_key(keymap: Mapping[str, str]) -> str:
    """A function key no binding uses, for the rebinding example."""
    used = {key for spec in KEYS for key in key_list(keymap, spec.id)}
    return next((f"f{n}" for n in range(6, 13) if f"f{n}" not in used), "ctrl+g")


class HelpScreen(ModalScreen[None]):
    # The help key itself (F1 unless rebound) closes it too: the app's help binding toggles.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close", show=False)]

    def __init__(self, keymap: Mapping[str, str]) -> None:
        super().__init__(classes="dialog-screen")
        self._keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Static(Content.styled("leverchat keys", "bold"), classes="dialog-title")
            yield Static(help_table(self._keymap), id="help-keys")
            example = free_example_key(self._keymap)
            yield Static(
                plain(
                    "Rebind any of them in the [keymap] table of "
                    f'{paths.config_file()}, e.g. toggle_panel = "{example}". '
                    "Escape closes this help."
                ),
                classes="dialog-detail",
            )

    def action_close(self) -> None:
        self.dismiss(None)
