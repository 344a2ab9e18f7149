"""`leverchat history ...`: what a user sees on the command line."""

from __future__ import annotations

import argparse
import hashlib
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leverchat.chat import MessageStatus, ReplyProvenance
from leverchat.commands import history_cmd
from leverchat.engine.types import Stats, StopReason
from leverchat.export import from_json
from leverchat.history import HistoryStore
from leverchat.levers import Levers
from leverchat.safetext import UNSAFE, strip_control

EVIL_TITLE = "Evil \x1b]52;c;cm0gLXJm\x07[bold]chat[/] \x1b[2J"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG", "DATA", "CACHE", "LOG"):
        monkeypatch.setenv(f"LEVERCHAT_{name}_DIR", str(tmp_path / name.lower()))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


def ticking_clock() -> Callable[[], datetime]:
    moment = [datetime(2026, 5, 6, 7, 8, tzinfo=UTC)]

    def now() -> datetime:
        moment[0] += timedelta(minutes=1)
        return moment[0]

    return now


def add_chat(path: Path, question: str, answer: str, chat_id: str | None = None) -> str:
    with HistoryStore(path, clock=ticking_clock()) as store:
        chat = store.create_conversation(conversation_id=chat_id, profile="writer")
        user = store.add_user_message(chat, question, parent_id=None)
        reply = store.start_reply(
            chat,
            parent_id=user.id,
            provenance=ReplyProvenance(
                "tiny-llama", "writer", "", Levers(temperature=1.3, seed=42), seed=42
            ),
        )
        store.finish_reply(reply.id, answer, status=MessageStatus.COMPLETE)
        store.finish_reply(
            reply.id,
            answer,
            status=MessageStatus.COMPLETE,
            provenance=ReplyProvenance(
                "tiny-llama",
                "writer",
                "",
                Levers(temperature=1.3, seed=42),
                seed=42,
                stats=Stats(new_tokens=9, tokens_per_s=21.25),
                stop_reason=StopReason.END_OF_TURN,
            ),
        )
    return chat


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leverchat")
    history_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["history", *argv])
    result: int = args.handler(args)
    return result


def test_list_on_an_empty_history(capsys: pytest.CaptureFixture[str], db_path: Path) -> None:
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert out.startswith("No saved chats yet")
    assert str(db_path) in out


def test_plain_history_lists_chats_most_recent_first(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    older = add_chat(db_path, "first question", "first answer")
    newer = add_chat(db_path, "second question", "second answer")
    assert cli() == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "LAST", "ACTIVE", "MSGS", "PROFILE", "TITLE"]
    assert first.startswith(newer[:8]) and first.endswith("second question")
    assert second.startswith(older[:8]) and "   2  writer" in second


def test_untrusted_titles_and_texts_never_reach_the_terminal_raw(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    chat = add_chat(db_path, EVIL_TITLE, "text \x9b31m\x1b]0;own\x07 \u202eend\u200b")
    for argv in (["list"], ["show", chat[:6]], ["search", "evil"]):
        assert cli(*argv) == 0
        captured = capsys.readouterr()
        assert UNSAFE.search(captured.out) is None, argv
        assert "\x1b" not in captured.out and "\x9b" not in captured.out
    assert cli("list") == 0
    # shown visibly, as escapes; markup literally
    assert "Evil \\x1b]52;c;cm0gLXJm\\x07[bold]chat[/] \\x1b[2J" in capsys.readouterr().out
    assert cli("show", chat) == 0
    assert "text \\x9b31m\\x1b]0;own\\x07 \\u202eend\\u200b" in capsys.readouterr().out


def test_export_is_cleaned_on_a_terminal_and_exact_in_a_pipe(
    capsys: pytest.CaptureFixture[str], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = add_chat(db_path, EVIL_TITLE, "text \x9b31m\x1b]0;own\x07 end")
    assert cli("export", chat) == 0
    assert "text \x9b31m\x1b]0;own\x07 end" in capsys.readouterr().out  # a pipe: exact

    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert cli("export", chat) == 0
    assert cli("export", chat, "--format", "json") == 0
    shown = terminal.getvalue()
    assert UNSAFE.search(shown) is None
    assert "text \\x9b31m\\x1b]0;own\\x07 end" in shown


def test_json_export_escapes_every_control_character_even_in_a_pipe(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    chat = add_chat(db_path, EVIL_TITLE, "text \x9b31m\x1b]0;own\x07 end")
    assert cli("export", chat, "--format", "json") == 0
    out = capsys.readouterr().out
    assert out == strip_control(out)
    assert from_json(out).messages[1].content == "text \x9b31m\x1b]0;own\x07 end"


def test_show_accepts_a_unique_prefix_and_prints_provenance(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    chat = add_chat(db_path, "What is top-p?", "Nucleus sampling.")
    assert cli("show", chat[:5]) == 0
    out = capsys.readouterr().out
    assert "## You\n\nWhat is top-p?" in out
    assert "Nucleus sampling." in out
    # Plain text for a person: no Markdown escapes (`top\\_k`) or emphasis markers.
    assert (
        "(model tiny-llama · profile writer · temperature 1.3, top_k 0, top_p 0.95, "
        "min_p 0.05 · seed 42 · 9 tokens at " in out
    )
    assert "\\_" not in out and "*" not in out
    assert "21.2 tok/s · end of turn)" in out


def test_ambiguous_and_unknown_ids_are_explained(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    add_chat(db_path, "one", "a", chat_id="aaaa1111")
    add_chat(db_path, "two", "b", chat_id="aaaa2222")
    assert cli("show", "aaaa") == 1
    assert "matches several chats" in capsys.readouterr().err
    assert cli("show", "zzz") == 1
    err = capsys.readouterr().err
    assert err.startswith("leverchat history: error: no chat id starts with 'zzz'")


def test_export_json_to_a_file_round_trips(
    capsys: pytest.CaptureFixture[str], db_path: Path, tmp_path: Path
) -> None:
    chat = add_chat(db_path, "control \x1b[31m kept in files", "answer \x07")
    target = tmp_path / "out" / "chat.json"
    target.parent.mkdir()
    assert cli("export", chat, "--format", "json", "-o", str(target)) == 0
    assert f"to {target}" in capsys.readouterr().out
    record = from_json(target.read_text(encoding="utf-8"), source=str(target))
    with HistoryStore(db_path) as store:
        assert record == store.export_record(chat)
    assert record.messages[0].content == "control \x1b[31m kept in files"


def test_export_markdown_to_stdout_and_a_file(
    capsys: pytest.CaptureFixture[str], db_path: Path, tmp_path: Path
) -> None:
    chat = add_chat(db_path, "Hi", "Hello")
    assert cli("export", chat) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# Hi\n")
    target = tmp_path / "chat.md"
    assert cli("export", chat, "--format", "md", "--output", str(target)) == 0
    assert target.read_text(encoding="utf-8") == shown


def test_export_into_a_missing_folder_fails_cleanly(
    capsys: pytest.CaptureFixture[str], db_path: Path, tmp_path: Path
) -> None:
    chat = add_chat(db_path, "Hi", "Hello")
    assert cli("export", chat, "-o", str(tmp_path / "missing" / "chat.md")) == 1
    assert "cannot write" in capsys.readouterr().err


def test_delete_with_yes_removes_only_that_chat(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    doomed = add_chat(db_path, "delete me", "ok")
    kept = add_chat(db_path, "keep me", "ok")
    assert cli("delete", doomed, "--yes") == 0
    assert "Deleted chat" in capsys.readouterr().out
    with HistoryStore(db_path) as store:
        assert [chat.id for chat in store.list_conversations()] == [kept]


def test_delete_without_a_terminal_needs_yes(
    capsys: pytest.CaptureFixture[str], db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = add_chat(db_path, "precious", "ok")
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert cli("delete", chat) == 1
    assert "add --yes" in capsys.readouterr().err
    with HistoryStore(db_path) as store:
        assert store.get_info(chat).title == "precious"


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("\n", False), ("nope\n", False)])
def test_delete_asks_on_a_terminal(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, deleted: bool
) -> None:
    chat = add_chat(db_path, "maybe", "ok")
    monkeypatch.setattr("sys.stdin", FakeTerminal(answer))
    assert cli("delete", chat) == (0 if deleted else 1)
    with HistoryStore(db_path) as store:
        assert (store.list_conversations() == []) is deleted


def test_search(capsys: pytest.CaptureFixture[str], db_path: Path) -> None:
    chat = add_chat(db_path, "How do I tune min-p?", "Lower MIN-P keeps more tokens.")
    add_chat(db_path, "unrelated", "nothing")
    assert cli("search", "min-p", "keeps") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(chat[:8]) and lines[0].endswith("How do I tune min-p?")
    assert lines[1] == "    assistant: Lower MIN-P keeps more tokens."
    assert len(lines) == 2
    assert cli("search", "absent") == 0
    assert capsys.readouterr().out == "No message contains 'absent'.\n"


def test_a_corrupt_database_is_reported_and_left_alone(
    capsys: pytest.CaptureFixture[str], db_path: Path
) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"\x00garbage" * 100)
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    assert cli("list") == 1
    err = capsys.readouterr().err
    assert str(db_path) in err and "left untouched" in err
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before


def test_database_option_picks_another_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere.sqlite3"
    add_chat(other, "elsewhere", "yes")
    assert cli("--database", str(other), "list") == 0
    assert "elsewhere" in capsys.readouterr().out


def test_bad_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli("list", "--limit", "0")
    assert exited.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err
