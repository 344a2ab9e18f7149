"""Exports: readable Markdown with provenance, and JSON that round-trips everything."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.chat import MessageStatus, ReplyProvenance
from leverchat.engine.types import LeverChange, Stats, StopReason
from leverchat.export import ExportError, from_json, to_json, to_markdown, write_text_atomic
from leverchat.history import HistoryStore
from leverchat.levers import Levers


def ticking_clock() -> Callable[[], datetime]:
    moment = [datetime(2026, 3, 4, 9, 30, tzinfo=UTC)]

    def now() -> datetime:
        moment[0] += timedelta(seconds=1, microseconds=1)
        return moment[0]

    return now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3", clock=ticking_clock()) as opened:
        yield opened


def full_provenance() -> ReplyProvenance:
    return ReplyProvenance(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        profile="*poet*",
        system_prompt="Write verse.",
        levers=Levers(temperature=1.2, top_k=40, seed=2**63 - 1, stop=("###", "\n\nUser:")),
        seed=2**63 - 1,
        lever_changes=(
            LeverChange(5, Levers(temperature=1.5, top_k=40), ("temperature",)),
            LeverChange(9, Levers(temperature=1.5, top_k=10), ("top_k",)),
        ),
        stats=Stats(
            prompt_tokens=31,
            reused_prefix_tokens=20,
            prefilled_tokens=11,
            new_tokens=48,
            time_to_first_token_s=0.125,
            total_s=3.84,
            tokens_per_s=12.5,
            context_window=8192,
            trimmed_messages=1,
        ),
        stop_reason=StopReason.MAX_TOKENS,
    )


def rich_chat(store: HistoryStore) -> str:
    """A chat with every kind of content the export must carry."""
    chat_id = store.create_conversation(profile="*poet*", system_prompt="Write verse.\nRhyme.")
    user = store.add_user_message(
        chat_id, "A poem about [bold]levers[/] \x1b]0;x\x07", parent_id=None
    )
    first = store.start_reply(chat_id, parent_id=user.id, provenance=full_provenance())
    store.finish_reply(first.id, "Roses are red,\n\n| a | table |", status=MessageStatus.COMPLETE)
    second = store.start_reply(chat_id, parent_id=user.id, provenance=full_provenance())
    store.update_reply(second.id, "Levers are 🙂")
    store.add_user_message(chat_id, "again", parent_id=first.id)
    store.select_version(second.id)
    third = store.add_user_message(chat_id, "Continue", parent_id=second.id)
    failed = store.start_reply(chat_id, parent_id=third.id)
    store.finish_reply(
        failed.id,
        "",
        status=MessageStatus.FAILED,
        provenance=ReplyProvenance(
            model="tiny",
            profile="*poet*",
            system_prompt="Write verse.\nRhyme.",
            levers=Levers(),
            error="boom\nline 2",
        ),
    )
    return chat_id


def test_markdown_shows_each_reply_with_a_compact_provenance_line(store: HistoryStore) -> None:
    chat_id = rich_chat(store)
    markdown = to_markdown(store.get_info(chat_id), store.load_conversation(chat_id))
    lines = markdown.splitlines()
    # Stored text is exported as it is; only names are escaped so they show literally.
    assert lines[0] == "# A poem about \\[bold\\]levers\\[/\\] \x1b\\]0;x\x07"
    assert "> Write verse." in lines and "> Rhyme." in lines
    assert "## Assistant (version 2 of 2)" in lines
    line = next(line for line in lines if line.startswith("*model HuggingFaceTB"))
    assert line == (
        r"*model HuggingFaceTB/SmolLM2-135M-Instruct · profile \*poet\* · "
        r"temperature 1.2, top\_k 40, top\_p 0.95, min\_p 0.05, "
        r'stop \["\#\#\#", "\\n\\nUser:"\] · '
        "from token 5: temperature 1.5 · from token 9: top\\_k 10 · "
        f"seed {2**63 - 1} · 48 tokens at 12.5 tok/s · max tokens reached · streaming*"
    )
    # The core sampling levers always, other levers only when they differ from the defaults.
    assert "repetition" not in line
    failed_line = lines[-1]
    assert failed_line == (
        r"*model tiny · profile \*poet\* · temperature 0.7, top\_k 0, top\_p 0.95, "
        r"min\_p 0.05 · seed not recorded · failed · error: boom line 2*"
    )
    assert "Levers are 🙂" in markdown
    assert "*(no text)*" in markdown


def test_markdown_of_a_reply_without_provenance(store: HistoryStore) -> None:
    chat_id = store.create_conversation()
    user = store.add_user_message(chat_id, "hi", parent_id=None)
    reply = store.start_reply(chat_id, parent_id=user.id)
    store.finish_reply(reply.id, "hello", status=MessageStatus.STOPPED)
    markdown = to_markdown(store.get_info(chat_id), store.load_conversation(chat_id))
    assert markdown.rstrip().endswith("*no provenance recorded · stopped*")
    assert "- Levers at the end: temperature 0.7, top\\_k 0, top\\_p 0.95, min\\_p 0.05" in markdown


def test_json_round_trips_every_version_and_detail(store: HistoryStore, tmp_path: Path) -> None:
    chat_id = rich_chat(store)
    record = store.export_record(chat_id)
    assert len(record.messages) == 6  # alternatives included
    text = to_json(record)
    assert from_json(text) == record

    with HistoryStore(tmp_path / "other.sqlite3") as other:
        assert other.import_record(from_json(text)) == chat_id
        assert other.export_record(chat_id) == record
        assert to_json(other.export_record(chat_id)) == text
        assert other.load_conversation(chat_id) == store.load_conversation(chat_id)


def test_json_is_plain_and_complete(store: HistoryStore) -> None:
    chat_id = rich_chat(store)
    data = json.loads(to_json(store.export_record(chat_id)))
    assert data["format"] == "leverchat-chat"
    reply = data["messages"][1]
    assert reply["provenance"]["seed"] == 2**63 - 1
    assert reply["provenance"]["lever_changes"][0] == {
        "token_index": 5,
        "levers": {
            "temperature": 1.5,
            "top_k": 40,
            "top_p": 0.95,
            "min_p": 0.05,
            "typical_p": 1.0,
            "repetition_penalty": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
            "no_repeat_ngram_size": 0,
            "max_new_tokens": 512,
            "stop": [],
            # The persona note (persona depth), off.
            "persona_note": "",
            "persona_depth": 1,
            "persona_role": "system",
            # The samplers beyond the common levers, at their neutral values.
            "dry_multiplier": 0.0,
            "dry_base": 1.75,
            "dry_allowed_length": 2,
            "dry_sequence_breakers": ["\n", ":", '"', "*"],
            "xtc_probability": 0.0,
            "xtc_threshold": 0.1,
            "mirostat_tau": 0.0,
            "mirostat_eta": 0.1,
            "dynatemp_range": 0.0,
            "dynatemp_exponent": 1.0,
            "temperature_last": 0,
            "ban": [],
            "boost": {},
            # Structured output, off.
            "json_mode": 0,
            "json_schema": "",
            "regex": "",
            "grammar": "",
        },
        "changed": ["temperature"],
    }
    assert reply["provenance"]["stats"]["time_to_first_token_s"] == 0.125
    assert reply["provenance"]["stop_reason"] == "max_tokens"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=st.text(), content=st.text(), profile=st.text(), seed=st.integers(0, 2**63 - 1))
def test_any_text_round_trips(
    tmp_path: Path, title: str, content: str, profile: str, seed: int
) -> None:
    path = tmp_path / f"h{abs(hash((title, content, profile, seed)))}.sqlite3"
    with HistoryStore(path) as store:
        chat_id = store.create_conversation(profile=profile)
        user = store.add_user_message(chat_id, content, parent_id=None)
        reply = store.start_reply(
            chat_id,
            parent_id=user.id,
            provenance=ReplyProvenance("m", profile, content, Levers(seed=seed), seed=seed),
        )
        store.finish_reply(reply.id, content, status=MessageStatus.COMPLETE)
        if title.strip():
            store.rename_conversation(chat_id, title)
        record = store.export_record(chat_id)
    path.unlink()
    assert from_json(to_json(record)) == record


def valid_document(store: HistoryStore) -> dict[str, object]:
    chat_id, user = store.create_conversation(), None
    user = store.add_user_message(chat_id, "hi", parent_id=None)
    reply = store.start_reply(chat_id, parent_id=user.id, provenance=full_provenance())
    store.finish_reply(reply.id, "ok", status=MessageStatus.COMPLETE)
    data: dict[str, object] = json.loads(to_json(store.export_record(chat_id)))
    return data


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda d: d.update(format="something-else"), "not a leverchat chat export"),
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d["messages"][1].update(status="done"), r"messages\[1\]\.status: 'done'"),
        (lambda d: d["messages"][0].update(role="system"), r"messages\[0\]\.role"),
        (lambda d: d["messages"][0].update(active="yes"), r"messages\[0\]\.active"),
        (lambda d: d["chat"].update(created="yesterday"), r"chat\.created: not an ISO date"),
        (lambda d: d["chat"].update(created="2026-01-01T10:00:00"), "needs a time zone"),
        (lambda d: d["chat"]["levers"].update(temprature=1), "did you mean 'temperature'"),
        (
            lambda d: d["messages"][1]["provenance"]["levers"].update(top_p=1.5),
            r"messages\[1\]\.provenance: provenance levers: top_p = 1.5 is out of range",
        ),
        (
            lambda d: d["messages"][1]["provenance"].update(stop_reason="bored"),
            "unknown stop reason 'bored'",
        ),
        (lambda d: d.update(messages={}), "'messages' must be a list"),
    ],
)
def test_a_bad_json_export_is_refused_naming_the_key(
    store: HistoryStore, spoil: Callable[[dict[str, object]], None], expected: str
) -> None:
    data = valid_document(store)
    spoil(data)
    with pytest.raises(ExportError, match=expected) as caught:
        from_json(json.dumps(data), source="chat.json")
    assert str(caught.value).startswith("chat.json: ")


def test_not_json_at_all_names_line_and_column() -> None:
    with pytest.raises(ExportError, match=r"chat.json: not valid JSON \(line 2, column 1"):
        from_json('{"format":\n}', source="chat.json")


def test_import_refuses_an_existing_chat_and_a_child_before_its_parent(
    store: HistoryStore, tmp_path: Path
) -> None:
    chat_id = rich_chat(store)
    record = store.export_record(chat_id)
    with pytest.raises(Exception, match="already exists"):
        store.import_record(record)
    reordered = type(record)(record.info, tuple(reversed(record.messages)))
    with HistoryStore(tmp_path / "fresh.sqlite3") as fresh:
        with pytest.raises(Exception, match="before its parent"):
            fresh.import_record(reordered)
        assert fresh.list_conversations() == []  # nothing half-imported


def test_atomic_write_keeps_mode_and_symlink(tmp_path: Path) -> None:
    target = tmp_path / "chat.md"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.md"
    link.symlink_to(target)
    write_text_atomic(link, "new ✓")
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.md", "link.md"]


def test_a_failed_write_leaves_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "chat.json"
    target.write_text("old export")

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_text_atomic(target, "new export")
    assert target.read_text() == "old export"
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]


def test_a_new_export_file_gets_ordinary_permissions(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.md", "text")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.md").stat().st_mode) == 0o644
