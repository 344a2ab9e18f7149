"""A reply's details beyond its levers and stats, to and from JSON: the prompt format it was
asked in, the stop strings that format added, what its banned and boosted phrases became in
the tokenizer, and the notices the engine gave (a structured-output change it could not apply
mid-reply). The history keeps them in the stats column under "details" (no schema change), the
JSON export beside the other provenance keys, so F3 shows them for a reply read back too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leverchat.chat import ReplyProvenance
from leverchat.engine.types import LeverTokens

KEY = "details"


def to_mapping(provenance: ReplyProvenance) -> dict[str, Any]:
    """The details worth keeping (only the non-empty ones; {} when there are none)."""
    details: dict[str, Any] = {}
    if provenance.prompt_format:
        details["prompt_format"] = provenance.prompt_format
    if provenance.format_stops:
        details["format_stops"] = list(provenance.format_stops)
    if provenance.lever_tokens:
        details["lever_tokens"] = [
            _lever_tokens_to_mapping(item) for item in provenance.lever_tokens
        ]
    if provenance.notices:
        details["notices"] = list(provenance.notices)
    return details


def from_mapping(value: Any) -> dict[str, Any]:
    """ReplyProvenance's fields from :func:`to_mapping`'s output (None: none recorded).
    ValueError names the key that cannot be read."""
    if value is None:
        return {}
    where = f"provenance {KEY}"
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object, not {value!r}")
    prompt_format = value.get("prompt_format", "")
    if not isinstance(prompt_format, str):
        raise ValueError(f"{where}.prompt_format must be a string, not {prompt_format!r}")
    tokens = value.get("lever_tokens", [])
    if not isinstance(tokens, list):
        raise ValueError(f"{where}.lever_tokens must be a list, not {tokens!r}")
    return {
        "prompt_format": prompt_format,
        "format_stops": _texts(value.get("format_stops", []), f"{where}.format_stops"),
        "lever_tokens": tuple(
            _lever_tokens_from(item, f"{where}.lever_tokens[{index}]")
            for index, item in enumerate(tokens)
        ),
        "notices": _texts(value.get("notices", []), f"{where}.notices"),
    }


def _lever_tokens_to_mapping(item: LeverTokens) -> dict[str, Any]:
    return {
        "lever": item.lever,
        "text": item.text,
        "sequences": [list(sequence) for sequence in item.sequences],
        "weight": item.weight,
        "pieces": [list(pieces) for pieces in item.pieces],
    }


def _lever_tokens_from(value: Any, where: str) -> LeverTokens:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object, not {value!r}")
    lever, text = value.get("lever"), value.get("text")
    if not isinstance(lever, str) or not isinstance(text, str):
        raise ValueError(f"{where} needs a lever name and a text (strings)")
    sequences = value.get("sequences", [])
    if not isinstance(sequences, list) or not all(
        isinstance(sequence, list)
        and all(isinstance(token, int) and not isinstance(token, bool) for token in sequence)
        for sequence in sequences
    ):
        raise ValueError(f"{where}.sequences must be lists of token ids (whole numbers)")
    weight = value.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        raise ValueError(f"{where}.weight must be a number or null, not {weight!r}")
    pieces = value.get("pieces", [])
    if not isinstance(pieces, list):
        raise ValueError(f"{where}.pieces must be a list of lists of strings")
    return LeverTokens(
        lever=lever,
        text=text,
        sequences=tuple(tuple(sequence) for sequence in sequences),
        weight=None if weight is None else float(weight),
        pieces=tuple(_texts(item, f"{where}.pieces") for item in pieces),
    )


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} must be a list of strings, not {value!r}")
    return tuple(value)
