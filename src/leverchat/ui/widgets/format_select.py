"""The panel's prompt format choice: the built-in formats, plus the profile's own ("custom").

The chat's ProfileSession (on the app) holds the format; the chat screen reads it from there
for every reply, so a choice here applies from the next reply and is saved with the profile.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.widgets import Select

from leverchat.engine.custom_format import CustomFormat
from leverchat.safetext import single_line

# Short enough for one line of the panel at 80 columns.
LABELS = {
    "auto": "auto (model's template)",
    "chat_template": "chat_template",
    "instruction": "instruction (###)",
}


def _session(widget: Any) -> Any:
    return getattr(widget.app, "profiles", None)


class FormatSelect(Select[str]):
    def __init__(self) -> None:
        super().__init__(
            [(Text(LABELS["auto"]), "auto")], id="format-select", compact=True, allow_blank=False
        )

    def on_mount(self) -> None:
        self.show_session()

    def show_session(self) -> None:
        """Show the formats of the chat's current profile and the one it uses."""
        session = _session(self)
        if session is None:
            return
        options: list[tuple[Text, str]] = []
        for choice in session.format_choices():
            if choice == "custom" and isinstance(session.custom_format, CustomFormat):
                label = single_line(session.custom_format.describe(), 40)
            else:
                label = LABELS.get(choice, choice)
            options.append((Text(label), choice))  # Text: a format's name is shown literally
        with self.prevent(Select.Changed):
            self.set_options(options)
            self.value = session.chosen_format()

    @on(Select.Changed)
    def _chosen(self, event: Select.Changed) -> None:
        event.stop()
        session = _session(self)
        if session is not None and isinstance(event.value, str):
            session.choose_format(event.value)
