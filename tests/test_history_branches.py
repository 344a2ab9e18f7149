"""The version tree in the history (schema 4), the JSON export and its import, and the tree's
lines; ReplayLevers after a branch's given start."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.branch import (
    BranchPoint,
    BranchStart,
    from_columns,
    from_mapping,
    to_columns,
    to_mapping,
)
from leverchat.chat import Message, MessageStatus, ReplyProvenance
from leverchat.engine.types import (
    GenerationResult,
    LeverChange,
    ReplyPrefix,
    Stats,
    StopReason,
)
from leverchat.export import ExportError, from_json, record_from_mapping, to_json, to_markdown
from leverchat.history import SCHEMA_VERSION, HistoryStore, HistoryUnavailable, migrate
from leverchat.levers import Levers
from leverchat.replay import ReplayLevers
from leverchat.version_tree import tree_lines


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as opened:
        yield opened


def provenance(branch: BranchPoint | None = None, seed: int = 7) -> ReplyProvenance:
    return ReplyProvenance(
        model="tiny",
        profile="default",
        system_prompt="Be kind.",
        levers=Levers(temperature=0.8),
        seed=seed,
        stats=Stats(new_tokens=12),
        stop_reason=StopReason.END_OF_TURN,
        branch=branch,
    )


def reply(store: HistoryStore, chat: str, parent: str, text: str, prov: ReplyProvenance) -> str:
    started = store.start_reply(chat, parent_id=parent, provenance=prov)
    store.finish_reply(started.id, text, status=MessageStatus.COMPLETE, provenance=prov)
    return started.id


def tree_chat(store: HistoryStore) -> tuple[str, str, str, str, str]:
    """One question with three versions of its reply: v1, v2 branched from v1 at token 3
    ("[/]Arr" typed: markup must stay literal), v3 branched from v2 by character."""
    chat = store.create_conversation(title="tree")
    user = store.add_user_message(chat, "Talk like a pirate", parent_id=None).id
    v1 = reply(store, chat, user, "Hello there, friend.", provenance())
    at_token = BranchPoint(
        source_id=v1,
        char_offset=5,
        text="[/]Arr",
        token_index=3,
        prefix="Hello[/]Arr",
        prefix_ids=(10, 11, 12, 99),
    )
    v2 = reply(store, chat, user, "Hello[/]Arr matey!", provenance(at_token, seed=8))
    by_char = BranchPoint(source_id=v2, char_offset=8, text=" Yo", prefix="Hello[/] Yo")
    v3 = reply(store, chat, user, "Hello[/] Yo ho!", provenance(by_char, seed=9))
    return chat, user, v1, v2, v3


def test_a_branch_point_is_stored_and_read_back(store: HistoryStore) -> None:
    chat, _, v1, v2, v3 = tree_chat(store)
    versions = store.versions(v1)
    assert [v.id for v in versions] == [v1, v2, v3]
    assert versions[0].provenance is not None and versions[0].provenance.branch is None
    point = versions[1].provenance.branch if versions[1].provenance else None
    assert point == BranchPoint(v1, 5, "[/]Arr", 3, "Hello[/]Arr", (10, 11, 12, 99))
    # The chat shown continues from the newest version (v3), which kept its branch point.
    shown = store.load_conversation(chat).messages[-1]
    assert shown.id == v3 and shown.provenance is not None
    assert shown.provenance.branch == BranchPoint(v2, 8, " Yo", None, "Hello[/] Yo", ())


def test_the_tree_lists_each_branch_under_its_origin(store: HistoryStore) -> None:
    _, _, v1, v2, v3 = tree_chat(store)
    lines = tree_lines(store.versions(v1), width=60)
    assert [(line.message_id, line.depth, line.number) for line in lines] == [
        (v1, 0, 1),
        (v2, 1, 2),
        (v3, 2, 3),
    ]
    assert lines[0].label == "v1: Hello there, friend."
    assert lines[1].label == "v2 from v1 at token 4 '[/]Arr': Hello[/]Arr matey!"
    assert lines[2].label == "v3 from v2 at character 8 ' Yo': Hello[/] Yo ho!"
    assert all(2 + line.depth * 2 + len(line.label) <= 60 for line in lines)


def test_tree_lines_fit_and_survive_hostile_text() -> None:
    source = Message("assistant", "x", id="a", provenance=provenance())
    hostile = "\x1b]52;c;AAAA\x07 [bold]loud[/] " + "word " * 40
    point = BranchPoint("a", 0, "\x1b[2J" + "y" * 50, 0)
    branched = Message("assistant", hostile, id="b", provenance=provenance(point))
    # A branch whose source is missing, and one that claims to be its own source.
    orphan = Message("assistant", "o", id="c", provenance=provenance(BranchPoint("gone", 0, "z")))
    selfish = Message("assistant", "s", id="d", provenance=provenance(BranchPoint("d", 0, "q")))
    lines = tree_lines((source, branched, orphan, selfish), width=40)
    assert [line.message_id for line in lines] == ["a", "b", "c", "d"]
    assert [line.depth for line in lines] == [0, 1, 0, 0]
    for line in lines:
        assert "\x1b" not in line.label and "\x07" not in line.label
        assert 2 + 2 * line.depth + len(line.label) <= 40
    assert lines[2].label.startswith("v3 from a lost version")


def test_json_export_and_import_keep_the_tree(store: HistoryStore, tmp_path: Path) -> None:
    chat, _, v1, v2, v3 = tree_chat(store)
    exported = to_json(store.export_record(chat))
    data = json.loads(exported)
    branches = [m["provenance"].get("branch") for m in data["messages"][1:]]
    assert branches[0] is None
    assert branches[1]["source_id"] == v1 and branches[1]["token_index"] == 3
    assert branches[1]["prefix_ids"] == [10, 11, 12, 99]
    assert branches[2]["source_id"] == v2 and branches[2]["token_index"] is None
    with HistoryStore(tmp_path / "other.sqlite3") as other:
        other.import_record(from_json(exported))
        assert to_json(other.export_record(chat)) == exported  # byte for byte
        lines = tree_lines(other.versions(v3))
        assert [(line.message_id, line.depth) for line in lines] == [(v1, 0), (v2, 1), (v3, 2)]


def test_markdown_says_where_a_reply_branched(store: HistoryStore) -> None:
    chat, *_ = tree_chat(store)
    text = to_markdown(store.get_info(chat), store.load_conversation(chat))
    assert "branched at character 8" in text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"source_id": "nowhere"}, "source_id"),
        ({"source_id": 5}, "branch.source_id"),
        ({"token_index": -1}, "branch.token_index"),
        ({"char_offset": "5"}, "branch.char_offset"),
        ({"prefix_ids": [1, "2"]}, "branch.prefix_ids"),
        ({"text": None}, "branch.text"),
    ],
)
def test_an_export_with_a_bad_branch_is_refused_naming_the_key(
    store: HistoryStore, change: dict[str, object], named: str
) -> None:
    chat, *_ = tree_chat(store)
    data = json.loads(to_json(store.export_record(chat)))
    data["messages"][2]["provenance"]["branch"].update(change)
    with pytest.raises(ExportError, match=re.escape(named)) as caught:
        record_from_mapping(data, source="chat.json")
    assert "chat.json" in str(caught.value) and "messages[2]" in str(caught.value)


def test_a_branch_from_a_later_version_is_refused(store: HistoryStore) -> None:
    chat, _, _, _, v3 = tree_chat(store)
    data = json.loads(to_json(store.export_record(chat)))
    data["messages"][2]["provenance"]["branch"]["source_id"] = v3  # v2 from v3: not earlier
    with pytest.raises(ExportError, match="not an earlier version of the same turn"):
        record_from_mapping(data)


def schema_3_database(path: Path) -> list[tuple[object, ...]]:
    """A schema 3 history with a chat, versions, provenance and inspector records, as schema 3
    wrote it; returns its message rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=3)
    created = "2026-01-01T10:00:00.000000+00:00"
    conn.execute(
        "INSERT INTO conversations VALUES ('c', 'Old', ?, ?, 'p', 'Be kind.', '{}')",
        (created, created),
    )
    rows = [
        ("u", None, 1, "user", "question", None),
        ("r1", "u", 0, "assistant", "first answer", "tiny"),
        ("r2", "u", 1, "assistant", "second answer", "tiny"),
    ]
    for message_id, parent, active, role, content, model in rows:
        provenance_columns = (
            (model, "p", "Be kind.", 7, "end_of_turn", None, "{}", "[]", '{"new_tokens": 2}')
            if model
            else (None,) * 9
        )
        conn.execute(
            "INSERT INTO messages (id, conversation_id, parent_id, active, role, content,"
            " status, created_at, updated_at, model, profile, system_prompt, seed,"
            " stop_reason, error, levers, lever_changes, stats)"
            " VALUES (?, 'c', ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, parent, active, role, content, created, created, *provenance_columns),
        )
    conn.execute("INSERT INTO token_inspections VALUES ('r2', '[]')")
    found = conn.execute("SELECT * FROM messages ORDER BY seq").fetchall()
    conn.close()
    return found


def test_schema_3_migrates_to_4_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    before = schema_3_database(path)
    with HistoryStore(path) as store:
        assert store.migrated_from == 3
        assert SCHEMA_VERSION == 4
        versions = store.versions("r1")
        assert [v.content for v in versions] == ["first answer", "second answer"]
        assert all(v.provenance is not None and v.provenance.branch is None for v in versions)
    conn = sqlite3.connect(path)
    after = conn.execute("SELECT * FROM messages ORDER BY seq").fetchall()
    columns = [row[1] for row in conn.execute("PRAGMA table_info(messages)")]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT message_id FROM token_inspections").fetchall() == [("r2",)]
    conn.close()
    # Every old row is unchanged in its old columns, and NULL in the new ones.
    assert [row[: len(before[0])] for row in after] == before
    assert columns[len(before[0]) :] == [
        "branch_of",
        "branch_token",
        "branch_offset",
        "branch_text",
        "branch_prefix",
        "branch_prefix_ids",
    ]
    assert all(value is None for row in after for value in row[len(before[0]) :])
    # The migrated history takes a branch at once.
    with HistoryStore(path) as store:
        point = BranchPoint("r1", 3, " yes", 1, "fir yes")
        branched = store.start_reply("c", parent_id="u", provenance=provenance(point))
        stored = store.versions(branched.id)[-1].provenance
        assert stored is not None and stored.branch == point


def test_a_history_from_a_newer_version_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    schema_3_database(path)
    HistoryStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(HistoryUnavailable, match="newer leverchat"):
        HistoryStore(path)
    assert path.read_bytes() == before


def test_an_unreadable_stored_branch_drops_only_the_provenance(store: HistoryStore) -> None:
    chat, _, _, v2, _ = tree_chat(store)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE messages SET branch_prefix_ids = '[1, ' WHERE id = ?", (v2,))
    record = store.export_record(chat)
    damaged = next(m for m in record.messages if m.id == v2)
    assert damaged.content == "Hello[/]Arr matey!" and damaged.provenance is None
    assert any("branch prefix ids" in skipped.reason for skipped in record.skipped)


def test_from_mapping_names_the_place() -> None:
    with pytest.raises(ValueError, match=r"messages\.branch must be an object"):
        from_mapping([], "messages.branch")


def test_the_recorded_start_is_the_engines_exact_tokens() -> None:
    point = BranchPoint("a", 5, " Arr", 2, "Hello Arr")
    start = BranchStart(point, ReplyPrefix("Hello Arr", token_ids=(1, 2), tail=" Arr"))
    result = GenerationResult(
        text="Hello Arr matey",
        stop_reason=StopReason.END_OF_TURN,
        stats=Stats(),
        seed=1,
        levers=Levers(),
        token_ids=(1, 2, 30, 31, 40),
        prefix_tokens=4,
    )
    assert start.recorded(result).prefix_ids == (1, 2, 30, 31)
    assert start.recorded(None) == point
    again = BranchStart.again(start.recorded(result))
    assert again.prefix == ReplyPrefix("Hello Arr", token_ids=(1, 2, 30, 31))


def test_replay_after_a_given_start_changes_levers_at_the_recorded_tokens() -> None:
    """The engine reads the levers once to start, then before each sampled token: after a
    start of 4 given tokens the first read is for token 4."""
    start = Levers(temperature=0.5, max_new_tokens=8)
    hot = start.with_value("temperature", 1.5)
    source = ReplayLevers(start, (LeverChange(5, hot, ("temperature",)),), first_token=4)
    assert source.snapshot() == (0, start)  # the start
    assert source.snapshot() == (0, start)  # token 4
    assert source.snapshot() == (1, hot)  # token 5: the recorded change


def test_f3_says_where_a_reply_branched() -> None:
    from leverchat.ui.screens.provenance import provenance_lines

    point = BranchPoint("a", 5, "[/]Arr", 3, "Hello[/]Arr", (1, 2, 3, 4))
    lines = provenance_lines(provenance(point))
    assert "Branched:        at token 4 '[/]Arr', continued from 4 given tokens" in lines
    assert not any(line.startswith("Branched") for line in provenance_lines(provenance()))


# CI runs a bounded number of examples; set LEVERCHAT_FUZZ_EXAMPLES for a longer run.
EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "60"))

points = st.builds(
    BranchPoint,
    source_id=st.text(min_size=1, max_size=40),
    char_offset=st.integers(min_value=0, max_value=2**40),
    text=st.text(max_size=60),
    token_index=st.none() | st.integers(min_value=0, max_value=2**31),
    prefix=st.text(max_size=200),
    prefix_ids=st.lists(st.integers(min_value=0, max_value=2**31), max_size=30).map(tuple),
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(points)
def test_any_branch_point_round_trips_through_the_export_and_the_columns(
    point: BranchPoint,
) -> None:
    assert from_mapping(json.loads(json.dumps(to_mapping(point)))) == point
    assert from_columns(to_columns(point)) == point


@settings(
    max_examples=max(EXAMPLES // 3, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(max_size=80), typed=st.text(max_size=20))
def test_any_branch_text_round_trips_through_the_history_and_the_export(
    tmp_path: Path, text: str, typed: str
) -> None:
    with HistoryStore(tmp_path / f"fuzz-{os.getpid()}.sqlite3") as store:
        chat = store.create_conversation()
        user = store.add_user_message(chat, "q", parent_id=None).id
        v1 = reply(store, chat, user, text, provenance())
        point = BranchPoint(v1, len(text) // 2, typed, None, text[: len(text) // 2] + typed)
        v2 = reply(store, chat, user, point.prefix + "…", provenance(point))
        exported = to_json(store.export_record(chat))
        stored = store.versions(v2)[-1].provenance
        assert stored is not None and stored.branch == point
        store.delete_conversation(chat)
        store.import_record(from_json(exported))
        assert to_json(store.export_record(chat)) == exported
