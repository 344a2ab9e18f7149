"""The rows of the token inspector's table for one reply token (pure data, no widgets).

Each row is one of the model's likeliest tokens at that step, with its raw and after-lever
probability and the lever that removed it; the chosen token is marked, and added at the end
when it was not among the likeliest (a sampled long shot). Text is made visible here
(:func:`leverchat.safetext.single_line`), so a token holding ESC or a bidi override is shown as
``\\x1b`` or ``\\u202e``.
"""

from __future__ import annotations

from dataclasses import dataclass

from leverchat.engine.inspection import TokenInspection
from leverchat.safetext import single_line, visible

TOKEN_WIDTH = 18  # characters of token text in a row (the table fits 80 columns)


@dataclass(frozen=True)
class TokenRow:
    rank: int | None
    text: str  # the token's real text (for a branch)
    token_id: int | None
    raw: float | None
    after: float | None
    reported: float | None
    removed_by: str | None
    chosen: bool

    @property
    def shown_text(self) -> str:
        return quoted(self.text)

    @property
    def lever(self) -> str:
        """What the "removed by" column says."""
        if self.after is None:
            return "?"  # a server does not say
        if self.after > 0:
            return "kept"
        return self.removed_by or "—"


def quoted(text: str, limit: int = TOKEN_WIDTH) -> str:
    """A token's text on one line, every control, newline and invisible character visible,
    between quotes so that spaces show."""
    inner = single_line_keep_spaces(text)
    if len(inner) > limit - 2:
        inner = inner[: max(limit - 3, 0)] + "…"
    return f"'{inner}'"


def single_line_keep_spaces(text: str) -> str:
    # Not single_line: it collapses runs of spaces, which for a token would hide what it is.
    return visible(text, multiline=False)


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if value < 0.001:
        return "<0.1%"
    return f"{value * 100:.1f}%"


def is_remote(record: TokenInspection) -> bool:
    """A server's record: it has no raw or after-lever probabilities of its own."""
    return record.raw is None and record.after is None


def rows(record: TokenInspection) -> list[TokenRow]:
    """The table's rows for ``record``: its alternatives, likeliest first, then the chosen
    token if it was not among them."""
    out: list[TokenRow] = []
    chosen_listed = False
    raws = [alt.raw for alt in record.alternatives]
    for index, alt in enumerate(record.alternatives):
        chosen = _same_token(record, alt.token_id, alt.text)
        chosen_listed = chosen_listed or chosen
        out.append(
            TokenRow(
                rank=_rank(raws, index),
                text=alt.text,
                token_id=alt.token_id,
                raw=alt.raw,
                after=alt.after,
                reported=alt.reported,
                removed_by=alt.removed_by,
                chosen=chosen,
            )
        )
    if not chosen_listed:
        out.append(
            TokenRow(
                rank=record.raw_rank,
                text=record.text,
                token_id=record.token_id,
                raw=record.raw,
                after=record.after,
                reported=record.reported,
                removed_by=None,
                chosen=True,
            )
        )
    return out


def _same_token(record: TokenInspection, token_id: int | None, text: str) -> bool:
    if record.token_id is not None and token_id is not None:
        return record.token_id == token_id
    return token_id is None and record.token_id is None and text == record.text


def _rank(raws: list[float | None], index: int) -> int | None:
    """1 + how many listed alternatives are strictly likelier (ties share a rank); the list is
    the model's top N, so this is the token's rank in the whole vocabulary."""
    mine = raws[index]
    if mine is None:
        return index + 1  # a server's list is in its own order
    return 1 + sum(1 for other in raws if other is not None and other > mine)


def header(record: TokenInspection, index: int, count: int) -> str:
    """One line about the token under the cursor (plain text: made visible already)."""
    parts = [f"Token {index + 1} of {count}: {quoted(record.text, 30)}"]
    if is_remote(record):
        parts.append(f"server {percent(record.reported)}")
    else:
        parts.append(f"raw {percent(record.raw)} (rank {record.raw_rank or '?'})")
        after_rank = f"rank {record.after_rank}" if record.after_rank is not None else "removed"
        parts.append(f"after levers {percent(record.after)} ({after_rank})")
    if record.stopped_by is not None:
        parts.append("completed a stop string: cut from the reply")
    line = " · ".join(parts)
    if record.note:
        line += "\n" + single_line(record.note)
    return line
