"""`leverchat ask` on the tiny model: streaming, JSON, stats, validation, profiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leverchat.cli import main


def run_ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ask_streams_reply_and_json_matches(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(tiny_model_dir), "--temperature", "0", "--max-tokens", "12"]
    code, streamed, _ = run_ask(capsys, *args, "Hello")
    assert code == 0
    code, out, _ = run_ask(capsys, *args, "--json", "Hello")
    assert code == 0
    data = json.loads(out)
    assert streamed == data["text"] + "\n"
    assert data["stop_reason"] in ("max_tokens", "end_of_turn")
    assert data["levers"]["temperature"] == 0.0
    assert data["levers"]["max_new_tokens"] == 12
    assert data["stats"]["new_tokens"] <= 12
    assert isinstance(data["seed"], int)
    assert data["model"]["device"] == "cpu"


def test_ask_stats_go_to_stderr(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_ask(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--max-tokens",
        "5",
        "--seed",
        "42",
        "--stats",
        "Hi",
    )
    assert code == 0
    assert "tok/s" in err and "seed 42" in err
    assert "tok/s" not in out


def test_ask_same_seed_same_reply(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "--model",
        str(tiny_model_dir),
        "--temperature",
        "1.2",
        "--seed",
        "7",
        "--max-tokens",
        "20",
        "--json",
        "Tell me a story",
    ]
    first = json.loads(run_ask(capsys, *args)[1])
    second = json.loads(run_ask(capsys, *args)[1])
    assert first["text"] == second["text"]


def test_ask_reads_prompt_from_stdin(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("What is 2 + 2?"))
    code, out, _ = run_ask(
        capsys, "--model", str(tiny_model_dir), "--max-tokens", "4", "--json", "-"
    )
    assert code == 0
    assert json.loads(out)["stats"]["prompt_tokens"] > 5


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--top-p", "1.5", "top_p = 1.5 is out of range: allowed 0 to 1"),
        ("--temperature", "hot", "'hot' is not a number; allowed 0 to 5"),
        ("--temperature", "nan", "temperature must be a finite number"),
        ("--max-tokens", "-3", "max_new_tokens = -3 is out of range"),
        ("--top-k", "2.5", "'2.5' is not a whole number"),
        ("--stop", "", "stop cannot contain an empty string"),
    ],
)
def test_invalid_lever_exits_2_naming_option_and_range(
    capsys: pytest.CaptureFixture[str], option: str, value: str, expected: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["ask", option, value, "hello"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err
    assert expected in err


def test_missing_model_path_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_ask(capsys, "--model", str(tmp_path / "nowhere"), "Hello")
    assert code == 1
    assert str(tmp_path / "nowhere") in err
    assert "Traceback" not in err


def test_ask_without_prompt_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_ask(capsys)
    assert code == 2
    assert "give a PROMPT" in err


def test_unknown_profile_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_ask(capsys, "--profile", "no-such-persona", "Hello")
    assert code == 2
    assert "no-such-persona" in err and "profiles list" in err


def test_profile_levers_and_system_prompt_apply_and_options_override(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_ask(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--profile",
        "precise",
        "--max-tokens",
        "3",
        "--json",
        "Hello",
    )
    assert code == 0
    data = json.loads(out)
    assert data["levers"]["temperature"] == 0.0  # from the profile
    assert data["levers"]["max_new_tokens"] == 3  # from the command line


def test_ask_subprocess_prints_nothing_but_the_reply(tiny_model_dir: Path) -> None:
    """No transformers progress bars, warnings or logging on the user's terminal."""
    env = dict(os.environ)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "leverchat",
            "ask",
            "--model",
            str(tiny_model_dir),
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "Hello",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert completed.stdout.strip() != ""
