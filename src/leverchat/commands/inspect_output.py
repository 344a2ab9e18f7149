"""``ask --inspect N``: the token inspector from the shell.

With ``--json`` the reply's object gains an ``inspection`` object: for every reply token the
top N alternatives, their raw and after-lever probabilities, the chosen token's rank and the
lever that removed each alternative. Without it, a compact table goes to stderr after the
reply (token texts made safe with :func:`leverchat.safetext.visible`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from leverchat.engine.inspection import DEFAULT_TOP_N, MAX_TOP_N, inspections_to_list
from leverchat.engine.types import GenerationResult
from leverchat.safetext import visible

RAW_MEANING = "raw: the model's own probability at temperature 1, before any lever"
AFTER_MEANING = "after: the probability in the distribution the token was sampled from"
NOT_REPORTED = (
    "no token probabilities were reported for this reply (of the servers, vLLM, SGLang, TGI, "
    "llama-server and OpenAI report log-probabilities; others do not): its inspection is empty"
)


def add_inspect_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inspect",
        metavar="N",
        # N is required: an optional N would swallow the prompt (`ask --inspect "Hi"`).
        default=0,
        type=top_n,
        help=f"token inspector: record the top N alternatives of every reply token (1 to "
        f"{MAX_TOP_N}; {DEFAULT_TOP_N} is a good start) with their raw and after-lever "
        "probabilities and the lever that removed each; with --json they go into the JSON, "
        "else a table goes to stderr after the reply",
    )


def top_n(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= MAX_TOP_N:
        raise argparse.ArgumentTypeError(
            f"--inspect takes a whole number of alternatives from 1 to {MAX_TOP_N}, not {text!r}"
        )
    return value


def inspection_json(result: GenerationResult, top: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        "top_n": top,
        "meaning": {"raw": RAW_MEANING, "after": AFTER_MEANING},
        "tokens": inspections_to_list(result.inspection),
    }
    note = _missing_note(result)
    if note:
        data["note"] = note
    return data


def _missing_note(result: GenerationResult) -> str:
    if result.inspection or (not result.token_ids and result.remote is None):
        return ""
    return NOT_REPORTED


def format_table(result: GenerationResult, top: int) -> str:
    """The readable table: one line per reply token, its alternatives indented below."""
    lines = [
        f"token inspector: top {top} per token",
        "  raw = the model at temperature 1 · after = the distribution sampled from",
    ]
    note = _missing_note(result) or (result.inspection[0].note if result.inspection else "")
    if note:
        lines.append(note)
    for index, item in enumerate(result.inspection, start=1):
        stop = "  (completed a stop string: cut)" if item.stopped_by else ""
        raw = f"raw {_percent(item.raw)} (rank {_rank(item.raw_rank)})"
        after = f"after {_percent(item.after)} (rank {_rank(item.after_rank)})"
        if item.reported is not None:
            after += f"  reported {_percent(item.reported)}"
        lines.append(f"{index:>4} {_token(item.text)}  {raw}  {after}{stop}")
        for alt in item.alternatives:
            mark = "*" if alt.token_id is not None and alt.token_id == item.token_id else " "
            removed = f"  removed by {alt.removed_by}" if alt.removed_by else ""
            if alt.reported is not None:
                removed += f"  reported {_percent(alt.reported)}"
            text = _token(alt.text)
            lines.append(
                f"     {mark} {text:<16} {_percent(alt.raw):>7} {_percent(alt.after):>7}{removed}"
            )
    return "\n".join(lines)


def _token(text: str) -> str:
    # JSON quoting shows spaces, newlines and tabs; visible() escapes what a terminal obeys.
    return visible(json.dumps(text, ensure_ascii=False))


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _rank(value: int | None) -> str:
    return "-" if value is None else str(value)
