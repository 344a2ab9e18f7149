"""The command line refuses bad input before loading anything, and every message names the
real problem: stdin that is not UTF-8 or is empty, absurd thread counts, lever values that
only look like numbers, special files given as a model, fake GGUF files, an unwritable log
folder; signals give 128 + the signal number."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from leverchat.cli import main
from leverchat.commands import ask
from leverchat.commands.options import join_negative_lever_values, max_threads

CHILD_ENV_KEYS = ("LEVERCHAT_CONFIG_DIR", "LEVERCHAT_DATA_DIR", "LEVERCHAT_CACHE_DIR")


def leverchat(
    *argv: str, stdin: bytes = b"", env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "leverchat", *argv],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class _Bytes:
    """A stdin with a binary buffer, as a real one has."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def read_prompt(monkeypatch: pytest.MonkeyPatch, data: bytes) -> str:
    monkeypatch.setattr(sys, "stdin", _Bytes(data))
    return ask.read_prompt(type("Args", (), {"prompt": "-"})())


# -- stdin -------------------------------------------------------------------------------------


def test_stdin_that_is_not_utf8_is_refused_before_loading_naming_the_offset() -> None:
    # A model that does not exist: a refusal after loading would name the model instead.
    done = leverchat("ask", "--model", "/nonexistent/model", "-", stdin=b"caf\xe9 au lait\n")
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "stdin is not valid UTF-8 text: byte 0xe9 at offset 3" in err
    assert "nonexistent" not in err and "Traceback" not in err


@pytest.mark.parametrize("data", [b"", b"\n", b"   \n\t\n", b"\r\n"])
def test_an_empty_or_blank_question_is_refused_with_exit_code_2(data: bytes) -> None:
    done = leverchat("ask", "--model", "/nonexistent/model", "-", stdin=data)
    assert done.returncode == 2
    assert "the question on stdin is empty" in done.stderr.decode()


def test_an_empty_argument_is_refused_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--model", "/nonexistent/model", "  "]) == 2
    assert "the question is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("data", "prompt"),
    [
        (b"question\n", "question"),  # what `echo` sends
        (b"question\r\n", "question"),
        (b"question\n\n", "question\n"),  # only the one newline echo added
        (b"question  ", "question  "),
        ("héllo ✓\n".encode(), "héllo ✓"),
    ],
)
def test_stdin_loses_only_the_trailing_newline_echo_adds(
    monkeypatch: pytest.MonkeyPatch, data: bytes, prompt: str
) -> None:
    assert read_prompt(monkeypatch, data) == prompt


def test_help_documents_the_stdin_policy() -> None:
    done = leverchat("ask", "--help")
    text = " ".join(done.stdout.decode().split())
    assert "UTF-8" in text and "trailing newline" in text and "empty or blank" in text


# -- --threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["100000", str(max_threads() + 1)])
def test_too_many_threads_is_refused_with_the_limit(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["ask", "--threads", value, "hello"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads" in err
    assert f"at most {max_threads()}" in err and "per CPU core" in err


def test_the_thread_limit_itself_is_accepted() -> None:
    parsed = _parse(["ask", "--threads", str(max_threads()), "x"])
    assert parsed.threads == max_threads()


# -- lever values ------------------------------------------------------------------------------


def _parse(argv: list[str]) -> Any:
    from leverchat.cli import build_parser

    return build_parser().parse_args(join_negative_lever_values(argv))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--temperature", "-inf"], "temperature"),
        (["--top-p", "-0.5"], "top_p"),
        (["--min-p", "-1e-3"], "min_p"),
        (["--temperature", "-nan"], "temperature"),
    ],
)
def test_negative_looking_values_reach_the_lever_and_its_range_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["ask", *argv, "hello"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "expected one argument" not in err
    assert f"argument {argv[0]}" in err and expected in err and " to " in err


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--top-k", "1_0"),
        ("--top-k", "１０"),  # full-width digits
        ("--temperature", "0_5"),
        ("--temperature", "０.５"),
        ("--max-tokens", "٣"),  # Arabic-Indic digit
        ("--seed", "4_2"),
    ],
)
def test_numbers_in_anything_but_plain_ascii_digits_are_refused(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["ask", option, value, "hello"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    # argparse's prefix names the lever's option; the rest says what is wrong with the value.
    assert f"argument {option}: {value!r} is not a" in err and "in ASCII digits" in err


def test_ordinary_values_still_parse() -> None:
    args = _parse(["ask", "--temperature", "0.7", "--top-k", "40", "--seed", "-1", "x"])
    assert (args.lever_temperature, args.lever_top_k, args.lever_seed) == (0.7, 40, -1)
    # A stop string that starts with a dash is not a numeric lever: left as it was.
    assert join_negative_lever_values(["--stop", "-x"]) == ["--stop", "-x"]


def test_a_negative_seed_works_is_reproducible_and_recorded_as_given(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(seed: str) -> dict[str, Any]:
        argv = ["--model", str(tiny_model_dir), "--temperature", "1.5", "--max-tokens", "12"]
        assert main(["ask", *argv, "--seed", seed, "--json", "Tell me a story"]) == 0
        data: dict[str, Any] = json.loads(capsys.readouterr().out)
        return data

    first, again = run("-1"), run("-1")
    assert first["seed"] == -1 and first["levers"]["seed"] == -1
    assert first["text"] == again["text"]
    assert run(str(-(2**63)))["seed"] == -(2**63)


# -- what a model path really is -------------------------------------------------------------


def test_a_fifo_or_device_as_a_model_is_named_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "is a FIFO (named pipe)"), (Path("/dev/zero"), "is a device")):
        assert main(["ask", "--model", str(path), "hello"]) == 1
        err = capsys.readouterr().err
        assert f"{path} {kind}, not a model file" in err
        assert "No such model file" not in err


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 8, "its metadata is damaged"),
        (b"GGUF", "it is only 4 bytes long"),
        (b"GGUF\x09\x00\x00\x00" + bytes(16), "its header says GGUF version 9"),
        (b"hello world " * 50, "it does not start with the GGUF signature"),
    ],
)
def test_a_fake_gguf_file_is_called_not_a_valid_gguf_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, said: str
) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(content)
    assert main(["ask", "--model", str(fake), "hello"]) == 1
    err = capsys.readouterr().err
    assert f"{fake} is not a valid GGUF file: {said}" in err
    assert "JSON" not in err and "Traceback" not in err and ".." not in err


# -- logging -----------------------------------------------------------------------------------


def test_an_unwritable_log_folder_is_said_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = leverchat(
        "ask",
        "--model",
        str(tiny_model_dir),
        "--max-tokens",
        "3",
        "--json",
        "hello",
        env={"LEVERCHAT_LOG_DIR": str(blocker / "logs")},
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr.decode()
    assert "Logging error" not in err and "Traceback" not in err
    assert err.count("logging is off") == 1
    assert f"cannot write the log file in {blocker / 'logs'}" in err
    assert "LEVERCHAT_LOG_DIR" in err
    # The answer is still printed (as JSON: a random tiny model's three tokens may all be
    # white space, so the plain text can look empty).
    answer = json.loads(done.stdout)
    assert answer["error"] is None and isinstance(answer["text"], str)


# -- signals -----------------------------------------------------------------------------------


def _catches(pid: int, signal_number: int) -> bool:
    """Whether the process has its own handler for the signal yet (Linux: SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal_number - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGHUP])
def test_ask_ended_by_a_signal_exits_with_128_plus_the_signal(signal_number: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "leverchat", "ask", "-"],
        stdin=subprocess.PIPE,  # held open: `ask` waits on stdin, handlers installed
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not _catches(process.pid, signal_number) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal_number)
        process.wait(timeout=30)
        assert process.returncode == 128 + signal_number, process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize("option", [None, "--system"])
def test_arguments_that_are_not_utf8_are_refused_before_loading(option: str | None) -> None:
    bad = os.fsdecode(b"caf\xe9")  # what Python makes of a Latin-1 argument
    argv = ["ask", "--model", "/nonexistent/model"]
    argv += [option, bad, "hello"] if option else [bad]
    done = subprocess.run(
        [sys.executable, "-m", "leverchat", *argv],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    err = done.stderr.decode(errors="replace")
    assert "not valid UTF-8 text: byte 0xe9 at offset 3" in err
    assert "nonexistent" not in err and "Traceback" not in err
