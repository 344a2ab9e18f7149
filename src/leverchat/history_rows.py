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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

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
