"""Conversation history in one SQLite database (``paths.history_db()``).

Durability: the database runs in WAL mode with ``synchronous=NORMAL``: a committed write
survives the process being killed at any moment (``kill -9`` included); a power cut can lose
the last second of writes but never corrupts the file. Every write is one short
``BEGIN IMMEDIATE`` transaction, and a busy timeout lets several leverchat processes share the
file.

Alternatives: messages form a tree. Each message has a parent (the message it follows; None
for the first one) and the messages that share a parent are the *versions* of one turn: a
regenerated reply or an edited user message. Exactly one version per parent is *active*; the
conversation the user sees is the path of active versions from the root. Adding a message
makes it the active version, so regenerating keeps the old reply and continuing from an older
version (after :meth:`HistoryStore.select_version`) keeps the newer branch.

Safety: a database written by a newer leverchat, or one that is not a leverchat history
database, or one that fails ``PRAGMA integrity_check``, is refused with
:class:`HistoryUnavailable` before anything is written to it. It is never recreated.

Threads: one :class:`HistoryStore` holds one connection guarded by a lock, so an instance may
be shared between threads (every call is serialised). Separate instances, in one process or
several, each have their own connection and may write at the same time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from leverchat import history_inspection as inspections
from leverchat import history_rows as rows
from leverchat import paths
from leverchat.chat import (
    Conversation,
    Message,
    MessageStatus,
    ReplyProvenance,
    new_id,
    title_from,
)
from leverchat.engine.inspection import TokenInspection
from leverchat.engine.types import Role

# The public names other modules and tests import from here live in these two modules now.
from leverchat.history_codec import (
    lever_change_from_mapping,
    lever_change_to_mapping,
    levers_to_json,
    provenance_columns,
    provenance_from_columns,
    provenance_from_mapping,
    provenance_to_mapping,
    stats_from_mapping,
    stats_to_mapping,
)
from leverchat.history_rows import SkippedRecord
from leverchat.history_schema import (
    BRANCH_NAMES,
    BUSY_TIMEOUT_S,
    MIGRATIONS,
    PROVENANCE_NAMES,
    REQUIRED_COLUMNS,
    SCHEMA_VERSION,
    ConversationNotFound,
    HistoryError,
    HistoryUnavailable,
    Migration,
    check_database_file,
    damaged,
    migrate,
    rollback_quietly,
    schema_problem,
    switch_to_wal,
)
from leverchat.levers import Levers

__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "REQUIRED_COLUMNS",
    "SCHEMA_VERSION",
    "ConversationInfo",
    "ConversationNotFound",
    "ConversationRecord",
    "HistoryError",
    "HistoryStore",
    "HistoryUnavailable",
    "Migration",
    "SearchHit",
    "SkippedRecord",
    "StoredMessage",
    "check_database_file",
    "lever_change_from_mapping",
    "lever_change_to_mapping",
    "levers_to_json",
    "migrate",
    "provenance_from_mapping",
    "provenance_to_mapping",
    "schema_problem",
    "stats_from_mapping",
    "stats_to_mapping",
]

_T = TypeVar("_T")

# A reply's provenance columns: what produced it, then where it branched (schema 4).
_STORED_PROVENANCE = f"{PROVENANCE_NAMES}, {BRANCH_NAMES}"
_PROVENANCE_COUNT = len(_STORED_PROVENANCE.split(","))
# A message row: 8 columns of its own, the provenance, then (the active path) its version.
_VERSION = 8 + _PROVENANCE_COUNT
_UPDATE_PROVENANCE_SQL = (
    f"UPDATE messages SET ({_STORED_PROVENANCE}) = ({', '.join('?' * _PROVENANCE_COUNT)})"  # noqa: S608
    " WHERE id = ?"
)

# Kept under its old name: tests and callers reach it as history._switch_to_wal.
_switch_to_wal = switch_to_wal


# --------------------------------------------------------------------------------------------
# Records the store hands out


@dataclass(frozen=True)
class ConversationInfo:
    """One chat as the chat list shows it, plus the settings in effect at its end."""

    id: str
    title: str
    created: datetime
    updated: datetime
    message_count: int
    profile: str
    system_prompt: str
    levers: Levers
    # Why this chat's stored settings cannot be read (listed anyway, so it can be deleted).
    problem: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    """One message exactly as stored, alternatives included (see ``ConversationRecord``)."""

    id: str
    parent_id: str | None
    role: Role
    content: str
    status: MessageStatus
    active: bool
    created: datetime
    updated: datetime
    provenance: ReplyProvenance | None = None
    # The token inspector's records, when the reply was generated with it on (export only).
    inspection: tuple[TokenInspection, ...] = ()

    def to_message(self, *, version: int = 1, version_count: int = 1) -> Message:
        return Message(
            role=self.role,
            content=self.content,
            id=self.id,
            status=self.status,
            provenance=self.provenance,
            version=version,
            version_count=version_count,
        )


@dataclass(frozen=True)
class ConversationRecord:
    """Everything stored about one chat: every version of every message, parents first."""

    info: ConversationInfo
    messages: tuple[StoredMessage, ...]
    # Messages left out because a stored value could not be read (with what hung from them).
    skipped: tuple[SkippedRecord, ...] = ()


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    message_id: str
    role: Role
    snippet: str
    updated: datetime


# --------------------------------------------------------------------------------------------
# The store


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    # One fixed format, so text order is time order in SQL.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


_MESSAGE_SELECT = f"""
    id, parent_id, active, role, content, status, created_at, updated_at,
    {_STORED_PROVENANCE}
"""

# The active path of one chat, with each message's version number among its siblings.
_ACTIVE_PATH_SQL = f"""
    WITH RECURSIVE
    numbered AS (
        SELECT *,
               ROW_NUMBER() OVER (PARTITION BY parent_id ORDER BY seq) AS version,
               COUNT(*) OVER (PARTITION BY parent_id) AS version_count
        FROM messages WHERE conversation_id = :conversation
    ),
    path (id, depth) AS (
        SELECT id, 0 FROM numbered WHERE parent_id IS NULL AND active = 1
        UNION ALL
        SELECT numbered.id, path.depth + 1
        FROM numbered JOIN path ON numbered.parent_id = path.id
        WHERE numbered.active = 1
    )
    SELECT {_MESSAGE_SELECT}, version, version_count
    FROM path JOIN numbered USING (id)
    ORDER BY path.depth
"""  # noqa: S608 (constant column lists)

# Active-path length of every chat (the "messages" column of the chat list).
_PATH_COUNTS_SQL = """
    WITH RECURSIVE path (id, conversation_id) AS (
        SELECT id, conversation_id FROM messages WHERE parent_id IS NULL AND active = 1
        UNION ALL
        SELECT messages.id, messages.conversation_id
        FROM messages JOIN path ON messages.parent_id = path.id
        WHERE messages.active = 1
    )
    SELECT conversation_id, COUNT(*) AS message_count FROM path GROUP BY conversation_id
"""

_INFO_SELECT = f"""
    WITH counts AS ({_PATH_COUNTS_SQL})
    SELECT c.id, c.title, c.created_at, c.updated_at, coalesce(counts.message_count, 0),
           c.profile, c.system_prompt, c.levers
    FROM conversations AS c LEFT JOIN counts ON counts.conversation_id = c.id
"""  # noqa: S608 (constant column lists)


class HistoryStore:
    """Conversations and messages in SQLite; see the module docstring for the guarantees.

    Opening marks every reply left ``streaming`` (its process was killed) as ``interrupted``;
    their ids are in :attr:`interrupted_on_open`. A reply still streaming in another running
    leverchat is marked too, and becomes ``streaming`` again at its next
    :meth:`update_reply`, so nothing is lost.

    How the chat screen uses it (``conv`` is its ``chat.Conversation``)::

        store.create_conversation(conversation_id=conv.id, profile=..., levers=...)
        parent = conv.messages[-1].id if conv.messages else None
        conv = conv.with_message(store.add_user_message(conv.id, text, parent_id=parent))
        reply = store.start_reply(conv.id, parent_id=conv.messages[-1].id, provenance=...)
        conv = conv.with_message(reply)
        store.update_reply(reply.id, text_so_far)               # at most once a second
        store.finish_reply(reply.id, text, status=..., provenance=...)
        # Regenerate: conv.without_last_reply(), then start_reply() with the same parent.
        # Step between versions: store.versions(id), then conv = store.select_version(id).
        # Resume: store.most_recent_id(), store.load_conversation(id), store.get_info(id).
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path) if path is not None else paths.history_db()
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        check_database_file(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise HistoryError(
                f"cannot create the folder {self.path.parent} for the history: {error.strerror}"
            ) from error
        self._conn: sqlite3.Connection | None = self._connect()
        try:
            self.migrated_from = migrate(self._conn, self.path)
            self.interrupted_on_open = self._mark_interrupted()
        except sqlite3.Error as error:
            self.close()
            raise self._wrap(error) from error
        except BaseException:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # explicit BEGIN/COMMIT only
                check_same_thread=False,  # guarded by self._lock instead
            )
        except sqlite3.Error as error:
            raise HistoryError(f"cannot open the history {self.path}: {error}") from error
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            switch_to_wal(conn, self._busy_timeout_s)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("casefold", 1, _casefold, deterministic=True)
            # Invalid UTF-8 arrives as bytes (reported per row) instead of failing the query.
            conn.text_factory = rows.decode_text
        except sqlite3.Error as error:
            conn.close()
            raise self._wrap(error) from error
        return conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wrap(self, error: sqlite3.Error) -> HistoryError:
        text = str(error)
        if "locked" in text or "busy" in text:
            return HistoryError(
                f"the history {self.path} stayed busy for {self._busy_timeout_s:g} s (another "
                "leverchat is writing to it); try again"
            )
        if isinstance(error, sqlite3.IntegrityError):
            return HistoryError(f"refused by the history {self.path}: {text}")
        if "malformed" in text or "not a database" in text:
            return HistoryUnavailable(self.path, damaged(self.path, text))
        return HistoryError(f"the history {self.path} failed: {text}")

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (taken at once, so it never fails half-way on a busy lock)."""
        return self._in_transaction("BEGIN IMMEDIATE")

    def _snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """A read transaction: several queries see one consistent state."""
        return self._in_transaction("BEGIN")

    @contextmanager
    def _in_transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._open_connection()
            try:
                conn.execute(begin)
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                rollback_quietly(conn)
                raise self._wrap(error) from error
            except BaseException:
                rollback_quietly(conn)
                raise

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistoryError(f"the history {self.path} was closed")
        return self._conn

    def _mark_interrupted(self) -> tuple[str, ...]:
        with self._transaction() as conn:
            rows = conn.execute(
                "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming' RETURNING id"
            ).fetchall()
        return tuple(row[0] for row in rows)

    # -- conversations ---------------------------------------------------------------------

    def create_conversation(
        self,
        *,
        conversation_id: str | None = None,
        title: str = "",
        profile: str = "",
        system_prompt: str = "",
        levers: Levers | None = None,
    ) -> str:
        """Store a new, empty chat and return its id (a new one unless given)."""
        chat_id = conversation_id or new_id()
        now = _timestamp(self._clock())
        with self._transaction() as conn:
            inserted = conn.execute(
                """
                INSERT INTO conversations
                    (id, title, created_at, updated_at, profile, system_prompt, levers)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """,
                (
                    chat_id, title.strip(), now, now, profile, system_prompt,
                    levers_to_json(levers or Levers()),
                ),
            ).rowcount  # fmt: skip
            if not inserted:
                raise HistoryError(f"a chat with id {chat_id} already exists in {self.path}")
        return chat_id

    def set_conversation_settings(
        self,
        conversation_id: str,
        *,
        profile: str | None = None,
        system_prompt: str | None = None,
        levers: Levers | None = None,
    ) -> None:
        """Record the profile, system prompt or levers now in effect (None keeps a value)."""
        with self._transaction() as conn:
            row = conn.execute(
                """
                UPDATE conversations SET
                    profile = coalesce(?, profile),
                    system_prompt = coalesce(?, system_prompt),
                    levers = coalesce(?, levers)
                WHERE id = ? RETURNING id
                """,
                (
                    profile, system_prompt, levers_to_json(levers) if levers else None,
                    conversation_id,
                ),
            ).fetchone()  # fmt: skip
            if row is None:
                raise self._no_chat(conversation_id)

    def rename_conversation(self, conversation_id: str, title: str) -> None:
        clean = " ".join(title.split())
        if not clean:
            raise HistoryError("a chat title cannot be empty")
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ? RETURNING id",
                (clean, conversation_id),
            ).fetchone()
            if row is None:
                raise self._no_chat(conversation_id)

    def delete_conversation(self, conversation_id: str) -> bool:
        """Delete one chat and all its messages; False when there was no such chat."""
        with self._transaction() as conn:
            return (
                conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount
                > 0
            )

    def list_conversations(self, *, limit: int | None = None) -> list[ConversationInfo]:
        """Every chat, most recently active first."""
        sql = _INFO_SELECT + " ORDER BY c.updated_at DESC, c.rowid DESC"
        parameters: tuple[int, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            parameters = (max(limit, 0),)
        with self._snapshot() as conn:
            found = conn.execute(sql, parameters).fetchall()
        # Lenient: one unreadable chat is listed with its problem, never hides the others.
        return [self._info_from_row(row, lenient=True) for row in found]

    def most_recent_id(self) -> str | None:
        """The chat with the latest activity (for ``leverchat --continue``), or None."""
        with self._snapshot() as conn:
            row = conn.execute(
                "SELECT id FROM conversations WHERE typeof(updated_at) = 'text'"
                " ORDER BY updated_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def get_info(self, conversation_id: str, *, lenient: bool = False) -> ConversationInfo:
        """One chat's info; ``lenient``: unreadable settings set ``problem`` instead of raising."""
        with self._snapshot() as conn:
            return self._info(conn, conversation_id, lenient=lenient)

    def resolve_id(self, prefix: str) -> str:
        """The one chat id that starts with ``prefix`` (an exact id always wins)."""
        prefix = prefix.strip()
        if not prefix:
            raise HistoryError("give a chat id (or the first characters of one)")
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT id FROM conversations WHERE substr(id, 1, ?) = ?"
                " ORDER BY updated_at DESC LIMIT 6",
                (len(prefix), prefix),
            ).fetchall()
        ids = [str(row[0]) for row in rows]
        if prefix in ids:
            return prefix
        if not ids:
            raise ConversationNotFound(f"no chat id starts with '{prefix}' in {self.path}")
        if len(ids) > 1:
            shown = ", ".join(chat_id[: len(prefix) + 4] for chat_id in ids[:5])
            more = " and more" if len(ids) > 5 else ""
            raise HistoryError(
                f"'{prefix}' matches several chats ({shown}{more}): type more characters"
            )
        return ids[0]

    def load_conversation(self, conversation_id: str) -> Conversation:
        """The chat as the user sees it: the active version of every turn, in order."""
        return self.read_conversation(conversation_id)[0]

    def read_conversation(
        self, conversation_id: str
    ) -> tuple[Conversation, tuple[SkippedRecord, ...]]:
        """:meth:`load_conversation`, plus the messages left out as unreadable (to report)."""
        with self._snapshot() as conn:
            return self._load(conn, conversation_id)

    def export_record(self, conversation_id: str) -> ConversationRecord:
        """Everything about one chat, every version of every message included."""
        with self._snapshot() as conn:
            info = self._info(conn, conversation_id)
            found = conn.execute(
                f"SELECT {_MESSAGE_SELECT} FROM messages WHERE conversation_id = ? ORDER BY seq",  # noqa: S608
                (conversation_id,),
            ).fetchall()
            inspected = inspections.load_for_chat(conn, conversation_id)
        messages, skipped = rows.collect(
            found, self._checked_message, conversation_id, drop_descendants=True
        )
        messages = [
            replace(message, inspection=inspected[message.id])
            if message.id in inspected
            else message
            for message in messages
        ]
        return ConversationRecord(info, tuple(messages), skipped)

    def import_record(self, record: ConversationRecord) -> str:
        """Store a chat from an export (same ids); refused if its id is already here."""
        info = record.info
        with self._transaction() as conn:
            exists = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (info.id,))
            if exists.fetchone() is not None:
                raise HistoryError(f"a chat with id {info.id} already exists in {self.path}")
            conn.execute(
                """
                INSERT INTO conversations
                    (id, title, created_at, updated_at, profile, system_prompt, levers)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    info.id, info.title, _timestamp(info.created), _timestamp(info.updated),
                    info.profile, info.system_prompt, levers_to_json(info.levers),
                ),
            )  # fmt: skip
            seen: set[str] = set()
            for message in record.messages:
                if message.parent_id is not None and message.parent_id not in seen:
                    raise HistoryError(
                        f"message {message.id} comes before its parent {message.parent_id}"
                        " (or the parent is missing); nothing was imported"
                    )
                seen.add(message.id)
                self._insert_message(conn, info.id, message)
        return info.id

    def search(self, text: str, *, limit: int = 50) -> list[SearchHit]:
        """Messages containing ``text`` (any case), newest first, alternatives included."""
        needle = text.strip()
        if not needle:
            raise HistoryError("give some text to search for")
        with self._snapshot() as conn:
            found = conn.execute(
                """
                SELECT m.conversation_id, c.title, m.id, m.role, m.content, m.updated_at
                FROM messages AS m JOIN conversations AS c ON c.id = m.conversation_id
                WHERE typeof(m.content) = 'text'
                  AND instr(casefold(CAST(m.content AS BLOB)), ?) > 0
                ORDER BY m.updated_at DESC, m.seq DESC
                LIMIT ?
                """,
                (_casefold(needle), max(limit, 0)),
            ).fetchall()
        hits = []
        for row in found:
            try:
                hits.append(
                    SearchHit(
                        conversation_id=rows.text(row[0], "chat id"),
                        title=row[1] if isinstance(row[1], str) else "",
                        message_id=rows.text(row[2], "id"),
                        role=cast(Role, rows.text(row[3], "role")),
                        snippet=_snippet(rows.text(row[4], "content"), needle),
                        updated=rows.timestamp(row[5], "updated_at"),
                    )
                )
            except rows.RowProblem:
                continue  # An unreadable message is reported where its chat is opened.
        return hits

    # -- messages --------------------------------------------------------------------------

    def add_user_message(
        self,
        conversation_id: str,
        text: str,
        *,
        parent_id: str | None,
        message_id: str | None = None,
    ) -> Message:
        """Save a user message the moment it is sent, as the active version after ``parent_id``.

        ``parent_id`` is the message it follows: the last message of the chat the user sees
        (None for the first). Sending after an edit makes a new version of a user message.
        """
        return self._add(
            conversation_id, "user", text, MessageStatus.COMPLETE, parent_id, message_id, None
        )

    def start_reply(
        self,
        conversation_id: str,
        *,
        parent_id: str,
        provenance: ReplyProvenance | None = None,
        message_id: str | None = None,
    ) -> Message:
        """Save an empty ``streaming`` reply to ``parent_id`` (a user message) and return it.

        A reply that already answers ``parent_id`` is kept as an older version: this is how
        regenerating keeps alternatives. Pass the provenance known at the start (model,
        profile, system prompt, levers, seed) so a killed reply still has it.
        """
        return self._add(
            conversation_id,
            "assistant",
            "",
            MessageStatus.STREAMING,
            parent_id,
            message_id,
            provenance,
        )

    def update_reply(self, message_id: str, text: str) -> bool:
        """Save the text a reply has streamed so far (cheap: one row). False if unknown.

        A reply another process marked interrupted (it thought this one was dead) becomes
        ``streaming`` again; a finished reply is never touched.
        """
        with self._transaction() as conn:
            return (
                conn.execute(
                    """
                    UPDATE messages SET content = ?, status = 'streaming', updated_at = ?
                    WHERE id = ? AND role = 'assistant'
                      AND status IN ('streaming', 'interrupted')
                    """,
                    (text, _timestamp(self._clock()), message_id),
                ).rowcount
                > 0
            )

    def finish_reply(
        self,
        message_id: str,
        text: str,
        *,
        status: MessageStatus,
        provenance: ReplyProvenance | None = None,
    ) -> bool:
        """Store a reply's final text, status and provenance (None keeps the one from start).

        The chat's profile, system prompt and levers become those in effect at the end of
        this reply (its last lever change). False if the reply is unknown (deleted).
        """
        if status is MessageStatus.STREAMING:
            raise ValueError("finish_reply needs a final status, not 'streaming'")
        now = _timestamp(self._clock())
        with self._transaction() as conn:
            row = conn.execute(
                "UPDATE messages SET content = ?, status = ?, updated_at = ?"
                " WHERE id = ? AND role = 'assistant' RETURNING conversation_id",
                (text, status.value, now, message_id),
            ).fetchone()
            if row is None:
                return False
            chat_id = str(row[0])
            if provenance is not None:
                conn.execute(
                    _UPDATE_PROVENANCE_SQL,
                    (*provenance_columns(provenance), message_id),
                )
            else:
                stored = conn.execute(
                    f"SELECT {_STORED_PROVENANCE} FROM messages WHERE id = ?",  # noqa: S608
                    (message_id,),
                ).fetchone()
                provenance = self._provenance_from_columns(stored, message_id)
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, chat_id))
            if provenance is not None:
                final = provenance.lever_changes[-1].levers if provenance.lever_changes else None
                conn.execute(
                    "UPDATE conversations SET profile = ?, system_prompt = ?, levers = ?"
                    " WHERE id = ?",
                    (
                        provenance.profile,
                        provenance.system_prompt,
                        levers_to_json(final or provenance.levers),
                        chat_id,
                    ),
                )
        return True

    def save_inspection(self, message_id: str, items: Sequence[TokenInspection]) -> bool:
        """Store the token inspector's records of a reply; False if the reply is unknown."""
        with self._transaction() as conn:
            return inspections.save(conn, message_id, items)

    def inspection(self, message_id: str) -> tuple[TokenInspection, ...]:
        """A reply's token inspector records (empty: it was generated with the inspector off)."""
        with self._snapshot() as conn:
            return inspections.load(conn, message_id)

    def versions(self, message_id: str) -> tuple[Message, ...]:
        """Every version of the turn ``message_id`` belongs to, oldest first (it included)."""
        with self._snapshot() as conn:
            chat_id, parent_id = self._locate(conn, message_id)
            found = conn.execute(
                f"SELECT {_MESSAGE_SELECT} FROM messages"  # noqa: S608
                " WHERE conversation_id = ? AND parent_id IS ? ORDER BY seq",
                (chat_id, parent_id),
            ).fetchall()
        readable, _ = rows.collect(found, self._checked_message, chat_id)  # said on opening
        count = len(readable)
        return tuple(
            stored.to_message(version=index, version_count=count)
            for index, stored in enumerate(readable, start=1)
        )

    def select_version(self, message_id: str) -> Conversation:
        """Make ``message_id`` the active version of its turn; return the chat as now seen.

        What follows it is the branch that grew from this version (nothing, if none did).
        """
        with self._transaction() as conn:
            chat_id, parent_id = self._locate(conn, message_id)
            conn.execute(
                "UPDATE messages SET active = 0"
                " WHERE conversation_id = ? AND parent_id IS ? AND active = 1",
                (chat_id, parent_id),
            )
            conn.execute("UPDATE messages SET active = 1 WHERE id = ?", (message_id,))
        return self.load_conversation(chat_id)

    # -- internals -------------------------------------------------------------------------

    def _add(
        self,
        conversation_id: str,
        role: Role,
        text: str,
        status: MessageStatus,
        parent_id: str | None,
        message_id: str | None,
        provenance: ReplyProvenance | None,
    ) -> Message:
        now = self._clock()
        stored = StoredMessage(
            id=message_id or new_id(),
            parent_id=parent_id,
            role=role,
            content=text,
            status=status,
            active=True,
            created=now,
            updated=now,
            provenance=provenance,
        )
        with self._transaction() as conn:
            chat = conn.execute(
                "SELECT title FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if chat is None:
                raise self._no_chat(conversation_id)
            if parent_id is not None:
                parent = conn.execute(
                    "SELECT conversation_id FROM messages WHERE id = ?", (parent_id,)
                ).fetchone()
                if parent is None or parent[0] != conversation_id:
                    raise ConversationNotFound(
                        f"message {parent_id} is not in chat {conversation_id} ({self.path})"
                    )
            if conn.execute("SELECT 1 FROM messages WHERE id = ?", (stored.id,)).fetchone():
                raise HistoryError(f"a message with id {stored.id} already exists")
            conn.execute(
                "UPDATE messages SET active = 0"
                " WHERE conversation_id = ? AND parent_id IS ? AND active = 1",
                (conversation_id, parent_id),
            )
            self._insert_message(conn, conversation_id, stored)
            count = int(
                conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE conversation_id = ? AND parent_id IS ?",
                    (conversation_id, parent_id),
                ).fetchone()[0]
            )
            title = chat[0] or (title_from(text) if role == "user" else "")
            conn.execute(
                "UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?",
                (_timestamp(now), title, conversation_id),
            )
        return stored.to_message(version=count, version_count=count)

    def _insert_message(
        self, conn: sqlite3.Connection, conversation_id: str, message: StoredMessage
    ) -> None:
        provenance = (
            provenance_columns(message.provenance)
            if message.provenance
            else (None,) * _PROVENANCE_COUNT
        )
        conn.execute(
            f"""
            INSERT INTO messages (
                id, conversation_id, parent_id, active, role, content, status,
                created_at, updated_at, {_STORED_PROVENANCE}
            ) VALUES ({", ".join("?" * (9 + _PROVENANCE_COUNT))})
            """,  # noqa: S608 (constant column lists)
            (
                message.id,
                conversation_id,
                message.parent_id,
                int(message.active),
                message.role,
                message.content,
                message.status.value,
                _timestamp(message.created),
                _timestamp(message.updated),
                *provenance,
            ),
        )
        if message.inspection:
            inspections.save(conn, message.id, message.inspection)

    def _locate(self, conn: sqlite3.Connection, message_id: str) -> tuple[str, str | None]:
        row = conn.execute(
            "SELECT conversation_id, parent_id FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if row is None:
            raise ConversationNotFound(f"no message {message_id} in {self.path}")
        return str(row[0]), row[1]

    def _no_chat(self, conversation_id: str) -> ConversationNotFound:
        return ConversationNotFound(f"no chat {conversation_id} in {self.path}")

    def _info(
        self, conn: sqlite3.Connection, conversation_id: str, *, lenient: bool = False
    ) -> ConversationInfo:
        row = conn.execute(_INFO_SELECT + " WHERE c.id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise self._no_chat(conversation_id)
        return self._info_from_row(row, lenient=lenient)

    def _info_from_row(self, row: Sequence[Any], *, lenient: bool = False) -> ConversationInfo:
        """One chat's info; an unreadable field raises, or with ``lenient`` gets a default
        and is named in ``problem`` (so the chat is still listed, opened and deletable)."""
        chat_id = rows.record_id(row[0])
        values, problems = rows.info_fields(row)
        info = ConversationInfo(id=chat_id, message_count=int(row[4]), **values)
        if not problems:
            return info
        problem = "; ".join(problems)
        if not lenient:
            raise HistoryError(
                f"{self.path}: chat {chat_id} cannot be read ({problem}); delete it with "
                f"`leverchat history delete {chat_id}`"
            )
        return replace(info, problem=problem)

    def _load(
        self, conn: sqlite3.Connection, conversation_id: str
    ) -> tuple[Conversation, tuple[SkippedRecord, ...]]:
        chat = conn.execute(
            "SELECT title FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if chat is None:
            raise self._no_chat(conversation_id)
        found = conn.execute(_ACTIVE_PATH_SQL, {"conversation": conversation_id}).fetchall()

        def message(row: Sequence[Any]) -> tuple[Message, str | None]:
            stored, note = self._checked_message(row)
            return stored.to_message(version=row[_VERSION], version_count=row[_VERSION + 1]), note

        # The rest of the chat opens without the unreadable messages; the caller says so.
        messages, skipped = rows.collect(found, message, conversation_id)
        title = chat[0] if isinstance(chat[0], str) else ""
        return Conversation(messages=tuple(messages), id=conversation_id, title=title), skipped

    def _checked_message(self, row: Sequence[Any]) -> tuple[StoredMessage, str | None]:
        """A message row (RowProblem if unreadable); an unreadable provenance is dropped and
        the reason returned, since the text is still the user's."""
        values = rows.message_fields(row)
        try:
            return StoredMessage(
                **values, provenance=provenance_from_columns(row[8:_VERSION])
            ), None
        except ValueError as error:
            reason = f"its provenance cannot be read ({error}); shown without it"
            return StoredMessage(**values), reason

    def _provenance_from_columns(
        self, columns: Sequence[Any], message_id: str
    ) -> ReplyProvenance | None:
        return self._decode(lambda: provenance_from_columns(columns), message_id)

    def _decode(self, decode: Callable[[], _T], record_id: str) -> _T:
        try:
            return decode()
        except ValueError as error:  # json.JSONDecodeError and LeverError are ValueErrors
            raise HistoryError(
                f"{self.path}: record {record_id} holds a value this leverchat cannot read "
                f"({error})"
            ) from error


def _casefold(value: object) -> str | None:
    if isinstance(value, bytes):  # search passes content as a BLOB: invalid UTF-8 must not raise
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value.casefold() if isinstance(value, str) else None


def _snippet(content: str, needle: str, before: int = 30, width: int = 100) -> str:
    """A one-line excerpt of ``content`` around the first match of ``needle``."""
    at = content.lower().find(needle.lower())
    start = max(at - before, 0) if at >= 0 else 0
    excerpt = " ".join(content[start : start + width].split())
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(content) else ""
    return prefix + excerpt + suffix
