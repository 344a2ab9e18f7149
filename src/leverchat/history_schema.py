"""The history database's schema: its migrations, the checks that refuse a database we must
not touch, and the errors the store raises (split out of history.py; the store re-exports them).

MIGRATIONS[i] takes a database from schema version i to i + 1. A new database runs every
migration in order, so the upgrade path is exercised on every fresh start. Never edit a
released migration: add a new one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from leverchat import branch
from leverchat import history_inspection as inspections
from leverchat.userfile import special_file_reason

BUSY_TIMEOUT_S: Final = 10.0
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


class HistoryError(Exception):
    """A history problem the user can act on; the message names the file and what to do."""


class HistoryUnavailable(HistoryError):
    """The database was refused (newer version, corrupt, not ours) and left untouched."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class ConversationNotFound(HistoryError):
    """No conversation (or message) with the given id."""


# --------------------------------------------------------------------------------------------
# Schema and migrations

_STATUS_CHECK = "status IN ('complete', 'streaming', 'stopped', 'failed', 'interrupted')"
_PROVENANCE_COLUMNS = """
    model TEXT,
    profile TEXT,
    system_prompt TEXT,
    seed INTEGER,
    stop_reason TEXT,
    error TEXT,
    levers TEXT,
    lever_changes TEXT,
    stats TEXT
"""
PROVENANCE_NAMES = (
    "model, profile, system_prompt, seed, stop_reason, error, levers, lever_changes, stats"
)


BRANCH_NAMES_LIST: Final = branch.COLUMN_NAMES
_BRANCH_TYPES: Final = ("TEXT", "INTEGER", "INTEGER", "TEXT", "TEXT", "TEXT")
BRANCH_NAMES: Final = ", ".join(BRANCH_NAMES_LIST)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    """The first schema: chats and their messages in a single line (``position``)."""
    conn.execute(
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            profile TEXT NOT NULL DEFAULT '',
            system_prompt TEXT NOT NULL DEFAULT '',
            levers TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX conversations_by_update ON conversations (updated_at)")
    conn.execute(
        f"""
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            {_PROVENANCE_COLUMNS},
            UNIQUE (conversation_id, position)
        )
        """
    )


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Alternatives: messages become a tree (``parent_id``) with one active version each.

    SQLite cannot drop a constraint, so the table is rebuilt (create, copy, drop, rename);
    the caller has switched foreign keys off and checks them before committing.
    """
    conn.execute(
        f"""
        CREATE TABLE messages_v2 (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            {_PROVENANCE_COLUMNS}
        )
        """
    )
    # Each message's parent is the one just before it in its chat.
    conn.execute(
        f"""
        INSERT INTO messages_v2 (
            seq, id, conversation_id, parent_id, active, role, content, status,
            created_at, updated_at, {PROVENANCE_NAMES}
        )
        SELECT seq, id, conversation_id,
               LAG(id) OVER (PARTITION BY conversation_id ORDER BY position),
               1, role, content, status, created_at, updated_at, {PROVENANCE_NAMES}
        FROM messages
        ORDER BY seq
        """  # noqa: S608 (constant column lists)
    )
    conn.execute("DROP TABLE messages")
    conn.execute("ALTER TABLE messages_v2 RENAME TO messages")
    conn.execute("CREATE INDEX messages_by_parent ON messages (conversation_id, parent_id)")
    conn.execute("CREATE INDEX messages_by_parent_id ON messages (parent_id)")
    conn.execute(
        "CREATE UNIQUE INDEX one_active_version"
        " ON messages (conversation_id, coalesce(parent_id, '')) WHERE active = 1"
    )


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Schema 4: versions form a tree. A version branched from another one's tokens records
    which version, where (token index, character offset) and the start it continued from.
    New nullable columns only: every existing row stays as it was (NULL: not a branch)."""
    for name, kind in zip(BRANCH_NAMES_LIST, _BRANCH_TYPES, strict=True):
        conn.execute(f"ALTER TABLE messages ADD COLUMN {name} {kind}")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[Migration, ...] = (
    _migrate_0_to_1,
    _migrate_1_to_2,
    inspections.migrate_2_to_3,
    _migrate_3_to_4,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_CONVERSATION_COLUMNS = frozenset(
    {"id", "title", "created_at", "updated_at", "profile", "system_prompt", "levers"}
)
_MESSAGE_COLUMNS = frozenset(
    {
        "seq", "id", "conversation_id", "role", "content", "status", "created_at", "updated_at",
        *(name.strip() for name in PROVENANCE_NAMES.split(",")),
    }
)  # fmt: skip
# The tables and columns each schema version must have; anything less is not our database.
REQUIRED_COLUMNS: Final[dict[int, dict[str, frozenset[str]]]] = {
    1: {
        "conversations": _CONVERSATION_COLUMNS,
        "messages": _MESSAGE_COLUMNS | {"position"},
    },
    2: {
        "conversations": _CONVERSATION_COLUMNS,
        "messages": _MESSAGE_COLUMNS | {"parent_id", "active"},
    },
    3: {
        "conversations": _CONVERSATION_COLUMNS,
        "messages": _MESSAGE_COLUMNS | {"parent_id", "active"},
        inspections.TABLE: inspections.COLUMNS,
    },
    4: {
        "conversations": _CONVERSATION_COLUMNS,
        "messages": _MESSAGE_COLUMNS | {"parent_id", "active", *BRANCH_NAMES_LIST},
        inspections.TABLE: inspections.COLUMNS,
    },
}


def schema_problem(conn: sqlite3.Connection, version: int) -> str | None:
    """Why the schema does not match ``version`` (None when it does)."""
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if version == 0:
        if tables:
            return "it has tables of another program: " + ", ".join(sorted(tables))
        return None
    for table, required in REQUIRED_COLUMNS[version].items():
        if table not in tables:
            return f"table '{table}' is missing"
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = sorted(required - present)
        if missing:
            return f"table '{table}' lacks column(s) " + ", ".join(missing)
    return None


def migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> int:
    """Bring the database up to schema ``target`` in one transaction; return the old version.

    Anything failing rolls everything back. The version is read inside the write transaction,
    so two processes opening a new database at once migrate it only once.
    """
    # Foreign keys must be off for a table rebuild, and the pragma is ignored inside a
    # transaction, so it is switched here; foreign_key_check runs before the commit.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            _refuse_unknown(conn, path, version)
            for step in range(version, target):
                MIGRATIONS[step](conn)
            if version < target:
                problems = conn.execute("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise HistoryError(
                        f"migrating {path} to schema {target} broke {len(problems)} "
                        "reference(s); nothing was changed"
                    )
                conn.execute(f"PRAGMA user_version = {int(target)}")
            conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return version


def _refuse_unknown(conn: sqlite3.Connection, path: Path, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise HistoryUnavailable(
            path,
            f"{path} was written by a newer leverchat (history schema version {version}; this "
            f"version knows up to {SCHEMA_VERSION}). It was left untouched: upgrade leverchat "
            "to open it.",
        )
    if version < 0:
        raise HistoryUnavailable(path, _not_ours(path, f"its schema version is {version}"))
    problem = schema_problem(conn, version)
    if problem is not None:
        raise HistoryUnavailable(path, _not_ours(path, problem))


def _not_ours(path: Path, why: str) -> str:
    return (
        f"{path} is not a leverchat history database ({why}). It was left untouched: move it "
        "aside (or set LEVERCHAT_DATA_DIR) to start a new history."
    )


def damaged(path: Path, why: str) -> str:
    return (
        f"{path} is damaged ({why}). It was left untouched: restore it from a backup, or move "
        "it aside to start a new history (the sqlite3 tool's .recover may rescue its chats)."
    )


def check_database_file(path: Path) -> None:
    """Refuse an existing file that is not a healthy history database we can open.

    Reads only: the header with plain file I/O, then a read-only SQLite connection (which
    can neither write nor checkpoint), so a refused file stays byte-for-byte as it was.
    """
    if not path.exists():
        return
    if path.is_dir():
        raise HistoryUnavailable(path, f"{path} is a folder, not a history database file.")
    if (special := special_file_reason(path)) is not None:  # a FIFO would block the open
        raise HistoryUnavailable(path, f"{path} {special}: move it aside.")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_MAGIC))
    except OSError as error:
        raise HistoryUnavailable(path, f"cannot read {path}: {error.strerror}") from error
    if not header:
        return  # An empty file is an empty SQLite database: it becomes a new history.
    if header != _SQLITE_MAGIC:
        raise HistoryUnavailable(path, _not_ours(path, "it is not an SQLite database"))
    try:
        conn = sqlite3.connect(
            path.resolve().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
        )
    except sqlite3.Error as error:
        raise _check_failed(path, error) from error
    try:
        # One read transaction: every check sees the same snapshot. Without it, another
        # process creating the schema between the version read and the table listing made a
        # brand-new history look like "tables of another program" (two starts at once).
        conn.execute("BEGIN")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            _refuse_unknown(conn, path, version)
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            found = "; ".join(" ".join(str(problem).split()) for problem in problems)
            raise HistoryUnavailable(path, damaged(path, found[:300]))
        _refuse_unknown(conn, path, version)
    except sqlite3.Error as error:
        raise _check_failed(path, error) from error
    finally:
        rollback_quietly(conn)
        conn.close()


def _check_failed(path: Path, error: sqlite3.Error) -> HistoryError:
    """Busy or unreadable is not damaged: only real damage gets the 'damaged' advice."""
    text = str(error)
    if "locked" in text or "busy" in text:
        return HistoryError(f"the history {path} is busy (another leverchat is writing); retry")
    if "unable to open" in text or "readonly" in text or "permission" in text.lower():
        return HistoryUnavailable(
            path,
            f"cannot open the history {path} ({text}); check its "
            "permissions. It was left untouched.",
        )
    return HistoryUnavailable(path, damaged(path, text))


def switch_to_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another process holds the file.

    Switching a new database to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, while another connection reads the file: two
    leverchat starts on a fresh install (one checking the file, one switching) failed so.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            text = str(error)
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def rollback_quietly(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # The original error is the one worth reporting.
