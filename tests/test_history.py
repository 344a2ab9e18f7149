"""The SQLite history store: what a user must find again after anything happens."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leverchat import history as history_module
from leverchat import history_schema
from leverchat.chat import Conversation, MessageStatus, ReplyProvenance
from leverchat.engine.types import LeverChange, Stats, StopReason
from leverchat.history import (
    SCHEMA_VERSION,
    ConversationNotFound,
    HistoryError,
    HistoryStore,
    HistoryUnavailable,
    migrate,
)
from leverchat.levers import Levers


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        monkeypatch.setenv(f"LEVERCHAT_{name}_DIR", str(tmp_path / name.lower()))


def ticking_clock(start: datetime | None = None) -> Callable[[], datetime]:
    """A clock that moves one second per call, so 'most recent' never depends on timing."""
    moment = [start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]

    def now() -> datetime:
        moment[0] += timedelta(seconds=1)
        return moment[0]

    return now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(db_path, clock=ticking_clock()) as opened:
        yield opened


def provenance(**overrides: object) -> ReplyProvenance:
    values: dict[str, object] = {
        "model": "tiny-llama",
        "profile": "writer",
        "system_prompt": "You are terse.",
        "levers": Levers(temperature=0.9, top_k=40, seed=1234, stop=("###",)),
        "seed": 1234,
    }
    values.update(overrides)
    return ReplyProvenance(**values)  # type: ignore[arg-type]


def finished_provenance() -> ReplyProvenance:
    return provenance(
        lever_changes=(
            LeverChange(5, Levers(temperature=1.4, top_k=40, stop=("###",)), ("temperature",)),
        ),
        stats=Stats(
            prompt_tokens=20,
            new_tokens=12,
            time_to_first_token_s=0.21,
            total_s=0.96,
            tokens_per_s=12.5,
            context_window=2048,
        ),
        stop_reason=StopReason.END_OF_TURN,
    )


def chat_with_one_exchange(store: HistoryStore, question: str = "Hello?") -> tuple[str, str, str]:
    """A chat with a user message and a finished reply; returns (chat, user, reply) ids."""
    chat_id = store.create_conversation(profile="writer", levers=Levers(temperature=0.9))
    user = store.add_user_message(chat_id, question, parent_id=None)
    reply = store.start_reply(chat_id, parent_id=user.id, provenance=provenance())
    store.finish_reply(
        reply.id, "Hi.", status=MessageStatus.COMPLETE, provenance=finished_provenance()
    )
    return chat_id, user.id, reply.id


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        env[f"LEVERCHAT_{name}_DIR"] = str(tmp_path / name.lower())
    return env


# --------------------------------------------------------------------------------------------
# Opening


def test_default_location_is_the_user_data_folder(tmp_path: Path) -> None:
    with HistoryStore() as opened:
        assert opened.path == tmp_path / "data" / "history.sqlite3"
    assert opened.path.is_file()


def test_new_database_uses_wal_and_the_current_schema(store: HistoryStore, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert store.migrated_from == 0


def test_closed_store_says_so(db_path: Path) -> None:
    opened = HistoryStore(db_path)
    opened.close()
    with pytest.raises(HistoryError, match="closed"):
        opened.list_conversations()


# --------------------------------------------------------------------------------------------
# Conversations and messages


def test_a_saved_chat_comes_back_with_every_provenance_detail(db_path: Path) -> None:
    with HistoryStore(db_path) as first:
        chat_id, user_id, reply_id = chat_with_one_exchange(first, "What is a lever?")
    with HistoryStore(db_path) as second:
        loaded = second.load_conversation(chat_id)
    assert isinstance(loaded, Conversation)
    assert loaded.title == "What is a lever?"
    assert [(m.id, m.role, m.content, m.status) for m in loaded.messages] == [
        (user_id, "user", "What is a lever?", MessageStatus.COMPLETE),
        (reply_id, "assistant", "Hi.", MessageStatus.COMPLETE),
    ]
    assert loaded.messages[0].provenance is None
    assert loaded.messages[1].provenance == finished_provenance()
    assert loaded.to_chat_messages("sys")[1].content == "What is a lever?"


def test_settings_in_effect_at_the_end_are_restored(store: HistoryStore) -> None:
    chat_id, _, _ = chat_with_one_exchange(store)
    info = store.get_info(chat_id)
    # The last lever change made during the last reply wins over the starting levers.
    assert info.levers == Levers(temperature=1.4, top_k=40, stop=("###",))
    assert (info.profile, info.system_prompt) == ("writer", "You are terse.")
    store.set_conversation_settings(chat_id, profile="coder", levers=Levers(temperature=0.1))
    info = store.get_info(chat_id)
    assert (info.profile, info.system_prompt, info.levers.temperature) == (
        "coder",
        "You are terse.",
        0.1,
    )


def test_streaming_updates_save_text_but_never_touch_a_finished_reply(store: HistoryStore) -> None:
    chat_id = store.create_conversation()
    user = store.add_user_message(chat_id, "Count", parent_id=None)
    reply = store.start_reply(chat_id, parent_id=user.id, provenance=provenance())
    assert reply.status is MessageStatus.STREAMING
    assert store.update_reply(reply.id, "one two")
    assert store.load_conversation(chat_id).messages[-1].content == "one two"
    store.finish_reply(reply.id, "one two three", status=MessageStatus.STOPPED)
    assert not store.update_reply(reply.id, "late flush")
    last = store.load_conversation(chat_id).messages[-1]
    assert (last.content, last.status) == ("one two three", MessageStatus.STOPPED)
    assert last.provenance == provenance()  # kept from start_reply
    assert not store.update_reply("no-such-reply", "x")


def test_the_chat_screen_flow_keeps_memory_and_store_in_step(store: HistoryStore) -> None:
    conv = Conversation()
    store.create_conversation(conversation_id=conv.id, profile="writer")
    conv = conv.with_message(store.add_user_message(conv.id, "Hi there", parent_id=None))
    reply = store.start_reply(conv.id, parent_id=conv.messages[-1].id, provenance=provenance())
    conv = conv.with_message(reply)
    store.update_reply(reply.id, "Hel")
    done = finished_provenance()
    store.finish_reply(reply.id, "Hello", status=MessageStatus.COMPLETE, provenance=done)
    conv = conv.with_reply(
        "Hello", status=MessageStatus.COMPLETE, provenance=done, message_id=reply.id
    )
    assert store.load_conversation(conv.id) == conv
    assert conv.title == "Hi there"

    # Regenerate: the new reply is version 2 of 2; both views still agree.
    conv = conv.without_last_reply()
    again = store.start_reply(conv.id, parent_id=conv.messages[-1].id, provenance=provenance())
    conv = conv.with_message(again)
    assert store.load_conversation(conv.id) == conv
    assert store.most_recent_id() == conv.id


def test_finish_refuses_streaming_as_a_final_status(store: HistoryStore) -> None:
    with pytest.raises(ValueError, match="final status"):
        store.finish_reply("x", "", status=MessageStatus.STREAMING)


def test_failed_reply_keeps_partial_text_and_error(store: HistoryStore) -> None:
    chat_id = store.create_conversation()
    user = store.add_user_message(chat_id, "Go", parent_id=None)
    reply = store.start_reply(chat_id, parent_id=user.id)
    store.finish_reply(
        reply.id,
        "partial",
        status=MessageStatus.FAILED,
        provenance=provenance(stop_reason=StopReason.ERROR, error="RuntimeError: out of memory"),
    )
    last = store.load_conversation(chat_id).messages[-1]
    assert last.status is MessageStatus.FAILED
    assert last.content == "partial"
    assert last.provenance is not None
    assert last.provenance.error == "RuntimeError: out of memory"


def test_reply_left_streaming_is_interrupted_at_next_open(db_path: Path) -> None:
    first = HistoryStore(db_path)
    chat_id = first.create_conversation()
    user = first.add_user_message(chat_id, "Tell me", parent_id=None)
    reply = first.start_reply(chat_id, parent_id=user.id, provenance=provenance())
    first.update_reply(reply.id, "Once upon")
    first.close()  # as if the process died here
    with HistoryStore(db_path) as second:
        assert second.interrupted_on_open == (reply.id,)
        last = second.load_conversation(chat_id).messages[-1]
    assert (last.content, last.status) == ("Once upon", MessageStatus.INTERRUPTED)
    assert last.provenance is not None
    assert last.provenance.seed == 1234


def test_a_live_reply_marked_interrupted_by_another_instance_recovers(db_path: Path) -> None:
    with HistoryStore(db_path) as running:
        chat_id = running.create_conversation()
        user = running.add_user_message(chat_id, "Tell me", parent_id=None)
        reply = running.start_reply(chat_id, parent_id=user.id)
        with HistoryStore(db_path) as newcomer:
            assert newcomer.interrupted_on_open == (reply.id,)
        assert running.update_reply(reply.id, "still going")
        assert running.load_conversation(chat_id).messages[-1].status is MessageStatus.STREAMING
        running.finish_reply(reply.id, "still going. The end.", status=MessageStatus.COMPLETE)
        assert running.load_conversation(chat_id).messages[-1].status is MessageStatus.COMPLETE


def test_message_for_unknown_chat_or_foreign_parent_is_refused(store: HistoryStore) -> None:
    with pytest.raises(ConversationNotFound, match="no chat"):
        store.add_user_message("missing", "hi", parent_id=None)
    first, first_user, _ = chat_with_one_exchange(store)
    second = store.create_conversation()
    with pytest.raises(ConversationNotFound, match=f"not in chat {second}"):
        store.add_user_message(second, "hi", parent_id=first_user)
    assert len(store.load_conversation(first).messages) == 2


def test_creating_an_existing_chat_is_refused_and_keeps_its_messages(
    store: HistoryStore,
) -> None:
    chat_id, _, _ = chat_with_one_exchange(store)
    with pytest.raises(HistoryError, match="already exists"):
        store.create_conversation(conversation_id=chat_id, title="clobber")
    assert len(store.load_conversation(chat_id).messages) == 2


def test_no_insert_or_replace_anywhere_in_the_store() -> None:
    # INSERT OR REPLACE deletes the old row first, and ON DELETE CASCADE takes its messages.
    folder = Path(history_module.__file__).parent
    for name in ("history.py", "history_schema.py", "history_codec.py"):
        module = folder / name
        source = module.read_text(encoding="utf-8").upper()
        assert "OR REPLACE" not in source, module.name
        assert "REPLACE INTO" not in source, module.name


# --------------------------------------------------------------------------------------------
# Versions of a reply


def test_regenerating_keeps_the_old_reply_as_a_version(store: HistoryStore) -> None:
    chat_id, user_id, first_reply = chat_with_one_exchange(store)
    second = store.start_reply(chat_id, parent_id=user_id, provenance=provenance(seed=99))
    assert (second.version, second.version_count) == (2, 2)
    store.finish_reply(second.id, "Hello again.", status=MessageStatus.COMPLETE)

    shown = store.load_conversation(chat_id)
    assert [m.content for m in shown.messages] == ["Hello?", "Hello again."]
    assert (shown.messages[-1].version, shown.messages[-1].version_count) == (2, 2)

    versions = store.versions(first_reply)
    assert [(v.id, v.content, v.version) for v in versions] == [
        (first_reply, "Hi.", 1),
        (second.id, "Hello again.", 2),
    ]
    assert store.versions(second.id) == versions

    back = store.select_version(first_reply)
    assert [m.content for m in back.messages] == ["Hello?", "Hi."]
    assert store.load_conversation(chat_id) == back


def test_continuing_from_an_older_version_keeps_the_other_branch(store: HistoryStore) -> None:
    chat_id, user_id, first_reply = chat_with_one_exchange(store)
    follow_up = store.add_user_message(chat_id, "And then?", parent_id=first_reply)
    store.start_reply(chat_id, parent_id=user_id)  # regenerate the first answer
    shown = store.load_conversation(chat_id)
    assert [m.content for m in shown.messages] == ["Hello?", ""]

    # Back to version 1: the conversation that grew from it returns.
    restored = store.select_version(first_reply)
    assert [m.content for m in restored.messages] == ["Hello?", "Hi.", "And then?"]
    assert restored.messages[-1].id == follow_up.id
    assert store.get_info(chat_id).message_count == 3


def test_editing_a_user_message_makes_a_new_version_of_it(store: HistoryStore) -> None:
    chat_id, user_id, _ = chat_with_one_exchange(store)
    edited = store.add_user_message(chat_id, "Hello, world?", parent_id=None)
    assert (edited.version, edited.version_count) == (2, 2)
    assert [m.content for m in store.load_conversation(chat_id).messages] == ["Hello, world?"]
    assert [m.content for m in store.versions(user_id)] == ["Hello?", "Hello, world?"]
    assert store.get_info(chat_id).title == "Hello?"  # the title stays the first one


def test_versions_of_unknown_message(store: HistoryStore) -> None:
    with pytest.raises(ConversationNotFound, match="no message"):
        store.versions("nope")
    with pytest.raises(ConversationNotFound):
        store.select_version("nope")


# --------------------------------------------------------------------------------------------
# Listing, searching, renaming, deleting


def test_list_is_most_recent_first_with_counts_and_profile(store: HistoryStore) -> None:
    old, _, _ = chat_with_one_exchange(store, "old chat")
    new = store.create_conversation(profile="coder")
    store.add_user_message(new, "new chat", parent_id=None)
    listed = store.list_conversations()
    assert [(c.id, c.title, c.message_count, c.profile) for c in listed] == [
        (new, "new chat", 1, "coder"),
        (old, "old chat", 2, "writer"),
    ]
    assert listed[0].updated > listed[1].updated
    assert store.most_recent_id() == new
    # Activity in the old chat moves it to the top.
    store.add_user_message(old, "more", parent_id=store.load_conversation(old).messages[-1].id)
    assert store.most_recent_id() == old
    assert [c.id for c in store.list_conversations(limit=1)] == [old]


def test_most_recent_of_an_empty_history_is_none(store: HistoryStore) -> None:
    assert store.most_recent_id() is None
    assert store.list_conversations() == []


def test_search_finds_text_in_any_case_and_in_alternatives(store: HistoryStore) -> None:
    chat_id, user_id, _ = chat_with_one_exchange(store, "Grüße aus der Straße")
    regen = store.start_reply(chat_id, parent_id=user_id)
    store.finish_reply(regen.id, "100% sure_about it", status=MessageStatus.COMPLETE)
    other = store.create_conversation()
    store.add_user_message(other, "unrelated", parent_id=None)

    hits = store.search("STRASSE")
    assert [(h.conversation_id, h.role) for h in hits] == [(chat_id, "user")]
    assert "Straße" in hits[0].snippet
    # LIKE wildcards mean nothing here: '%' and '_' are plain characters.
    assert [h.message_id for h in store.search("0% sure_")] == [regen.id]
    assert store.search("sure%about") == []
    with pytest.raises(HistoryError, match="search for"):
        store.search("   ")


def test_rename(store: HistoryStore) -> None:
    chat_id, _, _ = chat_with_one_exchange(store)
    store.rename_conversation(chat_id, "  Levers\nexplained ")
    assert store.get_info(chat_id).title == "Levers explained"
    with pytest.raises(HistoryError, match="empty"):
        store.rename_conversation(chat_id, " \n")
    with pytest.raises(ConversationNotFound):
        store.rename_conversation("missing", "x")


def test_delete_takes_only_that_chat_and_all_its_messages(
    store: HistoryStore, db_path: Path
) -> None:
    doomed, user_id, _ = chat_with_one_exchange(store, "delete me")
    store.start_reply(doomed, parent_id=user_id)  # an alternative version too
    kept, _, _ = chat_with_one_exchange(store, "keep me")
    assert store.delete_conversation(doomed)
    assert not store.delete_conversation(doomed)
    assert [c.id for c in store.list_conversations()] == [kept]
    assert len(store.load_conversation(kept).messages) == 2
    with pytest.raises(ConversationNotFound):
        store.load_conversation(doomed)
    conn = sqlite3.connect(db_path)
    orphans = conn.execute(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", (doomed,)
    ).fetchone()[0]
    conn.close()
    assert orphans == 0


def test_ids_resolve_from_a_unique_prefix(store: HistoryStore) -> None:
    store.create_conversation(conversation_id="abc111")
    store.create_conversation(conversation_id="abc222")
    store.create_conversation(conversation_id="abc")
    assert store.resolve_id("abc1") == "abc111"
    assert store.resolve_id("abc") == "abc"  # an exact id wins over longer ones
    with pytest.raises(HistoryError, match="several chats"):
        store.resolve_id("ab")
    with pytest.raises(ConversationNotFound, match="'zz'"):
        store.resolve_id("zz")
    with pytest.raises(HistoryError):
        store.resolve_id("")
    # LIKE-style wildcards are not wildcards.
    with pytest.raises(ConversationNotFound):
        store.resolve_id("ab_")


# --------------------------------------------------------------------------------------------
# Migrations


def build_database(path: Path, version: int) -> None:
    """A database at schema ``version`` holding one chat, as that version wrote it."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=version)
    created = "2025-06-01T10:00:00.000000+00:00"
    levers = '{"temperature": 0.5, "seed": 7}'
    if version >= 1:
        conn.execute(
            "INSERT INTO conversations VALUES ('chat1', 'Old chat', ?, ?, 'writer', 'Be kind.', ?)",
            (created, created, levers),
        )
    rows = [
        ("m1", "user", "first question", "complete", None),
        ("m2", "assistant", "first answer", "complete", "tiny"),
        ("m3", "user", "second question", "complete", None),
        ("m4", "assistant", "cut off", "streaming", "tiny"),
    ]
    for position, (message_id, role, content, status, model) in enumerate(rows):
        provenance_columns = (
            (model, "writer", "Be kind.", 7, "end_of_turn", None, levers, "[]", '{"new_tokens": 3}')
            if model
            else (None,) * 9
        )
        if version == 1:
            conn.execute(
                "INSERT INTO messages (id, conversation_id, position, role, content, status,"
                " created_at, updated_at, model, profile, system_prompt, seed, stop_reason,"
                " error, levers, lever_changes, stats)"
                " VALUES (?, 'chat1', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    position,
                    role,
                    content,
                    status,
                    created,
                    created,
                    *provenance_columns,
                ),
            )
        elif version >= 2:
            parent = rows[position - 1][0] if position else None
            conn.execute(
                "INSERT INTO messages (id, conversation_id, parent_id, active, role, content,"
                " status, created_at, updated_at, model, profile, system_prompt, seed,"
                " stop_reason, error, levers, lever_changes, stats)"
                " VALUES (?, 'chat1', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, parent, role, content, status, created, created, *provenance_columns),
            )
    conn.close()


@pytest.mark.parametrize("version", range(SCHEMA_VERSION + 1))
def test_every_schema_version_migrates_to_the_current_one(db_path: Path, version: int) -> None:
    build_database(db_path, version)
    with HistoryStore(db_path) as opened:
        assert opened.migrated_from == version
        chats = opened.list_conversations()
        if version == 0:
            assert chats == []
        else:
            (chat,) = chats
            assert (chat.title, chat.profile, chat.message_count) == ("Old chat", "writer", 4)
            assert chat.levers == Levers(temperature=0.5, seed=7)
            messages = opened.load_conversation("chat1").messages
            assert [m.content for m in messages] == [
                "first question",
                "first answer",
                "second question",
                "cut off",
            ]
            assert messages[-1].status is MessageStatus.INTERRUPTED
            assert messages[1].provenance is not None
            assert messages[1].provenance.seed == 7
            assert messages[1].provenance.stats.new_tokens == 3
            # The migrated chat keeps working: regenerate the last reply.
            regen = opened.start_reply("chat1", parent_id="m3")
            assert (regen.version, regen.version_count) == (2, 2)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    assert integrity(db_path) == "ok"


def test_a_failing_migration_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_database(db_path, 1)

    def half_done_then_broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("DELETE FROM messages")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(
        history_schema, "MIGRATIONS", (history_schema.MIGRATIONS[0], half_done_then_broken)
    )
    with pytest.raises(RuntimeError, match="migration bug"):
        HistoryStore(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 4
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    conn.close()
    assert "half_done" not in tables


# --------------------------------------------------------------------------------------------
# Refused databases are left untouched


def write_newer_database(path: Path) -> None:
    build_database(path, SCHEMA_VERSION)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def write_text_file(path: Path) -> None:
    path.write_text("name = 'not a database'\n")


def write_random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def write_truncated_database(path: Path) -> None:
    build_database(path, SCHEMA_VERSION)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def write_damaged_page(path: Path) -> None:
    """A valid header, but an index page overwritten: integrity_check fails."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("CREATE INDEX notes_by_body ON notes (body)")
    conn.executemany("INSERT INTO notes VALUES (?)", [(f"note {i:05d}" * 8,) for i in range(400)])
    conn.commit()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'notes_by_body'")
    page = root.fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    start = (page - 1) * page_size
    data[start : start + 8] = b"\xff" * 8  # the b-tree page header
    path.write_bytes(bytes(data))


def write_foreign_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()


def write_wrong_schema(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE conversations (id TEXT)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (write_newer_database, "newer leverchat"),
        (write_text_file, "not an SQLite database"),
        (write_random_bytes, "not an SQLite database"),
        (write_truncated_database, "damaged"),
        (write_damaged_page, "damaged"),
        (write_foreign_schema, "tables of another program: contacts"),
        (write_wrong_schema, "not a leverchat history database"),
    ],
)
def test_bad_database_is_refused_and_left_byte_for_byte_untouched(
    tmp_path: Path, make: Callable[[Path], None], expected: str
) -> None:
    folder = tmp_path / "refused"
    folder.mkdir()
    path = folder / "history.sqlite3"
    make(path)
    before = file_digest(path)
    for _ in range(2):  # a second try must meet the very same file
        with pytest.raises(HistoryUnavailable, match=expected) as caught:
            HistoryStore(path)
        assert str(path) in str(caught.value)
        assert "untouched" in str(caught.value)
        assert caught.value.path == path
    assert file_digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["history.sqlite3"]


def test_a_folder_in_place_of_the_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite3").mkdir()
    with pytest.raises(HistoryUnavailable, match="is a folder"):
        HistoryStore(tmp_path / "history.sqlite3")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused_as_unreadable_not_damaged(db_path: Path) -> None:
    build_database(db_path, SCHEMA_VERSION)
    db_path.chmod(0)
    try:
        with pytest.raises(HistoryUnavailable, match="cannot read") as caught:
            HistoryStore(db_path)
        assert "damaged" not in str(caught.value)
    finally:
        db_path.chmod(0o600)


def test_an_unreadable_stored_value_names_the_record(store: HistoryStore, db_path: Path) -> None:
    chat_id, _, reply_id = chat_with_one_exchange(store)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE messages SET levers = '{\"temprature\": 1}' WHERE id = ?", (reply_id,))
    conn.commit()
    conn.close()
    # The reply stays readable (its text is the user's); only its provenance is dropped, and
    # the note says which record and why.
    conversation, skipped = store.read_conversation(chat_id)
    reply = conversation.messages[-1]
    assert reply.id == reply_id and reply.content and reply.provenance is None
    [note] = skipped
    assert note.record_id == reply_id
    assert "did you mean 'temperature'" in note.describe()


def test_a_long_held_write_lock_gives_a_busy_error_not_a_crash(db_path: Path) -> None:
    with HistoryStore(db_path, busy_timeout_s=0.2) as opened:
        chat_id = opened.create_conversation()
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(HistoryError, match="busy"):
                opened.add_user_message(chat_id, "hi", parent_id=None)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        opened.add_user_message(chat_id, "hi", parent_id=None)
        assert len(opened.load_conversation(chat_id).messages) == 1


# --------------------------------------------------------------------------------------------
# Concurrency and crashes


def write_chats(store: HistoryStore, label: str, count: int) -> None:
    for index in range(count):
        chat_id = store.create_conversation(profile=label)
        user = store.add_user_message(chat_id, f"{label} question {index}", parent_id=None)
        reply = store.start_reply(chat_id, parent_id=user.id, provenance=provenance())
        for step in range(3):
            store.update_reply(reply.id, f"{label} answer {index} part {step}")
        store.finish_reply(reply.id, f"{label} answer {index}", status=MessageStatus.COMPLETE)


def assert_all_chats_written(path: Path, labels: list[str], count: int) -> None:
    with HistoryStore(path) as check:
        chats = check.list_conversations()
        for label in labels:
            mine = [chat for chat in chats if chat.title.startswith(f"{label} question")]
            assert len(mine) == count
            for chat in mine:
                contents = [m.content for m in check.load_conversation(chat.id).messages]
                assert len(contents) == 2
                assert contents[1].startswith(f"{label} answer")
    assert integrity(path) == "ok"


def test_two_instances_write_at_the_same_time(db_path: Path) -> None:
    stores = [HistoryStore(db_path), HistoryStore(db_path)]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(store: HistoryStore, label: str) -> None:
        try:
            start.wait()
            write_chats(store, label, 25)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(store, label))
        for store, label in zip(stores, ["left", "right"], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []
    assert_all_chats_written(db_path, ["left", "right"], 25)


def test_one_instance_shared_by_threads(store: HistoryStore, db_path: Path) -> None:
    errors: list[BaseException] = []

    def work(label: str) -> None:
        try:
            write_chats(store, label, 10)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_all_chats_written(db_path, [f"t{i}" for i in range(4)], 10)


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    from test_history import write_chats
    from leverchat.history import HistoryStore

    path, label, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    store = HistoryStore(path)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    write_chats(store, label, 30)
    store.close()
    print("done", flush=True)
    """
)


def test_two_processes_open_and_write_at_the_same_time(tmp_path: Path, db_path: Path) -> None:
    go = tmp_path / "go"
    tests_dir = str(Path(__file__).parent)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(db_path), label, str(go), tests_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(tmp_path),
        )
        for label in ("first", "second")
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline().strip()
            if line != "ready":  # it ended before opening the store: say why
                process.wait(timeout=30)
                why = process.stderr.read()
                raise AssertionError(f"{line!r}, exit {process.returncode}: {why}")
        go.touch()
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert out.strip() == "done"
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert_all_chats_written(db_path, ["first", "second"], 30)


STREAMER_SCRIPT = textwrap.dedent(
    """
    import sys
    from leverchat.chat import ReplyProvenance
    from leverchat.history import HistoryStore
    from leverchat.levers import Levers

    store = HistoryStore(sys.argv[1])
    chat = store.create_conversation(conversation_id="c" * 32, profile="writer")
    user = store.add_user_message(chat, "Tell me a story", parent_id=None)
    levers = Levers(temperature=0.9, seed=7)
    reply = store.start_reply(
        chat,
        parent_id=user.id,
        provenance=ReplyProvenance("tiny", "writer", "", levers, seed=7),
    )
    text = ""
    index = 0
    while True:
        text += f"word{index} "
        store.update_reply(reply.id, text)
        print(index, flush=True)
        index += 1
    """
)


def test_sigkill_while_streaming_leaves_an_interrupted_reply(tmp_path: Path, db_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", STREAMER_SCRIPT, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(tmp_path),
    )
    try:
        assert process.stdout is not None
        saved = -1
        while saved < 50:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            saved = int(line)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL

    assert integrity(db_path) == "ok"
    with HistoryStore(db_path) as reopened:
        chat = reopened.load_conversation("c" * 32)
        user, reply = chat.messages
        assert user.content == "Tell me a story"
        assert reply.status is MessageStatus.INTERRUPTED
        # Everything up to the last save it reported, maybe a little more; never less.
        words = reply.content.split()
        assert len(words) > saved
        assert reply.content == "".join(f"word{i} " for i in range(len(words)))
        assert reply.provenance is not None
        assert (reply.provenance.seed, reply.provenance.levers.temperature) == (7, 0.9)
        assert reopened.interrupted_on_open == (reply.id,)
    assert integrity(db_path) == "ok"


def test_a_history_created_while_another_start_checks_it_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two leverchat starts at once on a fresh install: one creates the schema while the
    other is checking the file. The check must see one snapshot, not a half-made history."""
    path = tmp_path / "history.sqlite3"
    starting = sqlite3.connect(path)  # what the first instance does before migrating
    starting.execute("PRAGMA journal_mode = WAL")
    starting.close()
    real_schema_problem = history_schema.schema_problem
    created = threading.Event()

    def schema_created_meanwhile(conn: sqlite3.Connection, version: int) -> str | None:
        if not created.is_set():
            created.set()  # the other instance's own check goes straight through
            other = threading.Thread(target=lambda: HistoryStore(path).close())
            other.start()
            other.join(timeout=30)
        return real_schema_problem(conn, version)

    monkeypatch.setattr(history_schema, "schema_problem", schema_created_meanwhile)
    history_module.check_database_file(path)  # must not say "tables of another program"
    with HistoryStore(path) as store:
        assert store.list_conversations() == []


class LockedAtFirst:
    """A connection whose WAL switch is refused ``times`` times, as SQLite does at once while
    another process holds the file (seen in CI with two starts on a fresh install)."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.times = times
        self.message = message
        self.calls = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode = WAL"
        self.calls += 1
        if self.calls <= self.times:
            raise sqlite3.OperationalError(self.message)


def test_switching_to_wal_retries_while_the_file_is_locked() -> None:
    conn = LockedAtFirst(times=3)
    history_module._switch_to_wal(conn, timeout_s=5)  # type: ignore[arg-type]
    assert conn.calls == 4


def test_switching_to_wal_gives_up_after_the_busy_timeout() -> None:
    conn = LockedAtFirst(times=1_000)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        history_module._switch_to_wal(conn, timeout_s=0.2)  # type: ignore[arg-type]
    assert 1 < conn.calls < 1_000


def test_switching_to_wal_does_not_retry_other_errors() -> None:
    conn = LockedAtFirst(times=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        history_module._switch_to_wal(conn, timeout_s=5)  # type: ignore[arg-type]
    assert conn.calls == 1
