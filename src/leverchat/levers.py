"""The sampling levers: every inference-time control leverchat exposes.

This module is pure data (no torch, no Textual): profiles, the command line and the side panel
all validate through :meth:`Levers.from_mapping` / :func:`validate_lever`, so nothing invalid can
ever reach the engine. The engine imports it too; it sits below ``engine/`` in the layering.
"""

from __future__ import annotations

import difflib
import math
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from leverchat.lever_spec import (
    LeverKind,
    LeverSpec,
    choice_lever,
    float_lever,
    format_number,
    int_lever,
    strings_lever,
    text_lever,
)
from leverchat.lever_weights import WeightError, Weights, validate_weights
from leverchat.sampler_specs import DEFAULT_DRY_BREAKERS, FLAG_LEVERS, SAMPLER_SPECS
from leverchat.structured_specs import (
    STRUCTURED_NAMES,
    STRUCTURED_SPECS,
    ConstraintError,
    grammar_for,
    schema_text,
)

__all__ = ["LeverKind", "LeverSpec", "format_number"]


class LeverError(ValueError):
    """A lever value or key was refused. ``key`` names the lever the user wrote."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


# The order here is the order the side panel and `profiles show` use. Each lever: name, label,
# default, minimum, maximum, step (lever_spec.py's constructors: the neutral value is the
# default unless given). Aligned by hand, hence no formatter here.
# fmt: off
LEVER_SPECS: tuple[LeverSpec, ...] = (
    float_lever("temperature", "Temperature", 0.7, 0.0, 5.0, 0.05, neutral=1.0,
        help="The creativity lever: low is focused, high is varied; 0 is greedy."),
    int_lever("top_k", "Top-k", 0, 0, 100_000, 5,
        help="Sample only from the k most likely tokens; 0 is off."),
    float_lever("top_p", "Top-p", 0.95, 0.0, 1.0, 0.01, neutral=1.0,
        help="Nucleus sampling: keep the likeliest tokens that add up to p."),
    float_lever("min_p", "Min-p", 0.05, 0.0, 1.0, 0.01, neutral=0.0,
        help="Drop tokens below min-p times the likeliest one's probability."),
    # Minimum 0.01: 0 would keep one arbitrary "most typical" token; transformers refuses it too.
    float_lever("typical_p", "Typical-p", 1.0, 0.01, 1.0, 0.01,
        help="Keep tokens of typical surprise (locally typical); 1 is off."),
    float_lever("repetition_penalty", "Repetition penalty", 1.0, 0.01, 10.0, 0.05,
        help="The anti-looping lever: above 1 discourages tokens already seen."),
    float_lever("frequency_penalty", "Frequency penalty", 0.0, -2.0, 2.0, 0.1,
        help="Penalise a token by its count in the reply: fewer repeated words."),
    float_lever("presence_penalty", "Presence penalty", 0.0, -2.0, 2.0, 0.1,
        help="Penalise any token already in the reply once: new topics."),
    int_lever("no_repeat_ngram_size", "No-repeat n-gram", 0, 0, 64, 1,
        help="Forbid repeating any n-gram of this size; 0 is off."),
    int_lever("max_new_tokens", "Max new tokens", 512, 1, 1_000_000, 32,
        help="The longest reply, in tokens."),
    # Any 64-bit integer: torch takes negative seeds too (-1 is its own seed, not random).
    int_lever("seed", "Seed", None, -(2**63), 2**63 - 1, 1, optional=True,
        help="Fix the random choices to reproduce a reply; unset: a new one."),
    strings_lever("stop", "Stop strings",
        help="End the reply at any of these strings (not shown)."),
    *SAMPLER_SPECS,
    # Persona depth (persona.py): prompt levers, read when a reply starts.
    text_lever("persona_note", "Persona note",
        help="A short instruction re-inserted near the end of every prompt; empty: none."),
    int_lever("persona_depth", "Note depth", 1, 0, 100, 1,
        help="How many messages from the end the persona note goes; 0: last."),
    choice_lever("persona_role", "Note role", ("system", "user", "assistant"),
        help="The role the persona note is inserted as."),
    *STRUCTURED_SPECS,
)
# fmt: on

# Every stop string is searched for after each token: a few are useful, thousands only slow
# generation down (an imported Modelfile once carried 40,000).
MAX_STOP_STRINGS = 32

SPECS_BY_NAME: dict[str, LeverSpec] = {spec.name: spec for spec in LEVER_SPECS}
LEVER_NAMES: tuple[str, ...] = tuple(spec.name for spec in LEVER_SPECS)

# Common spellings from other tools, so `max_tokens = 200` gets a helpful suggestion.
_ALIASES: dict[str, str] = {
    "max_tokens": "max_new_tokens",
    "num_predict": "max_new_tokens",
    "repeat_penalty": "repetition_penalty",
    "stop_strings": "stop",
    "stops": "stop",
    "temp": "temperature",
    "mirostat": "mirostat_tau",
    "mirostat_mode": "mirostat_tau",
}


def suggest_key(key: str, candidates: Iterable[str] = LEVER_NAMES) -> str | None:
    """The closest known lever name to a mistyped ``key``, or None."""
    names = list(candidates)
    if key in _ALIASES and _ALIASES[key] in names:
        return _ALIASES[key]
    matches = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key: str, candidates: Iterable[str] = LEVER_NAMES) -> str:
    names = list(candidates)
    suggestion = suggest_key(key, names)
    hint = f"did you mean '{suggestion}'?" if suggestion else "known levers: " + ", ".join(names)
    return f"unknown lever '{key}': {hint}"


def validate_lever(name: str, value: Any) -> Any:
    """Check one lever value and return it in canonical form (ints widened to float, ...).

    Raises :class:`LeverError` naming the lever, the value and the allowed range.
    """
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        raise LeverError(name, unknown_key_message(name))
    if spec.kind == "strings":
        return _validate_strings(spec, value)
    if spec.kind == "weights":
        try:
            return validate_weights(name, value, spec.minimum or 0.0, spec.maximum or 0.0)
        except WeightError as error:
            raise LeverError(name, str(error)) from None
    if name == "json_schema":
        value = schema_text(value)  # a TOML table is the schema itself
    if spec.kind == "text":
        if not isinstance(value, str):
            raise LeverError(name, f"{name} must be a text, not {_describe(value)}")
        if len(value) > spec.max_length:
            raise LeverError(name, f"{name} is longer than {spec.max_length} characters")
        value = value.replace("\r\n", "\n")
        if name in STRUCTURED_NAMES and value:
            try:
                grammar_for(name, value)
            except ConstraintError as error:
                raise LeverError(name, f"{name} {error}") from None
        return value
    if spec.kind == "choice":
        if value not in spec.choices:
            raise LeverError(name, f"{name} must be {spec.range_text()}, not {_describe(value)}")
        return value
    if spec.kind == "optional_int" and value is None:
        return None
    if (name in FLAG_LEVERS or name == "json_mode") and isinstance(value, bool):
        value = int(value)
    # bool is an int subclass in Python; `temperature = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LeverError(
            name,
            f"{name} must be a number in {spec.range_text()}, not {_describe(value)}",
        )
    if spec.kind == "float":
        number: float | int = float(value)
        if not math.isfinite(number):
            raise LeverError(
                name, f"{name} must be a finite number in {spec.range_text()}, not {value!r}"
            )
    else:
        if isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise LeverError(
                    name, f"{name} must be a whole number in {spec.range_text()}, not {value!r}"
                )
            value = int(value)
        number = int(value)
    if (spec.minimum is not None and number < spec.minimum) or (
        spec.maximum is not None and number > spec.maximum
    ):
        raise LeverError(
            name, f"{name} = {_format_value(number)} is out of range: allowed {spec.range_text()}"
        )
    return number


def _validate_strings(spec: LeverSpec, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise LeverError(
            spec.name, f"{spec.name} must be a list of strings, not {_describe(value)}"
        )
    if any(item == "" for item in value):
        raise LeverError(spec.name, f"{spec.name} cannot contain an empty string")
    # Keep the user's order, drop duplicates.
    unique = tuple(dict.fromkeys(value))
    if len(unique) > MAX_STOP_STRINGS:
        raise LeverError(
            spec.name,
            f"{spec.name} has {len(unique)} different strings; the limit is {MAX_STOP_STRINGS}: "
            "keep the ones that matter",
        )
    return unique


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _format_value(value: float | int) -> str:
    return str(value) if isinstance(value, int) else repr(value)


@dataclass(frozen=True)
class Levers:
    """Every sampling lever. Defaults are a sensible chat setting; see LEVER_SPECS for help."""

    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    persona_note: str = ""
    persona_depth: int = 1
    persona_role: str = "system"
    # The samplers of sampler_specs.py (neutral defaults).
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_sequence_breakers: tuple[str, ...] = DEFAULT_DRY_BREAKERS
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    mirostat_tau: float = 0.0
    mirostat_eta: float = 0.1
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    temperature_last: int = 0
    ban: tuple[str, ...] = ()
    # Phrase -> logit bias pairs (lever_weights.py); a table in TOML and JSON.
    boost: Weights = ()
    # Structured output (structured_specs.py): off by default.
    json_mode: int = 0
    json_schema: str = ""
    regex: str = ""
    grammar: str = ""

    def __post_init__(self) -> None:
        # Direct construction is validated too: an invalid Levers object cannot exist.
        for spec in LEVER_SPECS:
            canonical = validate_lever(spec.name, getattr(self, spec.name))
            object.__setattr__(self, spec.name, canonical)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: Levers | None = None) -> Levers:
        """Levers from a mapping (a TOML table, CLI options). Missing keys keep ``base``.

        Unknown keys are refused with a "did you mean" suggestion.
        """
        start = base if base is not None else cls()
        values: dict[str, Any] = {}
        for key, value in mapping.items():
            values[key] = validate_lever(key, value)
        return replace(start, **values)

    def to_mapping(self, *, only_changed_from: Levers | None = None) -> dict[str, Any]:
        """A plain dict (TOML/JSON friendly: tuples as lists, unset seed omitted)."""
        out: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if only_changed_from is not None and value == getattr(only_changed_from, field.name):
                continue
            if value is None:
                continue
            if SPECS_BY_NAME[field.name].kind == "weights":
                out[field.name] = dict(value)
            else:
                out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    def with_value(self, name: str, value: Any) -> Levers:
        return replace(self, **{name: validate_lever(name, value)})

    def changed_names(self, other: Levers) -> tuple[str, ...]:
        return tuple(name for name in LEVER_NAMES if getattr(self, name) != getattr(other, name))

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def mirostat(self) -> bool:
        """Mirostat v2 is on (a target surprise is set)."""
        return self.mirostat_tau > 0.0


def neutral_levers() -> Levers:
    """Every lever at the value that leaves the model's distribution untouched (plain
    sampling at temperature 1): the baseline the lever-overhead benchmark compares against."""
    return Levers(**{spec.name: spec.neutral for spec in LEVER_SPECS})


def random_seed() -> int:
    """A fresh seed for a reply whose seed lever is unset. 32 bits: short enough to read out
    and type back in, plenty for chat."""
    return secrets.randbits(32)


class LiveLevers:
    """A thread-safe, mutable holder of the current levers.

    The UI thread calls :meth:`set`; the engine thread calls :meth:`get` at every decoding
    step, so a change applies from the next token. ``version`` increases on every change,
    which lets the engine notice a change with one integer comparison.
    """

    def __init__(self, levers: Levers | None = None) -> None:
        self._lock = threading.Lock()
        self._levers = levers if levers is not None else Levers()
        self._version = 0

    def get(self) -> Levers:
        with self._lock:
            return self._levers

    def snapshot(self) -> tuple[int, Levers]:
        with self._lock:
            return self._version, self._levers

    @property
    def version(self) -> int:
        return self._version

    def set(self, levers: Levers) -> None:
        with self._lock:
            if levers != self._levers:
                self._levers = levers
                self._version += 1
