"""Damaged or foreign-written history rows, and `history import`: what a user sees.

A row of the wrong type (a BLOB, text that is not UTF-8, a NULL) or a chat whose stored
settings are not valid JSON is reported and skipped; the rest of the history stays usable and
the database file is never rewritten. `history import` takes a JSON export back exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from leverchat.chat import MessageStatus, ReplyProvenance
from leverchat.commands import history_cmd
from leverchat.engine.types import Stats, StopReason
from leverchat.history import HistoryStore
from leverchat.levers import Levers


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        monkeypatch.setenv(f"LEVERCHAT_{name}_DIR", str(tmp_path / name.lower()))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leverchat")
    history_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["history", *argv])
    result: int = args.handler(args)
    return result


def three_turns(db: Path, title_hint: str = "first") -> tuple[str, list[str]]:
    """A chat of three exchanges; returns its id and its six message ids in order."""
    with HistoryStore(db) as store:
        chat = store.create_conversation(profile="writer", levers=Levers(temperature=0.5))
        ids: list[str] = []
        parent = None
        for turn in range(3):
            user = store.add_user_message(chat, f"{title_hint} question {turn}", parent_id=parent)
            reply = store.start_reply(
                chat,
                parent_id=user.id,
                provenance=ReplyProvenance("tiny", "writer", "", Levers(seed=7), seed=7),
            )
            store.finish_reply(
                reply.id,
                f"answer {turn}",
                status=MessageStatus.COMPLETE,
                provenance=ReplyProvenance(
                    "tiny",
                    "writer",
                    "",
                    Levers(seed=7),
                    seed=7,
                    stats=Stats(new_tokens=3, tokens_per_s=9.5),
                    stop_reason=StopReason.END_OF_TURN,
                ),
            )
            ids += [user.id, reply.id]
            parent = reply.id
    return chat, ids


def raw_update(db: Path, sql: str, *parameters: object) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql, parameters)
    conn.commit()
    conn.close()


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


# A BLOB, text that is not UTF-8, and a NULL where the schema allows one (provenance model
# with levers set makes provenance unreadable only; content cannot be NULL).
WRONG_CONTENT = [
    pytest.param("CAST(x'00ff10' AS BLOB)", "a BLOB of 3 bytes", id="blob"),
    pytest.param(
        "CAST(x'41ff42' AS TEXT)", "text that is not valid UTF-8 (byte 0xff at offset 1)", id="utf8"
    ),
    pytest.param("zeroblob(40)", "a BLOB of 40 bytes", id="zeroblob"),
]


@pytest.mark.parametrize(("value", "said"), WRONG_CONTENT)
def test_a_message_of_the_wrong_type_is_skipped_and_the_rest_of_the_chat_shows(
    db: Path, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    chat, ids = three_turns(db)
    raw_update(db, f"UPDATE messages SET content = {value} WHERE id = ?", ids[3])
    before = digest(db)

    assert cli("show", chat) == 0
    captured = capsys.readouterr()
    for kept in ("first question 0", "answer 0", "first question 1", "first question 2"):
        assert kept in captured.out
    assert "answer 1" not in captured.out
    assert f"message {ids[3]} was skipped (content: {said}" in captured.err

    assert cli("export", chat, "--format", "md") == 0
    captured = capsys.readouterr()
    assert "answer 2" in captured.out and ids[3] in captured.err

    assert cli("export", chat, "--format", "json") == 0
    captured = capsys.readouterr()
    exported = [message["id"] for message in json.loads(captured.out)["messages"]]
    # The skipped message and what hung from it are left out, so the export imports cleanly.
    assert exported == ids[:3]
    assert f"{ids[4]} was skipped (its parent was skipped)" in captured.err

    with HistoryStore(db) as store:
        conversation, skipped = store.read_conversation(chat)
        assert [m.id for m in conversation.messages] == ids[:3] + ids[4:]
        assert [record.record_id for record in skipped] == [ids[3]]
        assert store.search("answer")  # search still works around the bad row
    assert digest(db) == before  # reading never rewrites the file


def test_wrong_types_in_timestamps_and_provenance_are_reported_not_fatal(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat, ids = three_turns(db)
    raw_update(db, "UPDATE messages SET created_at = x'01' WHERE id = ?", ids[0])
    raw_update(db, "UPDATE messages SET seed = 'seven', stats = '{' WHERE id = ?", ids[1])
    raw_update(db, "UPDATE messages SET lever_changes = x'ff' WHERE id = ?", ids[5])
    assert cli("show", chat) == 0
    captured = capsys.readouterr()
    assert "## You\n\nfirst question 0" not in captured.out  # skipped: created_at is a BLOB
    assert "answer 0" in captured.out and "answer 2" in captured.out  # kept, no provenance
    assert f"message {ids[0]} was skipped (created_at: a BLOB of 1 bytes" in captured.err
    assert f"message {ids[1]}: its provenance cannot be read (provenance seed" in captured.err
    assert f"message {ids[5]}: its provenance cannot be read" in captured.err


def test_a_chat_with_unreadable_settings_is_listed_reported_and_deletable(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, _ = three_turns(db, "good")
    bad, _ = three_turns(db, "bad")
    raw_update(db, "UPDATE conversations SET levers = '{not json' WHERE id = ?", bad)

    assert cli("list") == 0
    captured = capsys.readouterr()
    assert good[:8] in captured.out and bad[:8] in captured.out
    assert "(unreadable) bad question 0" in captured.out
    assert f"chat {bad} cannot be read (levers: not valid JSON" in captured.err
    assert f"leverchat history delete {bad}" in captured.err

    assert cli("show", bad) == 0  # the messages are readable: shown, the problem said
    captured = capsys.readouterr()
    assert "answer 2" in captured.out and "settings cannot be read" in captured.err

    assert cli("export", bad, "--format", "json") == 1  # JSON would lose the real levers
    assert "cannot be read" in capsys.readouterr().err

    assert cli("delete", bad, "--yes") == 0
    assert "Deleted chat" in capsys.readouterr().out
    with HistoryStore(db) as store:
        assert [info.id for info in store.list_conversations()] == [good]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("title", "x'ff00'"),
        ("title", "CAST(x'c328' AS TEXT)"),
        ("profile", "zeroblob(3)"),
        ("system_prompt", "CAST(x'80' AS TEXT)"),
        ("levers", "x'7b7d'"),
        ("levers", "'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]'"),
        ("updated_at", "'yesterday'"),
        ("created_at", "x'00'"),
    ],
)
def test_every_settings_column_of_a_wrong_type_is_listed_with_its_problem(
    db: Path, capsys: pytest.CaptureFixture[str], column: str, value: str
) -> None:
    good, _ = three_turns(db, "good")
    bad, _ = three_turns(db, "bad")
    raw_update(db, f"UPDATE conversations SET {column} = {value} WHERE id = ?", bad)
    assert cli("list") == 0
    captured = capsys.readouterr()
    assert good[:8] in captured.out and bad[:8] in captured.out
    assert f"chat {bad} cannot be read ({column}" in captured.err
    assert cli("delete", bad, "--yes") == 0


def test_a_deeply_nested_levers_value_is_a_problem_not_a_recursion_error(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad, _ = three_turns(db)
    raw_update(db, "UPDATE conversations SET levers = ? WHERE id = ?", "[" * 100_000, bad)
    assert cli("list") == 0
    assert f"chat {bad} cannot be read" in capsys.readouterr().err


# -- history show on a terminal ----------------------------------------------------------------


def test_show_prints_plain_text_and_export_keeps_markdown_escapes(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with HistoryStore(db) as store:
        chat = store.create_conversation(profile="my_profile", levers=Levers(top_k=5))
        store.add_user_message(chat, "hello", parent_id=None)
    assert cli("show", chat) == 0
    shown = capsys.readouterr().out
    assert "top_k 5" in shown and "Profile: my_profile" in shown and "\\_" not in shown
    assert cli("export", chat) == 0
    exported = capsys.readouterr().out
    assert "top\\_k 5" in exported and "Profile: my\\_profile" in exported


# -- history import ----------------------------------------------------------------------------


def test_export_import_export_is_identical(tmp_path: Path, db: Path) -> None:
    chat, ids = three_turns(db)
    with HistoryStore(db) as store:  # a second version of the last reply, and an older branch
        store.start_reply(chat, parent_id=ids[4])
        store.select_version(ids[5])
        store.rename_conversation(chat, "Ünïcode \x1b[31m title ✓")
    first = tmp_path / "first.json"
    assert cli("export", chat, "--format", "json", "-o", str(first)) == 0

    other = tmp_path / "other.sqlite3"
    assert cli("--database", str(other), "import", str(first)) == 0
    second = tmp_path / "second.json"
    assert cli("--database", str(other), "export", chat, "--format", "json", "-o", str(second)) == 0
    assert second.read_bytes() == first.read_bytes()
    assert len(json.loads(first.read_text())["messages"]) == 7


def test_importing_a_chat_that_is_already_there_is_refused_and_changes_nothing(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chat, _ = three_turns(db)
    exported = tmp_path / "chat.json"
    assert cli("export", chat, "--format", "json", "-o", str(exported)) == 0
    capsys.readouterr()
    before = digest(db)
    assert cli("import", str(exported)) == 1
    err = capsys.readouterr().err
    assert f"chat {chat} is already in the history" in err and "nothing was imported" in err
    assert f"leverchat history delete {chat}" in err
    assert digest(db) == before

    # Same messages under another chat id: refused too, naming the message.
    data = json.loads(exported.read_text())
    data["chat"]["id"] = "another-chat"
    exported.write_text(json.dumps(data))
    assert cli("import", str(exported)) == 1
    assert "messages[0].id" in capsys.readouterr().err


def _export_of(db: Path, tmp_path: Path) -> dict[str, object]:
    chat, _ = three_turns(db)
    path = tmp_path / "good.json"
    assert cli("export", chat, "--format", "json", "-o", str(path)) == 0
    data: dict[str, object] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d.pop("format"), "not a leverchat chat export"),
        (
            lambda d: d["messages"][2].__setitem__("content", 5),
            "messages[2].content: must be a string",
        ),
        (lambda d: d["messages"][1].__setitem__("parent_id", "nope"), "messages[1].parent_id"),
        (lambda d: d["messages"].append(dict(d["messages"][0])), "messages[6].id"),
        (
            lambda d: d["messages"][3].__setitem__("parent_id", d["messages"][1]["parent_id"]),
            "messages[3].active",
        ),
        (lambda d: d["chat"]["levers"].__setitem__("temperature", "hot"), "chat.levers"),
        (lambda d: d["chat"].__setitem__("created", "soon"), "chat.created"),
        (
            lambda d: d["messages"][1]["provenance"].__setitem__("seed", 1.5),
            "messages[1].provenance",
        ),
    ],
)
def test_a_malformed_export_is_refused_naming_the_file_and_key(
    tmp_path: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Any], object],
    said: str,
) -> None:
    data = _export_of(db, tmp_path)
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    target = tmp_path / "target.sqlite3"
    capsys.readouterr()
    assert cli("--database", str(target), "import", str(path)) == 1
    err = capsys.readouterr().err
    assert str(path) in err and said in err
    with HistoryStore(target) as store:
        assert store.list_conversations() == []


def test_hostile_import_files_are_refused_quickly_with_what_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"format": "\xff\xfe"}')
    cases = {
        fifo: "is a FIFO (named pipe), not a file",
        tmp_path: "is a folder, not a file",
        Path("/dev/zero"): "is a device, not a file",
        deep: "nested too deeply",
        binary: "not UTF-8 text (byte 0xff at offset 12)",
        tmp_path / "missing.json": "no such file",
    }
    for path, said in cases.items():
        assert cli("import", str(path)) == 1, path
        err = capsys.readouterr().err
        assert str(path) in err and said in err, err


def test_a_deeply_nested_document_is_refused_without_recursion_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    assert cli("import", str(nested)) == 1
    err = capsys.readouterr().err
    assert str(nested) in err and ("nested too deeply" in err or "must be an object" in err)
