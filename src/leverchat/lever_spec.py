"""What one lever is: its kind, range, neutral value and help line (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

LeverKind = Literal["float", "int", "optional_int", "strings", "choice", "text"]

# The longest text a "text" lever (the persona note) may hold.
MAX_TEXT_LEVER = 2000


@dataclass(frozen=True)
class LeverSpec:
    """What the UI and validation need to know about one lever."""

    name: str
    kind: LeverKind
    default: Any
    minimum: float | None
    maximum: float | None
    step: float
    neutral: Any
    help: str
    label: str
    # The side panel shows the common levers first and the rest under "More levers".
    more: bool = False
    choices: tuple[str, ...] = ()  # kind "choice": the allowed values
    # kind "text": the longest value (a schema or grammar is longer than a persona note).
    max_length: int = MAX_TEXT_LEVER

    def range_text(self) -> str:
        """The allowed range as a user reads it, e.g. ``0.0 to 2.0``."""
        if self.kind == "strings":
            return "a list of strings"
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "text":
            return f"a text of up to {self.max_length} characters"
        low = format_number(self.minimum) if self.minimum is not None else "-inf"
        high = format_number(self.maximum) if self.maximum is not None else "no limit"
        text = f"{low} to {high}"
        if self.kind == "optional_int":
            text += " (or unset for a random seed)"
        return text


def format_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
