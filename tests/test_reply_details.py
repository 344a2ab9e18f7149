"""A reply's prompt format, format stops, phrase tokens and engine notices survive the history
and the JSON export, so F3 shows them for a reply read back as for a fresh one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from leverchat import reply_details
from leverchat.chat import MessageStatus
from leverchat.engine.types import LeverTokens
from leverchat.export import from_json, to_json
from leverchat.history import HistoryStore
from leverchat.ui.screens.provenance import provenance_lines
from test_history import finished_provenance, provenance

NOTICE = "regex was changed mid-reply, but the 3 tokens written so far do not fit it"
DETAILED = replace(
    finished_provenance(),
    prompt_format="alpaca (built in)",
    format_stops=("### Instruction:",),
    lever_tokens=(
        LeverTokens("ban", "Paris", ((1, 2), (3,)), pieces=(("Par", "is"), (" Paris",))),
        LeverTokens("boost", "lever", ((7,),), weight=4.0, pieces=((" lever",),)),
    ),
    notices=(NOTICE,),
)


def save(db_path: Path, recorded: Any) -> str:
    with HistoryStore(db_path) as store:
        chat_id = store.create_conversation(profile="writer")
        user = store.add_user_message(chat_id, "Hello?", parent_id=None)
        reply = store.start_reply(chat_id, parent_id=user.id, provenance=provenance())
        store.finish_reply(reply.id, "Hi.", status=MessageStatus.COMPLETE, provenance=recorded)
    return chat_id


def saved_and_read_back(db_path: Path, recorded: Any) -> Any:
    chat_id = save(db_path, recorded)
    with HistoryStore(db_path) as store:
        loaded = store.load_conversation(chat_id)
    assert loaded is not None
    return loaded


def test_the_history_keeps_every_detail(tmp_path: Path) -> None:
    loaded = saved_and_read_back(tmp_path / "history.sqlite3", DETAILED)
    assert loaded.messages[1].provenance == DETAILED
    lines = "\n".join(provenance_lines(loaded.messages[1].provenance))
    assert f"Notice:          {NOTICE}" in lines
    assert "Prompt format:   alpaca (built in)" in lines
    assert "'### Instruction:'" in lines
    assert "Paris" in lines and "Par" in lines


def test_the_json_export_and_import_keep_every_detail(tmp_path: Path) -> None:
    chat_id = save(tmp_path / "history.sqlite3", DETAILED)
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        record = store.export_record(chat_id)
    text = to_json(record)
    assert NOTICE in text
    with HistoryStore(tmp_path / "other.sqlite3") as other:
        imported = other.import_record(from_json(text))
        loaded = other.load_conversation(imported)
    assert loaded is not None and loaded.messages[1].provenance == DETAILED


def test_a_reply_without_details_stores_none(tmp_path: Path) -> None:
    plain = finished_provenance()
    assert reply_details.to_mapping(plain) == {}
    assert saved_and_read_back(tmp_path / "h.sqlite3", plain).messages[1].provenance == plain


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ([], "provenance details must be an object"),
        ({"notices": "x"}, "details.notices must be a list of strings"),
        ({"prompt_format": 3}, "details.prompt_format must be a string"),
        ({"lever_tokens": [{"lever": "ban"}]}, "details.lever_tokens[0] needs a lever"),
        (
            {"lever_tokens": [{"lever": "ban", "text": "a", "sequences": [["x"]]}]},
            "details.lever_tokens[0].sequences must be lists of token ids",
        ),
        (
            {"lever_tokens": [{"lever": "ban", "text": "a", "weight": "big"}]},
            "details.lever_tokens[0].weight must be a number",
        ),
    ],
)
def test_an_unreadable_detail_is_named(value: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        reply_details.from_mapping(value)
