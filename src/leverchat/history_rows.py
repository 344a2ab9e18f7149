"""Read history rows defensively: a damaged or foreign-written row is reported, never a crash.

SQLite stores any type in any column: a BLOB in ``content``, text that is not valid UTF-8, a
NULL where the schema allows one, text in an INTEGER column. Python's sqlite3 raises
``OperationalError`` for a whole query when one text value is not UTF-8, and hands BLOBs over
as ``bytes``, which crashed every reader that expected ``str``. The store reads text through
:func:`decode_text` (invalid UTF-8 comes back as ``bytes``), then checks each value it uses
with the helpers here; a value of the wrong type raises :class:`RowProblem`, which the store
turns into a skipped record the caller reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

from leverchat.chat import MessageStatus
from leverchat.levers import LeverError, Levers

_T = TypeVar("_T")

# Shown for a chat whose timestamps cannot be read, so it still sorts and lists.
UNKNOWN_TIME: Final = datetime.fromtimestamp(0, UTC)


class RowProblem(ValueError):
    """One stored value has the wrong type or cannot be decoded; ``str()`` says which."""


@dataclass(frozen=True)
class SkippedRecord:
    """A chat or message left out because a stored value could not be read."""

    kind: Literal["chat", "message"]
    record_id: str
    chat_id: str
    reason: str
    # True when the record itself is kept and only the unreadable part left out.
    kept: bool = False

    def describe(self) -> str:
        if self.kept:
            return f"{self.kind} {self.record_id}: {self.reason}"
        return f"{self.kind} {self.record_id} was skipped ({self.reason})"


class InvalidText(bytes):
    """A TEXT value that is not UTF-8 (told apart from a BLOB, which arrives as plain bytes)."""


def decode_text(raw: bytes) -> str | bytes:
    """The connection's ``text_factory``: UTF-8 text as ``str``, anything else left as bytes.

    Without it one invalid byte in one row made the whole query fail, so nothing of the
    history could be listed; as bytes, the row is reported and skipped like a BLOB.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


def describe_value(value: object) -> str:
    """What a stored value is, for a message (never the value itself: it may be huge)."""
    if value is None:
        return "NULL"
    if isinstance(value, InvalidText):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = value[error.start]
            return f"text that is not valid UTF-8 (byte 0x{bad:02x} at offset {error.start})"
    if isinstance(value, bytes):
        return f"a BLOB of {len(value)} bytes"
    if isinstance(value, bool | int):
        return "an integer"
    if isinstance(value, float):
        return "a real number"
    return type(value).__name__


def text(value: object, column: str) -> str:
    """``value`` as text, or :class:`RowProblem` naming ``column`` and what it holds."""
    if isinstance(value, str):
        return value
    what = describe_value(value)
    raise RowProblem(
        f"{column}: {what}" if isinstance(value, InvalidText) else f"{column}: {what}, not text"
    )


def optional_text(value: object, column: str) -> str | None:
    return None if value is None else text(value, column)


def optional_int(value: object, column: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise RowProblem(f"{column}: {describe_value(value)}, not a whole number")


def timestamp(value: object, column: str) -> datetime:
    moment = text(value, column)
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        raise RowProblem(f"{column}: not a date and time: {moment[:40]!r}") from None
    # A naive time (written by another program) is read as UTC, so comparisons still work.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def record_id(value: object) -> str:
    """An id for messages: text as is, anything else described (it is never looked up)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


# --------------------------------------------------------------------------------------------
# Whole rows: the store builds its records from these fields


def stored_json(value: object, column: str, empty: str) -> Any:
    """A JSON column (NULL or '' meaning ``empty``); RowProblem names the column."""
    raw = optional_text(value, column) or empty
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise RowProblem(f"{column}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise RowProblem(f"{column}: nested too deeply") from None


def stored_levers(value: object) -> Levers:
    mapping = stored_json(value, "levers", "{}")
    if not isinstance(mapping, dict):
        raise RowProblem(f"levers: not an object of lever values but {type(mapping).__name__}")
    try:
        return Levers.from_mapping(mapping)
    except LeverError as error:
        raise RowProblem(f"levers: {error.message}") from None


def info_fields(row: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
    """A chat row's title, times, profile, system prompt and levers, each read on its own:
    an unreadable one gets a default and its problem is listed."""
    problems: list[str] = []

    def read(decode: Callable[[], _T], default: _T) -> _T:
        try:
            return decode()
        except ValueError as error:  # RowProblem and LeverError alike
            problems.append(str(error))
            return default

    fields = {
        "title": read(lambda: text(row[1], "title"), ""),
        "created": read(lambda: timestamp(row[2], "created_at"), UNKNOWN_TIME),
        "updated": read(lambda: timestamp(row[3], "updated_at"), UNKNOWN_TIME),
        "profile": read(lambda: text(row[5], "profile"), ""),
        "system_prompt": read(lambda: text(row[6], "system_prompt"), ""),
        "levers": read(lambda: stored_levers(row[7]), Levers()),
    }
    return fields, problems


def message_fields(row: Sequence[Any]) -> dict[str, Any]:
    """A message row's own fields (not its provenance); RowProblem if one cannot be read."""
    role = text(row[3], "role")
    if role not in ("user", "assistant"):
        raise RowProblem(f"role: {role[:20]!r}, not 'user' or 'assistant'")
    status_text = text(row[5], "status")
    try:
        status = MessageStatus(status_text)
    except ValueError:
        raise RowProblem(f"status: unknown value {status_text[:20]!r}") from None
    return {
        "id": text(row[0], "id"),
        "parent_id": optional_text(row[1], "parent id"),
        "active": bool(row[2]),
        "role": role,
        "content": text(row[4], "content"),
        "status": status,
        "created": timestamp(row[6], "created_at"),
        "updated": timestamp(row[7], "updated_at"),
    }


def provenance_mapping(columns: Sequence[Any]) -> dict[str, Any] | None:
    """The provenance columns as the export's mapping (None: no provenance recorded)."""
    model, profile, system_prompt, seed, stop_reason, error, levers, changes, stats = columns
    if model is None:
        return None
    return {
        "model": text(model, "provenance model"),
        "profile": optional_text(profile, "provenance profile") or "",
        "system_prompt": optional_text(system_prompt, "provenance system prompt") or "",
        "seed": optional_int(seed, "provenance seed"),
        "stop_reason": optional_text(stop_reason, "stop reason"),
        "error": optional_text(error, "provenance error"),
        "levers": stored_json(levers, "provenance levers", "{}"),
        "lever_changes": stored_json(changes, "provenance lever changes", "[]"),
        "stats": stored_json(stats, "provenance stats", "{}"),
    }


def collect(
    found: Sequence[Sequence[Any]],
    decode: Callable[[Sequence[Any]], tuple[_T, str | None]],
    chat_id: str,
    *,
    drop_descendants: bool = False,
) -> tuple[list[_T], tuple[SkippedRecord, ...]]:
    """Decode message rows, skipping (and listing) those that raise RowProblem.

    ``decode`` returns the record and, when part of it was dropped, why. With
    ``drop_descendants`` (an export), a skipped message's replies and versions go too: kept,
    they would point at a parent the export lacks.
    """
    kept: list[_T] = []
    skipped: list[SkippedRecord] = []
    left_out: set[str] = set()
    for row in found:
        message_id = record_id(row[0])
        if drop_descendants and row[1] is not None and record_id(row[1]) in left_out:
            left_out.add(message_id)
            skipped.append(SkippedRecord("message", message_id, chat_id, "its parent was skipped"))
            continue
        try:
            item, note = decode(row)
        except RowProblem as error:
            left_out.add(message_id)
            skipped.append(SkippedRecord("message", message_id, chat_id, str(error)))
            continue
        if note is not None:
            skipped.append(SkippedRecord("message", message_id, chat_id, note, kept=True))
        kept.append(item)
    return kept, tuple(skipped)
