"""What the token inspector records about each reply token (pure data, importable without torch).

For every token of a reply: the chosen token and the model's likeliest alternatives, each with
two probabilities, **raw** (the model's own distribution at temperature 1, before any lever)
and **after** (the distribution the token was actually sampled from), the chosen token's rank
in both, and, for each alternative the levers removed, the lever that removed it.

The same shapes go into ``ask --json``, the history and the JSON export
(:func:`inspection_to_mapping` / :func:`inspection_from_mapping`). A probability is None where
the engine could not know it (a remote server reports only what it reports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# The default number of alternatives recorded per token (``ask --inspect`` alone).
DEFAULT_TOP_N: Final = 10
# More alternatives than this are refused: the table would not be read, and storage grows.
MAX_TOP_N: Final = 100

# What can remove an alternative: the lever's own name (a Levers field), so that a new lever
# names itself. "temperature" removes every other token at temperature 0 (greedy).
STOP_STRING: Final = "stop"


@dataclass(frozen=True)
class Alternative:
    """One of the model's likeliest tokens at this step."""

    token_id: int | None  # None: a remote server names tokens by their text only
    text: str
    raw: float | None
    after: float | None
    # The lever that removed it from the distribution sampled from (None: it stayed).
    removed_by: str | None = None
    # A remote server's own probability (its log-probability, exponentiated): what it means
    # (before or after its samplers) is the server's choice, so it is kept apart from both.
    reported: float | None = None


@dataclass(frozen=True)
class TokenInspection:
    """One reply token and what it was chosen from."""

    token_id: int | None
    text: str
    raw: float | None
    after: float | None
    # 1 = the likeliest; equally likely tokens share a rank. None: not known.
    raw_rank: int | None
    after_rank: int | None
    alternatives: tuple[Alternative, ...] = ()
    # "stop" when this token completed a stop string: its text was cut and the reply ended.
    stopped_by: str | None = None
    # Why some of the above is missing (a remote server that reports only part of it).
    note: str = ""
    reported: float | None = None  # see Alternative.reported


def inspection_to_mapping(item: TokenInspection) -> dict[str, Any]:
    out: dict[str, Any] = {
        "token_id": item.token_id,
        "text": item.text,
        "raw": item.raw,
        "after": item.after,
        "raw_rank": item.raw_rank,
        "after_rank": item.after_rank,
        "alternatives": [
            {
                "token_id": alt.token_id,
                "text": alt.text,
                "raw": alt.raw,
                "after": alt.after,
                "removed_by": alt.removed_by,
                **({"reported": alt.reported} if alt.reported is not None else {}),
            }
            for alt in item.alternatives
        ],
    }
    if item.stopped_by is not None:
        out["stopped_by"] = item.stopped_by
    if item.note:
        out["note"] = item.note
    if item.reported is not None:
        out["reported"] = item.reported
    return out


def inspections_to_list(items: Sequence[TokenInspection]) -> list[dict[str, Any]]:
    return [inspection_to_mapping(item) for item in items]


def inspection_from_mapping(value: Any, where: str) -> TokenInspection:
    """The inverse of :func:`inspection_to_mapping`; ValueError names ``where`` and the key."""
    mapping = _mapping(value, where)
    alternatives = mapping.get("alternatives", [])
    if not isinstance(alternatives, list):
        raise ValueError(f"{where}.alternatives must be a list")
    return TokenInspection(
        token_id=_token_id(mapping, where),
        text=_text(mapping, "text", where),
        raw=_probability(mapping, "raw", where),
        after=_probability(mapping, "after", where),
        raw_rank=_rank(mapping, "raw_rank", where),
        after_rank=_rank(mapping, "after_rank", where),
        alternatives=tuple(
            _alternative(alt, f"{where}.alternatives[{index}]")
            for index, alt in enumerate(alternatives)
        ),
        stopped_by=_optional_text(mapping, "stopped_by", where),
        note=_optional_text(mapping, "note", where) or "",
        reported=_probability(mapping, "reported", where),
    )


def inspections_from_list(value: Any, where: str) -> tuple[TokenInspection, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list of token records")
    return tuple(inspection_from_mapping(item, f"{where}[{i}]") for i, item in enumerate(value))


def _alternative(value: Any, where: str) -> Alternative:
    mapping = _mapping(value, where)
    return Alternative(
        token_id=_token_id(mapping, where),
        text=_text(mapping, "text", where),
        raw=_probability(mapping, "raw", where),
        after=_probability(mapping, "after", where),
        removed_by=_optional_text(mapping, "removed_by", where),
        reported=_probability(mapping, "reported", where),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _token_id(mapping: Mapping[str, Any], where: str) -> int | None:
    value = mapping.get("token_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}.token_id must be a whole number >= 0 or null, not {value!r}")
    return value


def _text(mapping: Mapping[str, Any], key: str, where: str) -> str:
    value = mapping.get(key, "")
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string, not {value!r}")
    return value


def _optional_text(mapping: Mapping[str, Any], key: str, where: str) -> str | None:
    value = mapping.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string or null, not {value!r}")
    return value


def _probability(mapping: Mapping[str, Any], key: str, where: str) -> float | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{where}.{key} must be a probability from 0 to 1 or null: {value!r}")
    if math.isnan(value):
        raise ValueError(f"{where}.{key} must be a probability, not NaN")
    return float(value)


def _rank(mapping: Mapping[str, Any], key: str, where: str) -> int | None:
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.{key} must be a whole number >= 1 or null, not {value!r}")
    return value
