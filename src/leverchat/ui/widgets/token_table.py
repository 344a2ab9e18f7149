"""The token inspector's panel under the chat: the tint legend, and in cursor mode the table of
the token under the cursor with its alternatives.

Keyboard only: left/right (home/end) move the cursor token by token, up/down pick an
alternative, Enter branches the reply there with it, ``e`` types one's own text instead,
Escape leaves. The panel posts :class:`leverchat.ui.branch_request.BranchRequested`; what a
branch does is the chat screen's business. Its owner (the screen's inspector) is told when the
cursor moves, when cursor mode ends and when the theme changes, to tint the reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from rich.console import JustifyMethod
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Input, Static

from leverchat.engine.inspection import TokenInspection
from leverchat.safetext import plain
from leverchat.ui import token_rows
from leverchat.ui.branch_request import BranchRequested
from leverchat.ui.keymap import binding
from leverchat.ui.widgets.visible_editors import VisibleInput


class PanelOwner(Protocol):
    def cursor_moved(self, reply_id: str, index: int) -> None: ...

    def cursor_left(self, reply_id: str) -> None: ...

    def theme_changed(self) -> None: ...


class TokenTable(DataTable[Text]):
    """The alternatives of one token; its keys drive the whole cursor mode."""

    BINDINGS: ClassVar[list[BindingType]] = [
        binding("tokens.previous", "step(-1)"),
        binding("tokens.next", "step(1)"),
        binding("tokens.first", "edge(-1)", show=False),
        binding("tokens.last", "edge(1)", show=False),
        binding("tokens.branch", "branch"),
        binding("tokens.own_text", "own_text"),
        binding("tokens.leave", "leave"),
    ]

    def __init__(self) -> None:
        super().__init__(id="token-table", cursor_type="row", zebra_stripes=False)

    def _panel(self) -> InspectorPanel:
        panel = self.parent
        assert isinstance(panel, InspectorPanel)
        return panel

    def action_step(self, step: int) -> None:
        self._panel().step(step)

    def action_edge(self, edge: int) -> None:
        self._panel().edge(edge)

    def action_branch(self) -> None:
        self._panel().branch_with_row(self.cursor_row)

    def action_own_text(self) -> None:
        self._panel().ask_own_text()

    def action_leave(self) -> None:
        self._panel().leave()


class OwnTextInput(VisibleInput):
    """One line of the user's own text to put in place of the token (Escape: back)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back to the table", show=True),
    ]

    def action_cancel(self) -> None:
        panel = self.parent
        if isinstance(panel, InspectorPanel):
            panel.close_own_text()


class InspectorPanel(Vertical):
    """Below the chat while the inspector is on: the legend; the table in cursor mode."""

    DEFAULT_CSS = """
    InspectorPanel {
        height: auto;
        display: none;
        padding: 0 1;
        background: $panel;
    }
    InspectorPanel.-on {
        display: block;
    }
    InspectorPanel #inspector-legend {
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        color: $text-muted;
    }
    InspectorPanel #inspector-header, InspectorPanel #token-table, InspectorPanel #own-text {
        display: none;
    }
    InspectorPanel.-cursor #inspector-header, InspectorPanel.-cursor #token-table {
        display: block;
    }
    InspectorPanel.-typing #own-text {
        display: block;
    }
    InspectorPanel #inspector-header {
        height: auto;
        max-height: 3;
    }
    InspectorPanel #token-table {
        height: 7;
        background: $panel;
        scrollbar-size-vertical: 1;
    }
    InspectorPanel #own-text {
        height: 3;
    }
    """

    def __init__(self, owner: PanelOwner) -> None:
        super().__init__(id="inspector")
        self._owner = owner
        self.reply_id: str | None = None
        self.records: tuple[TokenInspection, ...] = ()
        self.index = 0
        self._rows: list[token_rows.TokenRow] = []
        self._remote_columns: bool | None = None  # the table's columns: a server's or ours

    def compose(self) -> ComposeResult:
        yield Static(id="inspector-legend")
        yield Static(id="inspector-header")
        yield TokenTable()
        yield OwnTextInput(
            placeholder="Your own text in place of this token; Enter branches", id="own-text"
        )

    def on_mount(self) -> None:
        # The signal, not a watch of App.theme: it comes after the new theme's variables
        # are in place (a watch ran before them and tinted with the old theme's colours).
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self._owner.theme_changed()

    @property
    def table(self) -> TokenTable:
        return self.query_one(TokenTable)

    @property
    def own_text(self) -> OwnTextInput:
        return self.query_one(OwnTextInput)

    @property
    def in_cursor_mode(self) -> bool:
        return self.reply_id is not None

    def show_legend(self, legend: Content) -> None:
        self.query_one("#inspector-legend", Static).update(legend)

    def set_on(self, on: bool) -> None:
        self.set_class(on, "-on")

    # -- cursor mode ---------------------------------------------------------------------

    def open(self, reply_id: str, records: Sequence[TokenInspection], index: int = 0) -> None:
        self.reply_id = reply_id
        self.records = tuple(records)
        self.add_class("-cursor")
        self.remove_class("-typing")
        self._show(max(0, min(index, len(self.records) - 1)))
        self.table.focus()

    def close(self) -> None:
        """Leave cursor mode without telling the owner (the reply went away)."""
        self.reply_id = None
        self.records = ()
        self.remove_class("-cursor", "-typing")

    def leave(self) -> None:
        reply_id = self.reply_id
        self.close()
        if reply_id is not None:
            self._owner.cursor_left(reply_id)

    def step(self, step: int) -> None:
        self._show(self.index + step)

    def edge(self, edge: int) -> None:
        self._show(0 if edge < 0 else len(self.records) - 1)

    def _show(self, index: int) -> None:
        if not self.records or self.reply_id is None:
            return
        index = max(0, min(index, len(self.records) - 1))
        self.index = index
        record = self.records[index]
        self.query_one("#inspector-header", Static).update(
            plain(token_rows.header(record, index, len(self.records)))
        )
        self._fill_table(record)
        self._owner.cursor_moved(self.reply_id, index)

    def _fill_table(self, record: TokenInspection) -> None:
        table = self.table
        remote = token_rows.is_remote(record)
        if remote is self._remote_columns:
            table.clear()
        else:
            # Fixed widths: auto-sized columns re-measured on every move left rows drawn at
            # the previous token's widths.
            table.clear(columns=True)
            self._remote_columns = remote
            columns: tuple[tuple[str, int, JustifyMethod], ...] = (
                ("", 1, "left"),
                ("#", 3, "right"),
                ("token", token_rows.TOKEN_WIDTH, "left"),
                ("server" if remote else "raw", 6, "right"),
                ("after", 6, "right"),
                ("removed by", 18, "left"),
            )
            for label, width, justify in columns:
                table.add_column(Text(label, justify=justify), width=width)
        self._rows = token_rows.rows(record)
        chosen_row = 0
        for number, row in enumerate(self._rows):
            style = "bold" if row.chosen else ""
            table.add_row(
                Text("▶" if row.chosen else " ", style=style),
                Text("" if row.rank is None else str(row.rank), style=style, justify="right"),
                Text(row.shown_text, style=style),
                Text(
                    token_rows.percent(row.reported if remote else row.raw),
                    style=style,
                    justify="right",
                ),
                Text(token_rows.percent(row.after), style=style, justify="right"),
                Text(row.lever, style=style),
            )
            if row.chosen:
                chosen_row = number
        table.move_cursor(row=chosen_row, animate=False)

    @property
    def rows(self) -> list[token_rows.TokenRow]:
        return list(self._rows)

    # -- branching -----------------------------------------------------------------------

    def branch_with_row(self, row_index: int) -> None:
        if self.reply_id is None or not 0 <= row_index < len(self._rows):
            return
        row = self._rows[row_index]
        if row.chosen:
            self.app.notify(
                "That is the token the reply already has: pick another one (up/down), "
                "or press e to type your own text.",
                markup=False,
            )
            return
        self._post_branch(row.text, row.token_id)

    def ask_own_text(self) -> None:
        if self.reply_id is None:
            return
        self.add_class("-typing")
        self.own_text.value = ""
        self.own_text.focus()

    def close_own_text(self) -> None:
        self.remove_class("-typing")
        self.table.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        if not message.value:
            self.app.notify("Type the text to put in place of this token first.", markup=False)
            return
        self.remove_class("-typing")
        self._post_branch(message.value, None)

    def _post_branch(self, text: str, token_id: int | None) -> None:
        reply_id = self.reply_id
        if reply_id is None:
            return
        index = self.index
        self.post_message(BranchRequested(reply_id, index, text, token_id))
        self.leave()
