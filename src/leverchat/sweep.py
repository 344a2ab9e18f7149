"""A lever sweep: one prompt, one lever, several values, the same seed for every cell.

Pure data (no torch, no Textual): which lever, which values (parsed and validated with the
lever's own spec, as the command line parses a lever option), the levers of each cell, and the
two ways a sweep is printed (a Markdown table and a JSON object). ``leverchat sweep`` and the
TUI's sweep screen both build on it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from leverchat.levers import (
    LEVER_NAMES,
    SPECS_BY_NAME,
    LeverError,
    Levers,
    LeverSpec,
    format_number,
    unknown_key_message,
)
from leverchat.safetext import visible

# Each cell is a whole reply: a sweep of more values than this is a mistake, not a plan.
MAX_VALUES = 16

# Values a sweep starts from when the user has not typed any (the TUI prefills them): the
# range where the lever's effect is easiest to see on a small model.
SUGGESTED_VALUES: dict[str, str] = {
    "temperature": "0, 0.4, 0.8, 1.2",
    "top_k": "1, 10, 40, 0",
    "top_p": "0.5, 0.9, 1.0",
    "min_p": "0, 0.05, 0.2",
    "typical_p": "0.5, 0.9, 1.0",
    "repetition_penalty": "1.0, 1.2, 1.5",
    "frequency_penalty": "0, 0.5, 1.0",
    "presence_penalty": "0, 0.5, 1.0",
    "no_repeat_ngram_size": "0, 2, 3",
    "max_new_tokens": "16, 64, 256",
    "seed": "1, 2, 3",
    "dry_multiplier": "0, 0.8, 2",
    "xtc_probability": "0, 0.5, 1.0",
    "mirostat_tau": "0, 3, 5",
    "persona_depth": "0, 2, 4",
    "persona_role": "system, user, assistant",
}


class SweepError(ValueError):
    """A sweep the user asked for cannot run; the message names the lever and the value."""


@dataclass(frozen=True)
class SweepCell:
    """One finished cell: the value it swept to and what the model said."""

    value: Any
    text: str
    stop_reason: str
    tokens: int
    tokens_per_s: float
    levers: Levers
    seed: int
    error: str | None = None


def suggested_values(name: str) -> str:
    """Values to start a sweep of ``name`` from: a curated set, else the lever's neutral value,
    its default and its maximum (whichever differ)."""
    if name in SUGGESTED_VALUES:
        return SUGGESTED_VALUES[name]
    spec = SPECS_BY_NAME[name]
    candidates = [spec.neutral, spec.default, spec.maximum]
    shown: list[str] = []
    for candidate in candidates:
        if candidate is None or candidate == "":
            continue
        text = format_value(candidate)
        if text not in shown:
            shown.append(text)
    return ", ".join(shown)


def sweepable_levers() -> tuple[str, ...]:
    """Every lever a sweep can vary (the stop list is a list: one value is not one cell)."""
    return tuple(name for name in LEVER_NAMES if SPECS_BY_NAME[name].kind != "strings")


def resolve_lever(name: str) -> LeverSpec:
    """The spec of the lever called ``name`` (``top-p`` is ``top_p``), or a SweepError with a
    "did you mean"."""
    key = name.strip().replace("-", "_")
    spec = SPECS_BY_NAME.get(key)
    if spec is None:
        raise SweepError(unknown_key_message(key, sweepable_levers()))
    if spec.kind == "strings":
        raise SweepError(
            f"{key} is a list of strings and cannot be swept; sweep one of: "
            + ", ".join(sweepable_levers())
        )
    return spec


def parse_values(spec: LeverSpec, text: str) -> tuple[Any, ...]:
    """The comma-separated values of ``text`` for ``spec``, each validated by the lever's own
    rules, in the user's order without repeats. A persona note (a text lever) is one value:
    its commas are its own."""
    from leverchat.commands.options import lever_value

    pieces = [text] if spec.kind == "text" else text.split(",")
    values: list[Any] = []
    for piece in pieces:
        if not piece.strip():
            if spec.kind == "text":
                values.append("")
                continue
            raise SweepError(
                f"values to sweep {spec.name} over: an empty value in {visible(text)!r}; "
                "separate the values with single commas, e.g. "
                + suggested_values(spec.name).replace(" ", "")
            )
        try:
            value = lever_value(spec, piece if spec.kind == "text" else piece.strip())
        except (LeverError, argparse.ArgumentTypeError) as error:
            raise SweepError(f"values to sweep {spec.name} over: {error}") from None
        if value not in values:
            values.append(value)
    if len(values) > MAX_VALUES:
        raise SweepError(
            f"values to sweep {spec.name} over: {len(values)} values; a sweep takes at most "
            f"{MAX_VALUES} (each one is a whole reply)"
        )
    return tuple(values)


def cell_levers(base: Levers, lever: str, value: Any, seed: int) -> Levers:
    """The levers of one cell: the base levers with the swept one set and the shared seed
    (unless the seed is what is swept)."""
    levers = base if lever == "seed" else base.with_value("seed", seed)
    return levers.with_value(lever, value)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


def markdown_cell(text: str) -> str:
    """``text`` as one Markdown table cell: control characters shown as escapes, line breaks
    as ``<br>``, ``|`` and backslashes escaped so the cell never splits or changes meaning."""
    shown = visible(text.replace("\r\n", "\n")).strip()
    shown = shown.replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(line.rstrip() for line in shown.split("\n")) or " "


def markdown_table(lever: str, cells: Iterable[SweepCell]) -> str:
    lines = [f"| {lever} | reply |", "|---|---|"]
    for cell in cells:
        reply = cell.text if cell.error is None else f"{cell.text}\n(failed: {cell.error})"
        lines.append(f"| {markdown_cell(format_value(cell.value))} | {markdown_cell(reply)} |")
    return "\n".join(lines)


def sweep_json(
    lever: str, values: Sequence[Any], seed: int, cells: Iterable[SweepCell]
) -> dict[str, Any]:
    return {
        "lever": lever,
        "values": list(values),
        "seed": seed,
        "cells": [
            {
                "value": cell.value,
                "text": cell.text,
                "stop_reason": cell.stop_reason,
                "tokens": cell.tokens,
                "tokens_per_s": cell.tokens_per_s,
                "seed": cell.seed,
                "levers": cell.levers.to_mapping(),
                "error": cell.error,
            }
            for cell in cells
        ],
    }
