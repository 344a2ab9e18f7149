"""The token inspector's records in the history: one row per reply generated while it was on.

A table of its own (``token_inspections``), not a column of ``messages``: a reply's records
are tens of kilobytes of JSON that loading a chat never needs, so they are read only when
asked for (the inspector view, an export). A message's row going also takes its records
(``ON DELETE CASCADE``). The records are derived data: one that cannot be read is left out
with a warning in the log, never a reason to refuse the chat.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Final

from leverchat.engine.inspection import (
    TokenInspection,
    inspections_from_list,
    inspections_to_list,
)

log = logging.getLogger(__name__)

TABLE: Final = "token_inspections"
COLUMNS: Final = frozenset({"message_id", "data"})


def migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Schema 3: the token inspector's table (no change to existing tables)."""
    conn.execute(
        f"""
        CREATE TABLE {TABLE} (
            message_id TEXT PRIMARY KEY NOT NULL
                REFERENCES messages (id) ON DELETE CASCADE,
            data TEXT NOT NULL
        )
        """
    )


def save(conn: sqlite3.Connection, message_id: str, items: Sequence[TokenInspection]) -> bool:
    """Store (or replace) a reply's records; False when no assistant message has that id."""
    found = conn.execute(
        "SELECT 1 FROM messages WHERE id = ? AND role = 'assistant'", (message_id,)
    ).fetchone()
    if found is None:
        return False
    # An upsert, not INSERT OR REPLACE: a replace is a delete, which cascades (RELIABILITY.md).
    conn.execute(
        f"INSERT INTO {TABLE} (message_id, data) VALUES (?, ?)"  # noqa: S608
        " ON CONFLICT (message_id) DO UPDATE SET data = excluded.data",
        (message_id, json.dumps(inspections_to_list(items), ensure_ascii=False)),
    )
    return True


def load(conn: sqlite3.Connection, message_id: str) -> tuple[TokenInspection, ...]:
    row = conn.execute(
        f"SELECT data FROM {TABLE} WHERE message_id = ?",  # noqa: S608
        (message_id,),
    ).fetchone()
    return _decode(message_id, row[0]) if row is not None else ()


def load_for_chat(conn: sqlite3.Connection, chat_id: str) -> dict[str, tuple[TokenInspection, ...]]:
    """Every record of one chat's replies, by message id."""
    found = conn.execute(
        f"SELECT t.message_id, t.data FROM {TABLE} AS t"  # noqa: S608
        " JOIN messages AS m ON m.id = t.message_id WHERE m.conversation_id = ?",
        (chat_id,),
    ).fetchall()
    out: dict[str, tuple[TokenInspection, ...]] = {}
    for message_id, data in found:
        items = _decode(str(message_id), data)
        if items:
            out[str(message_id)] = items
    return out


def _decode(message_id: str, data: object) -> tuple[TokenInspection, ...]:
    try:
        if not isinstance(data, str):
            raise ValueError(f"stored as {type(data).__name__}, not text")
        return inspections_from_list(json.loads(data), "inspection")
    except (ValueError, RecursionError) as error:
        log.warning("the token inspector's records of %s are unreadable: %s", message_id, error)
        return ()
