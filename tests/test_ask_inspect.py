"""`leverchat ask --inspect N` on the tiny model: the JSON structure and the stderr table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leverchat.cli import main
from leverchat.commands.inspect_output import format_table
from leverchat.engine.inspection import Alternative, TokenInspection
from leverchat.engine.types import GenerationResult, Stats, StopReason
from leverchat.levers import Levers


def run_ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_holds_every_reply_token_with_its_alternatives(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(tiny_model_dir), "--max-tokens", "8", "--seed", "3", "--top-k", "2"]
    args += ["--top-p", "1", "--min-p", "0"]
    code, out, _ = run_ask(capsys, *args, "--temperature", "1", "--inspect", "4", "--json", "Hi")
    assert code == 0
    data = json.loads(out)
    inspection = data["inspection"]
    assert inspection["top_n"] == 4
    assert "note" not in inspection
    tokens = inspection["tokens"]
    assert len(tokens) == data["stats"]["new_tokens"] > 0
    assert "".join(token["text"] for token in tokens).startswith(data["text"][:1])
    for token in tokens:
        assert set(token) >= {"token_id", "text", "raw", "after", "raw_rank", "after_rank"}
        assert 0 < token["raw"] <= 1 and 0 < token["after"] <= 1
        assert token["raw_rank"] >= 1 and token["after_rank"] in (1, 2)
        alternatives = token["alternatives"]
        assert len(alternatives) == 4
        # Top-k 2 keeps the two likeliest; the other two are gone, and top-k is named.
        assert [alt["removed_by"] for alt in alternatives] == [None, None, "top_k", "top_k"]
        assert [alt["after"] == 0 for alt in alternatives] == [False, False, True, True]
    # The same reply as without the inspector.
    code, plain, _ = run_ask(capsys, *args, "--temperature", "1", "--json", "Hi")
    assert json.loads(plain)["text"] == data["text"]
    assert "inspection" not in json.loads(plain)


def test_inspect_10_records_ten_and_prints_a_table_to_stderr(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(tiny_model_dir), "--max-tokens", "4", "--temperature", "0"]
    code, out, err = run_ask(capsys, *args, "--inspect", "10", "Hi")
    assert code == 0
    _, reply_only, _ = run_ask(capsys, *args, "Hi")
    assert out == reply_only  # stdout keeps just the reply
    lines = err.splitlines()
    assert lines[0].startswith("token inspector: top 10 per token")
    rows = [line for line in lines if line.startswith("     ")]
    headers = [line for line in lines[2:] if not line.startswith("     ")]
    assert len(rows) == 10 * len(headers) > 0
    assert all("after 100.0% (rank 1)" in header for header in headers)
    assert sum("removed by temperature" in row for row in rows) == 9 * len(headers)


@pytest.mark.parametrize("value", ["0", "101", "ten"])
def test_a_bad_inspect_count_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ask", "--inspect", value, "Hi"])
    assert exit_info.value.code == 2
    assert f"--inspect takes a whole number of alternatives from 1 to 100, not '{value}'" in (
        capsys.readouterr().err
    )


def test_the_table_shows_hostile_token_text_as_escapes() -> None:
    hostile = "\x1b]0;pwned\x07\u202e"
    item = TokenInspection(
        token_id=1,
        text=hostile,
        raw=0.5,
        after=1.0,
        raw_rank=1,
        after_rank=1,
        alternatives=(Alternative(2, "\x1b[31mred", 0.25, 0.0, "min_p"),),
        stopped_by="stop",
    )
    result = GenerationResult(
        text="",
        stop_reason=StopReason.STOP_STRING,
        stats=Stats(),
        seed=1,
        levers=Levers(),
        token_ids=(1,),
        inspection=(item,),
    )
    table = format_table(result, 1)
    assert "\x1b" not in table and "\u202e" not in table and "\x07" not in table
    assert "removed by min_p" in table
    assert "completed a stop string" in table
    assert "25.0%" in table and "n/a" not in table


def test_a_reply_without_records_says_so() -> None:
    result = GenerationResult(
        text="hi", stop_reason=StopReason.END_OF_TURN, stats=Stats(), seed=1, levers=Levers(),
        token_ids=(4, 5),
    )  # fmt: skip
    assert "no token probabilities were reported" in format_table(result, 10)
