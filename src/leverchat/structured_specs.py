"""The structured-output levers: JSON mode, a JSON Schema, a regular expression or a grammar
constrains the reply, applied as a mask on the next token's choices (engine/structured.py).

Each is off by default and costs nothing then. When several are set, the first of
``json_schema``, ``grammar``, ``regex``, ``json_mode`` applies (a schema is JSON already).
Their values are checked here, where every lever is validated (profiles, the command line and
the panel alike), so a broken schema or grammar is refused with its lever named, before any
reply starts. The checks use llguidance's grammar compiler (no model, no torch needed).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from leverchat.lever_spec import LeverSpec, int_lever, text_lever

if TYPE_CHECKING:
    from llguidance._lib import JsonCompileOptions

# A schema or grammar is written by hand or pasted: longer than a persona note, but a bound
# keeps a pasted document from being re-validated on every lever change.
MAX_CONSTRAINT_TEXT = 100_000

# fmt: off
STRUCTURED_SPECS: tuple[LeverSpec, ...] = (
    int_lever("json_mode", "JSON mode", 0, 0, 1, 1, more=True,
        help="1: the reply is one valid JSON object (any keys); 0 is off."),
    text_lever("json_schema", "JSON Schema", more=True, max_length=MAX_CONSTRAINT_TEXT,
        help="A JSON Schema the reply must match (JSON text, or a TOML table); empty: off."),
    text_lever("regex", "Regex", more=True, max_length=MAX_CONSTRAINT_TEXT,
        help="A regular expression (Rust syntax) the whole reply must match; empty: off."),
    text_lever("grammar", "Grammar", more=True, max_length=MAX_CONSTRAINT_TEXT,
        help="A grammar the reply must follow: GBNF (llama.cpp) or Lark; empty: off."),
)
# fmt: on

STRUCTURED_NAMES: tuple[str, ...] = tuple(spec.name for spec in STRUCTURED_SPECS)
# Which constraint applies when several are set: the first set one of these.
PRECEDENCE: tuple[str, ...] = ("json_schema", "grammar", "regex", "json_mode")
# JSON mode is the schema of any object: llguidance's JSON compiler, as a schema would use.
ANY_OBJECT_SCHEMA = '{"type": "object"}'


# One layout for JSON replies: `{"a": 1, "b": [2, 3]}`. llguidance's default allows any run of
# whitespace between tokens, and a small model then wandered into newlines and tabs until max
# tokens cut the object (seen on the tiny test model). A schema can still ask for another
# layout with its own "x-guidance" options.
JSON_LAYOUT: JsonCompileOptions = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


class ConstraintError(ValueError):
    """A schema, regex or grammar that cannot be compiled: the message says why."""


def schema_text(value: Any) -> Any:
    """A JSON Schema given as a TOML table (a dict) becomes its JSON text; anything else is
    returned as it is, for the text check to judge."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def active_constraint(levers: Any) -> tuple[str, str] | None:
    """(lever name, its text) of the constraint that applies, or None when none is set.
    ``levers`` is a :class:`~leverchat.levers.Levers` (typed loosely: this module sits below)."""
    for name in PRECEDENCE:
        value = getattr(levers, name)
        if value:
            return (name, ANY_OBJECT_SCHEMA if name == "json_mode" else str(value))
    return None


def grammar_for(name: str, text: str) -> str:
    """The llguidance grammar of a constraint lever's value; ConstraintError if it is not a
    valid one (the message says where and why)."""
    return _checked_grammar(name, text)


@lru_cache(maxsize=64)
def _checked_grammar(name: str, text: str) -> str:
    # Levers objects are validated on every construction: the cache makes a change of another
    # lever cost nothing here.
    import llguidance

    if name in ("json_schema", "json_mode"):
        try:
            schema = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConstraintError(
                f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            ) from None
        if not isinstance(schema, dict):
            raise ConstraintError(
                f"must be a JSON object (a schema), not a JSON {type(schema).__name__}"
            )
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(text, defaults=JSON_LAYOUT)
        except ValueError as error:
            raise ConstraintError(f"is not a usable JSON Schema: {error}") from None
    elif name == "regex":
        grammar = llguidance.LLMatcher.grammar_from_regex(text)
    else:
        try:
            grammar = llguidance.grammar_from("grammar", text)
        except ValueError as error:
            raise ConstraintError(f"is neither GBNF nor Lark: {error}") from None
    problem = llguidance.LLMatcher.validate_grammar(grammar)
    if problem:
        what = "a usable JSON Schema" if name in ("json_schema", "json_mode") else "valid"
        raise ConstraintError(f"is not {what}: " + _first_lines(problem))
    return str(grammar)


def _first_lines(message: str, lines: int = 6) -> str:
    """llguidance's error (with its caret drawing), kept short for a notice."""
    return "\n".join(message.strip().splitlines()[:lines])
