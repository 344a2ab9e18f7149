"""What one lever is: its kind, range, neutral value and help line (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# "weights": text -> number pairs (the boost lever: a phrase and its logit bias).
LeverKind = Literal["float", "int", "optional_int", "strings", "choice", "text", "weights"]

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
        if self.kind == "weights":
            low, high = format_number(self.minimum or 0), format_number(self.maximum or 0)
            return f"phrase=weight pairs, each weight {low} to {high}"
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


# Compact constructors for the lever tables (levers.py, sampler_specs.py). Each fills in what
# its kind implies (no range for a list or a text, neutral = default unless said), so a
# declaration is the lever's name, label, numbers and help; ``LeverSpec(...)`` itself still
# works in the same tables.

_SAME: Any = object()


def float_lever(
    name: str,
    label: str,
    default: float,
    minimum: float,
    maximum: float,
    step: float,
    *,
    help: str,
    neutral: Any = _SAME,
    more: bool = False,
) -> LeverSpec:
    """A float lever from ``minimum`` to ``maximum``; ``neutral`` defaults to ``default``."""
    return _number("float", name, label, default, minimum, maximum, step, help, neutral, more)


def int_lever(
    name: str,
    label: str,
    default: int | None,
    minimum: int,
    maximum: int,
    step: int,
    *,
    help: str,
    neutral: Any = _SAME,
    more: bool = False,
    optional: bool = False,
) -> LeverSpec:
    """A whole-number lever; ``optional``: it may also be unset (None), like the seed."""
    kind: LeverKind = "optional_int" if optional else "int"
    return _number(kind, name, label, default, minimum, maximum, step, help, neutral, more)


def strings_lever(
    name: str, label: str, *, help: str, default: tuple[str, ...] = (), more: bool = False
) -> LeverSpec:
    """A list of strings (stop strings, banned phrases); neutral is the default."""
    return LeverSpec(name, "strings", default, None, None, 0, default, help, label, more)


def text_lever(
    name: str,
    label: str,
    *,
    help: str,
    default: str = "",
    more: bool = False,
    max_length: int = MAX_TEXT_LEVER,
) -> LeverSpec:
    return LeverSpec(
        name, "text", default, None, None, 0, default, help, label, more, max_length=max_length
    )


def choice_lever(
    name: str, label: str, choices: tuple[str, ...], *, help: str, more: bool = False
) -> LeverSpec:
    """One of ``choices``; the first is the default and the neutral value."""
    first = choices[0]
    return LeverSpec(name, "choice", first, None, None, 0, first, help, label, more, choices)


def _number(
    kind: LeverKind,
    name: str,
    label: str,
    default: float | None,
    minimum: float,
    maximum: float,
    step: float,
    help: str,
    neutral: Any,
    more: bool,
) -> LeverSpec:
    neutral = default if neutral is _SAME else neutral
    return LeverSpec(name, kind, default, minimum, maximum, step, neutral, help, label, more)
