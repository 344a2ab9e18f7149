"""One lever in the side panel: its value, allowed range, a one-line help, and in-place errors."""

from __future__ import annotations

import json
import math
import tomllib
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.events import Key
from textual.message import Message
from textual.widgets import Input, Static

from leverchat.lever_weights import WeightError, format_weights, parse_weights_text
from leverchat.levers import LeverError, LeverSpec, validate_lever
from leverchat.safetext import plain
from leverchat.ui.keymap import binding, current_keys
from leverchat.ui.lever_tokens import TOKEN_LEVERS, LeverTokensView
from leverchat.ui.widgets.visible_editors import VisibleInput

# Levers typed as text: no nudging, and "+" and "-" are characters.
TEXT_KINDS = ("strings", "text", "weights")


def format_lever_value(spec: LeverSpec, value: Any) -> str:
    """The text a lever value is shown and edited as."""
    if value is None:
        return ""
    if spec.kind == "strings":
        return json.dumps(list(value), ensure_ascii=False) if value else ""
    if spec.kind == "weights":
        return format_weights(value)
    if spec.kind == "float":
        return repr(round(float(value), 6))
    return str(value)


def parse_lever_text(spec: LeverSpec, text: str) -> Any:
    """The value the user typed, validated; raises LeverError naming the lever and the range."""
    stripped = text.strip()
    if spec.kind in ("text", "choice"):
        return validate_lever(spec.name, stripped)
    if spec.kind == "strings":
        return validate_lever(spec.name, _parse_strings(spec, stripped))
    if spec.kind == "weights":
        try:
            return validate_lever(spec.name, parse_weights_text(spec.name, stripped))
        except WeightError as error:
            raise LeverError(spec.name, str(error)) from None
    if spec.kind == "optional_int" and not stripped:
        return None
    number: Any
    try:
        number = int(stripped)
    except ValueError:
        try:
            number = float(stripped)
        except ValueError:
            number = stripped  # validate_lever explains what is wrong with it
    return validate_lever(spec.name, number)


def _parse_strings(spec: LeverSpec, text: str) -> Any:
    # A TOML/JSON list (`["\n\n", "User:"]`) keeps any character; otherwise comma separated.
    if not text:
        return []
    if text.startswith("["):
        try:
            return tomllib.loads("value = " + text)["value"]
        except tomllib.TOMLDecodeError:
            raise LeverError(
                spec.name,
                f'{spec.name} must be a list like ["User:", "###"] or words separated by commas',
            ) from None
    return [part.strip() for part in text.split(",") if part.strip()]


def nudged(spec: LeverSpec, value: Any, direction: int) -> Any:
    """``value`` moved one step up (+1) or down (-1), kept inside the allowed range."""
    if spec.kind == "choice":
        return spec.choices[(spec.choices.index(value) + direction) % len(spec.choices)]
    if spec.kind in TEXT_KINDS:
        return value
    # An unset seed starts from 0, not from its minimum (seeds may be negative).
    current = value if value is not None else max(spec.minimum or 0, 0)
    moved: float = current + direction * spec.step
    if spec.minimum is not None:
        moved = max(moved, spec.minimum)
    if spec.maximum is not None:
        moved = min(moved, spec.maximum)
    if spec.kind == "float":
        # Snap to the step grid so 0.7 + 0.05 reads 0.75, not 0.7500000000000001.
        return round(round(moved / spec.step) * spec.step, 6)
    return math.floor(moved)


class LeverInput(VisibleInput):
    """The text box of a lever: +/- and Up/Down nudge it by one step.

    Like a spreadsheet cell, the value shown is selected whenever it is the applied one (on
    entering the field, after Enter, a nudge or Escape): the first character typed replaces it,
    Backspace clears it, Left/Right/Home/End start editing it in place, and Escape puts back the
    applied value while an edit is unconfirmed.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # Not priority bindings, so they run in order after the digits typed before them.
        binding("lever.step_up", "nudge(1)", show=False),
        binding("lever.step_down", "nudge(-1)", show=False),
        binding("lever.minus", "nudge_minus", show=False),
    ]

    def __init__(self, spec: LeverSpec, value: str, *, id: str, classes: str) -> None:
        super().__init__(value, id=id, classes=classes, compact=True, select_on_focus=True)
        self.spec = spec

    def _minus_is_a_sign(self) -> bool:
        # "-" types a minus sign where a negative number can start; elsewhere it steps down.
        allows_negative = self.spec.minimum is not None and self.spec.minimum < 0
        return allows_negative and self.cursor_position == 0

    async def _on_key(self, event: Key) -> None:
        # Input would insert "+" and "-": when they are nudge keys, nudge here, in order with
        # the keys typed before them.
        keymap: dict[str, str] = getattr(self.app, "keymap", {})
        field = self.parent
        stop = event.key in current_keys(keymap, "stop")
        if stop and isinstance(field, LeverField) and field.restore():
            # An unconfirmed edit is undone; the next Escape goes on to the chat.
            event.prevent_default()
            event.stop()
            return
        direction = 0
        if self.spec.kind in TEXT_KINDS:
            pass  # stop strings, notes and boosts are text: "+" and "-" are characters there
        elif event.key in current_keys(keymap, "lever.step_up"):
            direction = 1
        elif event.key in current_keys(keymap, "lever.minus") and not self._minus_is_a_sign():
            direction = -1
        if direction:
            event.prevent_default()
            event.stop()
            self.action_nudge(direction)
            return
        await super()._on_key(event)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "nudge_minus":
            return not self._minus_is_a_sign()
        return True

    def action_nudge(self, direction: int) -> None:
        field = self.parent
        if isinstance(field, LeverField):
            field.action_nudge(direction)

    def action_nudge_minus(self) -> None:
        self.action_nudge(-1)


class LeverField(Vertical):
    """Edits one lever. A valid edit posts :class:`LeverField.Edited`; an invalid one is shown
    in place with its reason and never applied."""

    class Edited(Message):
        def __init__(self, field: LeverField, name: str, value: Any) -> None:
            super().__init__()
            self.field = field
            self.name = name
            self.value = value

    def __init__(self, spec: LeverSpec, value: Any) -> None:
        super().__init__(classes="lever-field", id=f"lever-{spec.name}")
        self.spec = spec
        self.value = value
        self._pending = value
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        spec = self.spec
        yield Static(
            Content.styled(spec.label, "bold") + Content.styled(f"  {spec.range_text()}", "dim"),
            classes="lever-label",
        )
        yield LeverInput(
            spec,
            format_lever_value(spec, self.value),
            id=f"lever-input-{spec.name}",
            classes="lever-input",
        )
        yield Static("", classes="lever-error")
        yield Static(plain(spec.help), classes="lever-help")
        if spec.name in TOKEN_LEVERS:  # what the phrases became in the tokenizer
            yield LeverTokensView(spec.name)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    def show_value(self, value: Any) -> None:
        """Show a value set from outside (profile switch, revert) without posting an edit."""
        self.value = value
        self._pending = value
        self._set_error(None)
        with self.input.prevent(Input.Changed):
            self.input.value = format_lever_value(self.spec, value)
        self.input.select_all()  # the applied value: typing replaces it
        self._tokens_stale()

    def restore(self) -> bool:
        """Put back the applied value over an unconfirmed edit; False when there is none."""
        if self.error is None and self.input.value == format_lever_value(self.spec, self.value):
            return False
        self.show_value(self.value)
        return True

    @on(Input.Changed)
    def _on_input_changed(self, event: Input.Changed) -> None:
        # Checked at every keystroke so a mistake shows at once, but applied only when the
        # user confirms (Enter, leaving the field, sending): typing "1.5" must not apply "1".
        event.stop()
        try:
            self._pending = parse_lever_text(self.spec, event.value)
        except LeverError as error:
            self._pending = self.value
            self._set_error(error.message)
            return
        self._set_error(None)

    @on(Input.Submitted)
    def _on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.commit()
        if self.error is None:
            self.show_value(self.value)  # show it as it is stored ("1" reads "1.0")

    @on(Input.Blurred)
    def _on_input_blurred(self, event: Input.Blurred) -> None:
        event.stop()
        self.commit()

    @property
    def pending(self) -> bool:
        """A valid typed value waits to be applied."""
        return self.error is None and self._pending != self.value

    def commit(self) -> bool:
        """Apply the typed value if it is valid and new (an invalid one never applies).
        Returns True when a new value was applied."""
        if not self.pending:
            return False
        self.value = self._pending
        self.post_message(self.Edited(self, self.spec.name, self.value))
        self._tokens_stale()
        return True

    def on_mount(self) -> None:
        if self.value:  # phrases from the profile: shown as tokens from the start
            self._tokens_stale()

    def _tokens_stale(self) -> None:
        if self.spec.name in TOKEN_LEVERS:
            self.post_message(LeverTokensView.Stale())

    def action_nudge(self, direction: int) -> None:
        if self.spec.kind in TEXT_KINDS:
            return
        # From what the box shows when it is valid (read now: its Changed message may still be
        # queued), else from the last applied value.
        try:
            base = parse_lever_text(self.spec, self.input.value)
        except LeverError:
            base = self.value
        new_value = nudged(self.spec, base, direction)
        self.input.value = format_lever_value(self.spec, new_value)
        self.input.select_all()  # applied at once: typing next replaces it
        self._pending = new_value
        self._set_error(None)
        self.commit()  # a nudge applies at once

    def _set_error(self, message: str | None) -> None:
        self.error = message
        error_label = self.query_one(".lever-error", Static)
        error_label.update(plain(message) if message else "")
        error_label.display = message is not None
        self.set_class(message is not None, "-invalid")
