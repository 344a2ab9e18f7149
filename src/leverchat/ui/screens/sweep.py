"""The lever sweep (F9): one prompt, one lever, several values, the same seed in every cell.

The user picks a lever (a select list) and its values (prefilled with a range where the lever's
effect shows); Enter in the values box runs the sweep. The cells fill one after the other (one
engine thread: a CPU writes one reply at a time), each labelled with its value and seed. Two
columns at 100 terminal columns or more, one (stacked, scrolling) below. Enter on a cell copies
its reply; Escape stops a running sweep, or closes the screen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Select, Static

from leverchat.engine.types import (
    ChatEngine,
    ChatMessage,
    FixedLevers,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
)
from leverchat.levers import SPECS_BY_NAME, Levers, random_seed
from leverchat.safetext import plain, single_line, visible
from leverchat.sweep import (
    SweepCell,
    SweepError,
    cell_levers,
    format_value,
    parse_values,
    resolve_lever,
    suggested_values,
    sweepable_levers,
)
from leverchat.ui.keymap import binding
from leverchat.ui.replies import ChunkBuffer
from leverchat.ui.widgets.visible_editors import VisibleInput

# At this width or more the cells stand two side by side.
TWO_COLUMNS_AT = 100
# How often a streaming cell shows its new text.
FLUSH_S = 0.1


@dataclass(frozen=True)
class SweepSetup:
    """What a sweep answers and with what: taken from the chat when the screen opens."""

    messages: tuple[ChatMessage, ...]  # the history and the prompt, system prompt first
    prompt: str
    levers: Levers  # the current levers; the swept one is replaced in each cell
    prompt_format: FormatChoice = "auto"
    lever: str = "temperature"


class SweepCellView(Vertical, can_focus=True):
    """One cell: its value and seed, the reply as it streams, then what ended it."""

    BINDINGS: ClassVar[list[BindingType]] = [binding("sweep.keep", "keep")]

    class Keep(Message):
        def __init__(self, cell: SweepCellView) -> None:
            super().__init__()
            self.cell = cell

    def __init__(self, value: Any, label: str) -> None:
        super().__init__(classes="sweep-cell")
        self.value = value
        self.label = label
        self.text = ""
        self.result: SweepCell | None = None

    def compose(self) -> ComposeResult:
        yield Static(Content.styled(self.label, "bold"), classes="sweep-cell-label")
        yield Static(plain("waiting…"), classes="sweep-cell-text")
        yield Static("", classes="sweep-cell-status")

    def append(self, text: str) -> None:
        self.text += text
        self.query_one(".sweep-cell-text", Static).update(plain(self.text))

    def finish(self, cell: SweepCell, status: str) -> None:
        self.result = cell
        self.text = cell.text
        self.query_one(".sweep-cell-text", Static).update(plain(self.text or "(no text)"))
        self.query_one(".sweep-cell-status", Static).update(plain(status))

    def skip(self, why: str) -> None:
        self.query_one(".sweep-cell-text", Static).update(plain(why))

    def action_keep(self) -> None:
        self.post_message(self.Keep(self))


class SweepScreen(Screen[None]):
    DEFAULT_CSS = """
    SweepScreen { layout: vertical; }
    SweepScreen #sweep-head { height: auto; padding: 0 1; }
    SweepScreen #sweep-controls { height: auto; }
    SweepScreen #sweep-lever { width: 30; }
    SweepScreen #sweep-values { width: 1fr; }
    SweepScreen #sweep-prompt { height: auto; max-height: 3; color: $text-muted; }
    SweepScreen #sweep-scroll { height: 1fr; }
    SweepScreen #sweep-grid { layout: grid; grid-size: 1; grid-gutter: 0 1;
        grid-rows: auto; height: auto; }
    SweepScreen #sweep-grid.-two { grid-size: 2; }
    SweepScreen .sweep-cell { height: auto; border: round $secondary; padding: 0 1; }
    SweepScreen .sweep-cell:focus { border: round $accent; }
    SweepScreen .sweep-cell-status { color: $text-muted; height: auto; }
    SweepScreen .sweep-cell-text { height: auto; }
    SweepScreen #sweep-hint { height: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_close", "Stop / close"),
    ]

    def __init__(self, engine: ChatEngine, setup: SweepSetup) -> None:
        super().__init__(id="sweep-screen")
        self.engine = engine
        self.setup = setup
        self.cells: list[SweepCellView] = []
        self.running = False
        self._request: GenerationRequest | None = None
        self._stopped = False

    def compose(self) -> ComposeResult:
        options = [(SPECS_BY_NAME[name].label, name) for name in sweepable_levers()]
        with Vertical(id="sweep-head"):
            yield Static(Content.styled("Lever sweep: the same seed in every cell", "bold"))
            yield Static(plain("Prompt: " + single_line(self.setup.prompt, 300)), id="sweep-prompt")
            with Horizontal(id="sweep-controls"):
                yield Select(options, value=self.setup.lever, allow_blank=False, id="sweep-lever")
                yield VisibleInput(suggested_values(self.setup.lever), id="sweep-values")
        with VerticalScroll(id="sweep-scroll"):
            yield Vertical(id="sweep-grid")
        yield Static(
            plain("Enter: run · Tab: cells · Enter on a cell: copy it · Esc: stop, then close"),
            id="sweep-hint",
        )

    def on_mount(self) -> None:
        self._columns(self.app.size.width)
        self.query_one("#sweep-values", Input).focus()

    def on_resize(self, event: Resize) -> None:
        self._columns(event.size.width)

    def _columns(self, width: int) -> None:
        # A resize can arrive before the screen has composed its widgets.
        for grid in self.query("#sweep-grid"):
            grid.set_class(width >= TWO_COLUMNS_AT, "-two")

    @on(Select.Changed, "#sweep-lever")
    def _lever_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#sweep-values", Input).value = suggested_values(event.value)

    @on(Input.Submitted, "#sweep-values")
    def _values_submitted(self, event: Input.Submitted) -> None:
        self.start(str(self.query_one("#sweep-lever", Select).value), event.value)

    def start(self, lever: str, values_text: str) -> bool:
        """Run a sweep of ``lever`` over ``values_text``; False (and a notice) if refused."""
        if self.running:
            self.notify("A sweep is running: Esc stops it first.", severity="warning")
            return False
        try:
            spec = resolve_lever(lever)
            values = parse_values(spec, values_text)
        except SweepError as error:
            self.notify(visible(str(error)), severity="error", markup=False, timeout=8)
            return False
        if not values:
            self.notify("Give at least one value.", severity="warning")
            return False
        self.running = True
        self._stopped = False
        self._sweep(spec.name, values)
        return True

    @work(exclusive=True, group="sweep")
    async def _sweep(self, lever: str, values: Sequence[Any]) -> None:
        base = self.setup.levers
        seed = base.seed if base.seed is not None else random_seed()
        grid = self.query_one("#sweep-grid")
        await grid.remove_children()
        self.cells = [
            SweepCellView(
                value,
                # A persona note is the user's text: one line, control characters visible.
                f"{lever} = {single_line(format_value(value), 60)} · seed "
                f"{value if lever == 'seed' else seed}",
            )
            for value in values
        ]
        await grid.mount_all(self.cells)
        try:
            for cell in self.cells:
                if self._stopped:
                    cell.skip("(not run: the sweep was stopped)")
                    continue
                await self._run_cell(cell, cell_levers(base, lever, cell.value, seed))
        finally:
            self.running = False
            self._request = None

    async def _run_cell(self, cell: SweepCellView, levers: Levers) -> None:
        request = GenerationRequest(
            self.setup.messages, FixedLevers(levers), prompt_format=self.setup.prompt_format
        )
        self._request = request
        buffer = ChunkBuffer()
        cell.append("")
        future = self.engine.generate(request, buffer.append)
        while not future.done():
            await asyncio.sleep(FLUSH_S)
            text = buffer.drain()
            if text:
                cell.append(text)
        try:
            result: GenerationResult = future.result()
        except Exception as error:  # the engine failed outright: the sweep stays usable
            cell.append(buffer.drain())  # the text written before it failed is kept
            cell.finish(
                SweepCell(cell.value, cell.text, "error", 0, 0.0, levers, 0, str(error)),
                f"failed: {error}",
            )
            self._stopped = True
            return
        stats = result.stats
        status = (
            f"{stats.new_tokens} tokens · {stats.tokens_per_s:.1f} tok/s · "
            f"{result.stop_reason.description}"
        )
        if result.error:
            status += f" · {result.error}"
        cell.finish(
            SweepCell(
                cell.value,
                result.text,
                result.stop_reason.value,
                stats.new_tokens,
                stats.tokens_per_s,
                levers,
                result.seed,
                result.error,
            ),
            status,
        )

    @on(SweepCellView.Keep)
    def _keep(self, message: SweepCellView.Keep) -> None:
        cell = message.cell
        if cell.result is None:
            self.notify("This cell has no reply yet.")
            return
        # App.copy_to_clipboard writes OSC 52 (base64: nothing in the text can escape it).
        self.app.copy_to_clipboard(cell.result.text)
        self.notify(
            f"Copied the reply of {cell.label} ({len(cell.result.text)} characters).",
            markup=False,
        )

    def action_stop_or_close(self) -> None:
        if self.running:
            self._stopped = True
            if self._request is not None:
                self._request.cancel.set()  # the engine stops within one token
            self.notify("Sweep stopped.", timeout=2)
            return
        self.dismiss(None)

    def on_unmount(self) -> None:
        self._stopped = True
        if self._request is not None:
            self._request.cancel.set()
