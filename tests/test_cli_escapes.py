"""What the command line prints never holds a raw control sequence, bidi override or zero-width
character: arguments quoted in errors (argparse's and ours), profile names, paths and
``profiles show``. Real subprocess runs; the assertions are on the bytes of stdout and stderr."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from leverchat.commands.ask import _StreamWriter
from leverchat.safetext import UNSAFE

# OSC 0 title, OSC 52 clipboard, OSC 8 link, clear screen, cursor position request, DCS,
# 8-bit CSI, right-to-left override, zero-width space.
PAYLOAD = (
    "\x1b]0;pwned\x07\x1b]52;c;aGVsbG8=\x07\x1b]8;;https://evil.example\x07\x1b[2J\x1b[6n"
    "\x1bPq\x1b\\\x9b31m\u202eevil\u200b"
)
SHOWN = (
    "\\x1b]0;pwned\\x07\\x1b]52;c;aGVsbG8=\\x07\\x1b]8;;https://evil.example\\x07\\x1b[2J"
    "\\x1b[6n\\x1bPq\\x1b\\\\x9b31m\\u202eevil\\u200b"
)


def leverchat(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "leverchat", *argv],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONUTF8": "1"},
        check=False,
    )


def assert_nothing_raw(completed: subprocess.CompletedProcess[bytes]) -> str:
    """The bytes hold no ESC, no 8-bit CSI/OSC, no other control, bidi or zero-width
    character; returns stdout and stderr as text."""
    for stream in (completed.stdout, completed.stderr):
        assert b"\x1b" not in stream
        assert b"\xc2\x9b" not in stream and b"\xc2\x9d" not in stream  # U+009B, U+009D
        assert UNSAFE.search(stream.decode("utf-8")) is None, stream
    return completed.stdout.decode() + completed.stderr.decode()


@pytest.mark.parametrize(
    "argv",
    [
        ["ask", "--profile", PAYLOAD, "hello"],  # our error: no profile called ...
        ["profiles", "show", PAYLOAD],
        ["profiles", "delete", PAYLOAD],
        ["history", "show", PAYLOAD],
        [PAYLOAD],  # argparse: invalid choice
        ["ask", "--bogus" + PAYLOAD, "x"],  # argparse: unrecognized arguments
        ["profiles", "import", "/nonexistent/" + PAYLOAD],
    ],
    ids=[
        "ask-profile",
        "profiles-show",
        "profiles-delete",
        "history-show",
        "command",
        "option",
        "import-path",
    ],
)
def test_an_argument_quoted_in_an_error_is_shown_visibly(argv: list[str]) -> None:
    completed = leverchat(*argv)
    assert completed.returncode in (1, 2)
    output = assert_nothing_raw(completed)
    assert "\\x1b]0;pwned\\x07" in output and "\\u202eevil" in output


def hostile_profile(config: Path) -> Path:
    folder = config / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "evil.toml"
    path.write_text(
        'name = "evil\\u202e\\u200b"\n'
        'system_prompt = "line one \\u001b]0;pwned\\u0007 \\u009b2J \\u202ertl\\nline two"\n'
        "[levers]\n"
        'stop = ["\\n\\n", "END\\u200b"]\n',
        encoding="utf-8",
    )
    return path


def test_profiles_list_and_show_print_nothing_raw(isolated_user_dirs: Path) -> None:
    hostile_profile(isolated_user_dirs / "config")
    listed = assert_nothing_raw(leverchat("profiles", "list"))
    assert "evil\\u202e\\u200b" in listed

    completed = leverchat("profiles", "show", "evil\u202e\u200b")
    assert completed.returncode == 0, completed.stderr
    shown = assert_nothing_raw(completed)
    # The TOML is valid and means the same: copy it into a file and it loads as it was.
    data = tomllib.loads(completed.stdout.decode())
    assert data["name"] == "evil\u202e\u200b"
    assert data["system_prompt"] == "line one \x1b]0;pwned\x07 \x9b2J \u202ertl\nline two"
    assert data["levers"]["stop"] == ["\n\n", "END\u200b"]
    # Readable: escapes where the characters are, the stop strings on one line (#13).
    assert 'stop = ["\\n\\n", "END\\u200B"]\n' in shown
    assert 'name = "evil\\u202E\\u200B"\n' in shown
    assert "line one \\u001B]0;pwned\\u0007 \\u009B2J \\u202Ertl\nline two" in shown


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_ask_shows_a_reply_visibly_on_a_terminal_and_exactly_in_a_pipe() -> None:
    chunks = ["safe \x1b]0;pw", "ned\x07 \x9b2J", " \u202eend"]
    for stream, expected in (
        (FakeTerminal(), "safe \\x1b]0;pwned\\x07 \\x9b2J \\u202eend\n"),
        (io.StringIO(), "safe \x1b]0;pwned\x07 \x9b2J \u202eend\n"),
    ):
        writer = _StreamWriter(stream, threading.Event())
        for chunk in chunks:
            writer.write(chunk)
        writer.finish()
        assert stream.getvalue() == expected


def test_a_chat_id_quoted_when_resuming_fails_is_shown_visibly() -> None:
    """``leverchat --chat ID`` needs a terminal: stdin and stdout on a pty, stderr captured."""
    primary, secondary = os.openpty()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "leverchat", "--chat", PAYLOAD],
            stdin=secondary,
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=120,
            env={**os.environ, "PYTHONUTF8": "1", "TERM": "xterm"},
            check=False,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert completed.returncode == 2
    assert b"\x1b" not in completed.stderr and b"\xc2\x9b" not in completed.stderr
    assert UNSAFE.search(completed.stderr.decode()) is None
    assert "\\x1b]0;pwned\\x07" in completed.stderr.decode()
