"""Where a version of a reply branched off another one (pure data: no Textual, no torch).

A branch keeps the first tokens of a reply, puts other text (an alternative token from the
inspector's table, or the user's own) in place of the next one, and lets the model continue
from there. The new version records its :class:`BranchPoint` in its provenance: the version it
came from and where, which makes the versions of a turn a tree, and the exact start it was
continued from, which makes it reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from leverchat.engine.types import GenerationResult, ReplyPrefix

# The history's columns for a branch point (schema 4), in the order of to_columns().
COLUMN_NAMES: Final = (
    "branch_of",
    "branch_token",
    "branch_offset",
    "branch_text",
    "branch_prefix",
    "branch_prefix_ids",
)


@dataclass(frozen=True)
class BranchPoint:
    """Version ``source_id`` kept up to ``char_offset`` characters, then ``text``.

    ``token_index``: the source's token that ``text`` replaced (None when the source had no
    token ids, branched at a character position). ``prefix``: the whole start the reply was
    continued from; ``prefix_ids``: its exact tokens when the local engine knew them (empty:
    a remote server, which continues text).
    """

    source_id: str
    char_offset: int
    text: str
    token_index: int | None = None
    prefix: str = ""
    prefix_ids: tuple[int, ...] = ()

    def reply_prefix(self) -> ReplyPrefix:
        """The same start again (to reproduce the branch)."""
        return ReplyPrefix(self.prefix, token_ids=self.prefix_ids)

    def where(self) -> str:
        """Where it split, in words: "at token 14 'Arr'" (the text is the caller's to make safe).

        Counted from 1, as the token inspector counts ("Token 14 of 40"), where the branch was
        picked; ``token_index`` itself counts from 0 (the tokens kept before it)."""
        at = (
            f"at token {self.token_index + 1}"
            if self.token_index is not None
            else f"at character {self.char_offset}"
        )
        shown = self.text if len(self.text) <= 20 else self.text[:19] + "…"
        return f"{at} {shown!r}"


@dataclass(frozen=True)
class BranchStart:
    """A branch about to run: where it splits, and the start the engine continues."""

    point: BranchPoint
    prefix: ReplyPrefix

    @classmethod
    def again(cls, point: BranchPoint) -> BranchStart:
        """The recorded branch once more (reproduce): the same start, the same tokens."""
        return cls(point, point.reply_prefix())

    def recorded(self, result: GenerationResult | None) -> BranchPoint:
        """The point as the reply's provenance keeps it: with the exact start tokens when the
        engine reports them (a local engine), so that reproducing it feeds the same tokens."""
        if result is None or result.prefix_tokens <= 0:
            return self.point
        ids = result.token_ids[: result.prefix_tokens]
        return replace(self.point, prefix_ids=tuple(ids))


def to_mapping(point: BranchPoint) -> dict[str, Any]:
    return {
        "source_id": point.source_id,
        "token_index": point.token_index,
        "char_offset": point.char_offset,
        "text": point.text,
        "prefix": point.prefix,
        "prefix_ids": list(point.prefix_ids),
    }


def from_mapping(value: Any, where: str = "branch") -> BranchPoint:
    """The inverse of :func:`to_mapping`; ValueError names ``where`` and the bad key."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object, not {value!r}")
    source = value.get("source_id")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{where}.source_id must be a message id, not {source!r}")
    token_index = value.get("token_index")
    if token_index is not None and not _whole(token_index):
        raise ValueError(f"{where}.token_index must be a whole number >= 0 or null")
    offset = value.get("char_offset")
    if not isinstance(offset, int) or not _whole(offset):
        raise ValueError(f"{where}.char_offset must be a whole number >= 0, not {offset!r}")
    texts = {}
    for key in ("text", "prefix"):
        text = value.get(key, "")
        if not isinstance(text, str):
            raise ValueError(f"{where}.{key} must be a string, not {text!r}")
        texts[key] = text
    ids = value.get("prefix_ids", [])
    if not isinstance(ids, list) or not all(_whole(item) for item in ids):
        raise ValueError(f"{where}.prefix_ids must be a list of token ids (whole numbers >= 0)")
    return BranchPoint(
        source_id=source,
        char_offset=offset,
        text=texts["text"],
        token_index=token_index,
        prefix=texts["prefix"],
        prefix_ids=tuple(ids),
    )


def to_columns(point: BranchPoint | None) -> tuple[Any, ...]:
    if point is None:
        return (None,) * len(COLUMN_NAMES)
    return (
        point.source_id,
        point.token_index,
        point.char_offset,
        point.text,
        point.prefix,
        json.dumps(list(point.prefix_ids)),
    )


def from_columns(columns: Sequence[Any]) -> BranchPoint | None:
    """The branch point stored in the history's columns (None: not a branch)."""
    source, token_index, offset, text, prefix, ids = columns
    if source is None:
        return None
    try:
        ids_value = json.loads(ids) if isinstance(ids, str) else ids
    except json.JSONDecodeError as error:
        raise ValueError(f"branch prefix ids are not JSON: {error}") from None
    mapping = {
        "source_id": source,
        "token_index": token_index,
        "char_offset": offset,
        "text": text if text is not None else "",
        "prefix": prefix if prefix is not None else "",
        "prefix_ids": ids_value if ids_value is not None else [],
    }
    return from_mapping(mapping, "stored branch")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
