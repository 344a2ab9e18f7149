"""Random bytes and random types in the history database's text columns (issue #15).

Each example builds a small history through the real store, then writes hostile values with
raw sqlite3 (as a damaged file or another program would): BLOBs, text that is not UTF-8,
numbers, NULLs, random text, into message content, titles, stored settings and provenance
JSON. It then reads everything back through the real code paths: ``history list``, ``show``
and ``export`` (the CLI functions) and the store calls ``leverchat -c`` uses.

What must hold: nothing raises; every chat is still listed; every untouched message is shown;
every message whose content is unreadable is reported by id; reading never rewrites the
file, which still passes ``PRAGMA integrity_check``.

CI runs a bounded number of examples; set ``LEVERCHAT_FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.chat import MessageStatus, ReplyProvenance
from leverchat.commands import history_cmd
from leverchat.history import HistoryError, HistoryStore
from leverchat.levers import Levers
from leverchat.ui.history_session import HistorySession

EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "30"))
CHATS = 2
TURNS = 2  # user + reply each: four messages a chat

MESSAGE_COLUMNS = (
    "content",
    "created_at",
    "updated_at",
    "model",
    "profile",
    "system_prompt",
    "seed",
    "stop_reason",
    "error",
    "levers",
    "lever_changes",
    "stats",
)
CHAT_COLUMNS = ("title", "profile", "system_prompt", "levers", "created_at", "updated_at")


@dataclass(frozen=True)
class BadText:
    """Bytes written as a TEXT value (so possibly not UTF-8), not as a BLOB."""

    raw: bytes


hostile_values = st.one_of(
    st.binary(max_size=48),
    st.builds(BadText, st.binary(min_size=1, max_size=48)),
    st.text(max_size=48),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.sampled_from(["{}", "[]", "null", "{", '{"temperature": "hot"}', "[" * 2000, "1e999"]),
)
damage = st.one_of(
    st.tuples(
        st.just("messages"),
        st.integers(0, CHATS * TURNS * 2 - 1),
        st.sampled_from(MESSAGE_COLUMNS),
        hostile_values,
    ),
    st.tuples(
        st.just("conversations"),
        st.integers(0, CHATS - 1),
        st.sampled_from(CHAT_COLUMNS),
        hostile_values,
    ),
)


def build(db: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Chats and their messages: chat ids, and (chat id, message id, content) in order."""
    chats: list[str] = []
    messages: list[tuple[str, str, str]] = []
    with HistoryStore(db) as store:
        for chat_number in range(CHATS):
            chat = store.create_conversation(profile="fuzz", levers=Levers(top_k=7))
            chats.append(chat)
            parent = None
            for turn in range(TURNS):
                text = f"user-{chat_number}-{turn}"
                user = store.add_user_message(chat, text, parent_id=None if turn == 0 else parent)
                messages.append((chat, user.id, text))
                reply = store.start_reply(
                    chat,
                    parent_id=user.id,
                    provenance=ReplyProvenance("tiny", "fuzz", "sys", Levers(seed=3), seed=3),
                )
                answer = f"reply-{chat_number}-{turn}"
                store.finish_reply(reply.id, answer, status=MessageStatus.COMPLETE)
                messages.append((chat, reply.id, answer))
                parent = reply.id
    return chats, messages


def write_raw(db: Path, table: str, row_id: str, column: str, value: object) -> bool:
    """Write one hostile value with plain sqlite3; False when SQLite itself refused it."""
    conn = sqlite3.connect(db)
    try:
        if isinstance(value, BadText):
            sql = f"UPDATE {table} SET {column} = CAST(? AS TEXT) WHERE id = ?"
            parameter: object = value.raw
        else:
            sql = f"UPDATE {table} SET {column} = ? WHERE id = ?"
            parameter = value
        conn.execute(sql, (parameter, row_id))
        conn.commit()
        return True
    except sqlite3.IntegrityError:
        return False  # NULL in a NOT NULL column: the schema keeps it out
    finally:
        conn.close()


def run_cli(db: Path, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="leverchat")
    history_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["history", "--database", str(db), *argv])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = int(args.handler(args))
    return code, out.getvalue(), err.getvalue()


def is_text(value: object) -> bool:
    if isinstance(value, BadText):
        try:
            value.raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    # Numbers become text in a TEXT column (SQLite's type affinity); BLOBs and NULLs stay.
    return not isinstance(value, bytes) and value is not None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("LEVERCHAT_FUZZ_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(damages=st.lists(damage, min_size=1, max_size=4))
def test_hostile_values_in_text_columns_never_crash_or_hide_the_history(
    damages: list[tuple[str, int, str, object]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "history.sqlite3"
        chats, messages = build(db)
        touched: set[str] = set()
        unreadable_content: set[str] = set()
        for table, index, column, value in damages:
            row_id = chats[index] if table == "conversations" else messages[index][1]
            if write_raw(db, table, row_id, column, value):
                touched.add(row_id)
                if table == "messages" and column == "content" and not is_text(value):
                    unreadable_content.add(row_id)
        before = hashlib.sha256(db.read_bytes()).digest()

        code, listed, _ = run_cli(db, "list")
        assert code == 0
        for chat in chats:
            assert chat[:8] in listed, "a damaged chat hid another (or itself)"

        for chat in chats:
            code, shown, problems = run_cli(db, "show", chat)
            assert code == 0
            for owner, message_id, text in messages:
                if owner != chat:
                    continue
                if message_id in unreadable_content:
                    assert message_id in problems, "an unreadable message was not reported"
                elif message_id not in touched:
                    assert f"\n{text}\n" in shown, f"untouched message {text} not shown"
            for form in ("md", "json"):
                code, _, problems = run_cli(db, "export", chat, "--format", form)
                # JSON refuses (exit 1, explained) a chat whose settings cannot be read.
                assert code == 0 or (form == "json" and chat in problems), problems

        code, _, _ = run_cli(db, "search", "reply")
        assert code == 0

        # What `leverchat -c` does: the most recent chat, loaded through the UI's session.
        session = HistorySession(HistoryStore(db))
        try:
            for chat in chats:
                try:
                    conversation, _, skipped = session.load(chat)
                except HistoryError as error:
                    assert chat in str(error)  # unreadable settings: refused, naming the chat
                    continue
                shown_ids = {message.id for message in conversation.messages}
                skipped_ids = {record.record_id for record in skipped}
                assert unreadable_content & {m[1] for m in messages if m[0] == chat} <= skipped_ids
                assert all(isinstance(m.content, str) for m in conversation.messages)
                assert not (shown_ids & unreadable_content)
        finally:
            session.close()

        assert hashlib.sha256(db.read_bytes()).digest() == before, "reading rewrote the file"
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()
