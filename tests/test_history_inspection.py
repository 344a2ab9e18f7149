"""Token inspector records in the history, the JSON export and `history import`."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from leverchat.chat import MessageStatus
from leverchat.engine.generate import Generator
from leverchat.engine.inspection import TokenInspection
from leverchat.engine.loading import load_model
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.export import from_json, to_json
from leverchat.history import HistoryStore
from leverchat.history_import import ImportRefused, import_file
from leverchat.levers import Levers


@pytest.fixture(scope="module")
def records(tiny_model_dir: Path) -> tuple[TokenInspection, ...]:
    """Real records: a sampled reply of the tiny model with top-k, so some were removed."""
    loaded = load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))
    generator = Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)
    levers = Levers(temperature=1.0, top_k=3, repetition_penalty=1.3, max_new_tokens=8, seed=2)
    request = GenerationRequest((ChatMessage("user", "Hello"),), FixedLevers(levers), inspect=6)
    result = generator.run(request, None)
    assert result.inspection and any(
        alt.removed_by for item in result.inspection for alt in item.alternatives
    )
    return result.inspection


def _chat(store: HistoryStore, items: tuple[TokenInspection, ...]) -> tuple[str, str, str]:
    chat_id = store.create_conversation()
    user = store.add_user_message(chat_id, "Hello", parent_id=None)
    inspected = store.start_reply(chat_id, parent_id=user.id)
    store.finish_reply(inspected.id, "reply one", status=MessageStatus.COMPLETE)
    assert store.save_inspection(inspected.id, items)
    plain = store.start_reply(chat_id, parent_id=user.id)
    store.finish_reply(plain.id, "reply two", status=MessageStatus.COMPLETE)
    return chat_id, inspected.id, plain.id


def test_records_are_saved_with_the_reply_and_read_back(
    tmp_path: Path, records: tuple[TokenInspection, ...]
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        chat_id, inspected, plain = _chat(store, records)
    with HistoryStore(tmp_path / "h.sqlite3") as store:  # a new process reads them too
        assert store.inspection(inspected) == records
        assert store.inspection(plain) == ()
        assert not store.save_inspection("no-such-message", records)
        store.delete_conversation(chat_id)
    conn = sqlite3.connect(tmp_path / "h.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM token_inspections").fetchone()[0] == 0
    conn.close()


def test_export_and_import_round_trip_the_records(
    tmp_path: Path, records: tuple[TokenInspection, ...]
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        chat_id, inspected, plain = _chat(store, records)
        text = to_json(store.export_record(chat_id))
    messages = {m["id"]: m for m in json.loads(text)["messages"]}
    assert "inspection" not in messages[plain]  # only replies made with the inspector on
    exported = messages[inspected]["inspection"]
    assert len(exported) == len(records)
    assert exported[0]["alternatives"][0].keys() == {
        "token_id",
        "text",
        "raw",
        "after",
        "removed_by",
    }
    assert from_json(text).messages[1].inspection == records
    path = tmp_path / "chat.json"
    path.write_text(text, encoding="utf-8")
    with HistoryStore(tmp_path / "other.sqlite3") as other:
        import_file(other, path)
        assert other.inspection(inspected) == records
        assert other.inspection(plain) == ()
        assert to_json(other.export_record(chat_id)) == text


def test_a_bad_record_in_an_export_is_refused_naming_the_key(
    tmp_path: Path, records: tuple[TokenInspection, ...]
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        chat_id, inspected, _ = _chat(store, records)
        data = json.loads(to_json(store.export_record(chat_id)))
    index = next(i for i, m in enumerate(data["messages"]) if m["id"] == inspected)
    data["messages"][index]["inspection"][2]["after_rank"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with HistoryStore(tmp_path / "other.sqlite3") as other:
        with pytest.raises(ImportRefused) as refused:
            import_file(other, path)
        assert f"messages[{index}].inspection[2].after_rank must be a whole number >= 1" in str(
            refused.value
        )
        assert "nothing was imported" in str(refused.value)
        assert other.list_conversations() == []


def test_an_unreadable_stored_record_leaves_the_chat_exportable(
    tmp_path: Path, records: tuple[TokenInspection, ...], caplog: pytest.LogCaptureFixture
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        chat_id, inspected, _ = _chat(store, records)
    conn = sqlite3.connect(tmp_path / "h.sqlite3")
    conn.execute("UPDATE token_inspections SET data = '[{\"token_id\": -1}]'")
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING), HistoryStore(tmp_path / "h.sqlite3") as store:
        record = store.export_record(chat_id)
        assert [m.content for m in record.messages] == ["Hello", "reply one", "reply two"]
        assert all(m.inspection == () for m in record.messages)
        assert store.inspection(inspected) == ()
    assert "unreadable" in caplog.text and inspected in caplog.text


def test_a_schema_2_history_gains_the_table_and_keeps_its_chats(tmp_path: Path) -> None:
    from leverchat.history import migrate

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=2)
    conn.close()
    with HistoryStore(path) as store:
        assert store.migrated_from == 2
        chat_id, inspected, _ = _chat(store, ())
        assert store.inspection(inspected) == ()
        assert store.list_conversations()[0].id == chat_id
