"""The "weights" lever kind: phrases with a number each (``boost = {"Arr" = 2.0}``).

Pure data, like levers.py: the checks a profile, the command line and the side panel share,
and the one-line text the panel shows and reads back (``Arr=2, matey=1.5``). A value is kept
as a tuple of ``(phrase, weight)`` pairs in the user's order, so that a Levers object stays
hashable and compares by value.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from typing import Any

Weights = tuple[tuple[str, float], ...]

# Each phrase is tokenized and biased at every token: a few are useful, hundreds only slow
# every step down (the same limit as stop strings and banned phrases).
MAX_WEIGHTS = 32
# In the panel, a phrase that holds one of these is written in TOML's inline-table form.
_SPECIAL = frozenset(",={}\"'")
# A weight typed in the panel: plain ASCII digits (float() would also read other scripts').
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


class WeightError(ValueError):
    """A weights value was refused; the message names the lever and the entry."""


def validate_weights(name: str, value: Any, minimum: float, maximum: float) -> Weights:
    """``value`` (a mapping, or pairs) as canonical pairs; WeightError names the bad entry."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list | tuple) and all(
        isinstance(item, list | tuple) and len(item) == 2 for item in value
    ):
        pairs = [(item[0], item[1]) for item in value]
    else:
        raise WeightError(
            f'{name} must be a table of phrases and weights like {{"Arr" = 2.0}}, '
            f"not {_describe(value)}"
        )
    out: dict[str, float] = {}
    for phrase, weight in pairs:
        if not isinstance(phrase, str):
            raise WeightError(f"{name}: a phrase must be a text, not {_describe(phrase)}")
        if not phrase.strip():
            raise WeightError(f"{name}: a phrase cannot be empty ({name}[{phrase!r}])")
        entry = f"{name}[{phrase!r}]"
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise WeightError(
                f"{entry} must be a number from {_num(minimum)} to {_num(maximum)}, "
                f"not {_describe(weight)}"
            )
        number = float(weight)
        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise WeightError(
                f"{entry} = {weight!r} is out of range: allowed {_num(minimum)} to {_num(maximum)}"
            )
        out.pop(phrase, None)  # a phrase given twice: the last weight wins, in its place
        out[phrase] = number
    if len(out) > MAX_WEIGHTS:
        raise WeightError(
            f"{name} has {len(out)} phrases; the limit is {MAX_WEIGHTS}: keep the ones that matter"
        )
    return tuple(out.items())


def format_weights(value: Weights) -> str:
    """The panel's one-line text: ``Arr=2.0, matey=1.5``; TOML's ``{ "a,b" = 1.0 }`` form
    when a phrase holds a comma, an equals sign, a brace, a quote, edge spaces or a character
    that is not printable (written as an escape, so the line stays one line and readable)."""
    if not value:
        return ""
    if any(_needs_quotes(phrase) for phrase, _ in value):
        inner = ", ".join(f"{_toml_string(phrase)} = {weight!r}" for phrase, weight in value)
        return "{ " + inner + " }"
    return ", ".join(f"{phrase}={weight!r}" for phrase, weight in value)


def _toml_string(text: str) -> str:
    """A TOML basic string: quote and backslash escaped, every non-printable character as
    ``\\uXXXX`` (TOML refuses raw controls, and a terminal must not see them)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
    return '"' + "".join(out) + '"'


def parse_weights_text(name: str, text: str) -> Any:
    """What the user typed in the panel, as a mapping for :func:`validate_weights`.
    ``Arr=2, matey=1.5`` or a TOML inline table; WeightError names the entry."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            return tomllib.loads("value = " + stripped)["value"]
        except tomllib.TOMLDecodeError:
            raise WeightError(
                f'{name} must be like Arr=2, matey=1.5 or {{ "As an AI" = -5 }}'
            ) from None
    out: dict[str, float] = {}
    for entry in stripped.split(","):
        entry = entry.strip()
        if not entry:
            continue
        phrase, equals, weight = entry.rpartition("=")
        if not equals:
            raise WeightError(f"{name}: '{entry}' needs a weight, like {entry}=2")
        phrase, weight = phrase.strip(), weight.strip()
        if not phrase:
            raise WeightError(f"{name}: '{entry}' needs a phrase before '='")
        if not _NUMBER.fullmatch(weight):
            raise WeightError(
                f"{name}[{phrase!r}]: '{weight}' is not a number (write it like {phrase}=1.5)"
            )
        out[phrase] = float(weight)
    return out


def _needs_quotes(phrase: str) -> bool:
    return (
        phrase != phrase.strip()
        or not phrase.isprintable()
        or any(char in _SPECIAL for char in phrase)
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"
