"""The real `leverchat` in a pty on the tiny model: SIGHUP or SIGKILL mid-reply, then reopen.

SIGHUP (an SSH drop) saves the streamed text as interrupted and exits; SIGKILL leaves the text
of the last save, which the next start shows as interrupted; the database stays intact.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from leverchat.chat import MessageStatus
from leverchat.history import HistoryStore

pytestmark = pytest.mark.slow

LONG_PROFILE = """\
name = "long"
system_prompt = "You tell long stories."

[levers]
temperature = 1.0
max_new_tokens = 100000
"""


class Terminal:
    """`leverchat ARGS` on an 80x24 pty, its output drained so it never blocks."""

    def __init__(self, home: Path, *args: str) -> None:
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color"}
        for name in ("CONFIG", "DATA", "CACHE", "LOG"):
            env[f"LEVERCHAT_{name}_DIR"] = str(home / name.lower())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "leverchat", *args],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
            start_new_session=True,
        )
        os.close(terminal)
        self.output = b""

    def drain(self) -> None:
        while select.select([self.controller], [], [], 0)[0]:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())

    def wait_until(self, predicate, what: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.drain()
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.drain()
        raise AssertionError(f"never happened: {what}; output: {self.output[-1500:]!r}")

    def wait_exit(self, seconds: float = 20) -> float:
        started = time.monotonic()
        while self.process.poll() is None and time.monotonic() - started < seconds:
            self.drain()
            time.sleep(0.02)
        assert self.process.poll() is not None, "leverchat did not exit"
        return time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.controller)


def streamed_reply(db: Path) -> tuple[str, str] | None:
    """The streaming reply's (status, saved text), read-only: opening a store would mark it."""
    if not db.exists():
        return None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT status, content FROM messages WHERE role = 'assistant'"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return None if row is None else (row[0], row[1])


def start_a_long_reply(home: Path, model: Path, *args: str) -> tuple[Terminal, str]:
    profiles = home / "config" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "long.toml").write_text(LONG_PROFILE, encoding="utf-8")
    app = Terminal(home, "--model", str(model), "--device", "cpu", "-p", "long", *args)
    app.wait_until(lambda: b"Ask anything" in app.output, "the chat is drawn")
    app.type("Tell me a story\r")
    db = home / "data" / "history.sqlite3"

    def saved_twice() -> bool:
        # Wait for a save with text, then one more with more text: it is streaming for real.
        first = streamed_reply(db)
        if first is None or first[0] != "streaming" or len(first[1]) < 20:
            return False
        time.sleep(0.6)
        second = streamed_reply(db)
        return second is not None and len(second[1]) > len(first[1])

    app.wait_until(saved_twice, "the reply streams and is saved")
    return app, (streamed_reply(db) or ("", ""))[1]


def question_shown(app: Terminal) -> bool:
    """Whether the chat shows the question; if not, page up once (a long saved reply fills
    the 24 rows and the chat opens at its end)."""
    if b"Tell me a story" in app.output:
        return True
    app.type("\x1b[5~")  # Page Up
    time.sleep(0.3)
    return False


def only_chat(db: Path):
    with HistoryStore(db) as store:
        (info,) = store.list_conversations()
        conversation = store.load_conversation(info.id)
        check = store._conn.execute("PRAGMA integrity_check").fetchone()[0]
    return info, conversation, check


@pytest.mark.parametrize("signal_number", [signal.SIGHUP, signal.SIGTERM])
def test_a_hangup_mid_reply_saves_it_and_exits(tmp_path, tiny_long_model_dir, signal_number):
    home = tmp_path / "home"
    app, seen = start_a_long_reply(home, tiny_long_model_dir)
    try:
        app.process.send_signal(signal_number)
        app.wait_exit()
        # 128 + the signal, as a shell reports a process ended by it: scripts can tell.
        assert app.process.returncode == 128 + signal_number
    finally:
        app.close()
    info, conversation, check = only_chat(home / "data" / "history.sqlite3")
    assert check == "ok"
    assert info.profile == "long" and info.levers.max_new_tokens == 100000
    question, reply = conversation.messages
    assert question.content == "Tell me a story"
    assert reply.status is MessageStatus.INTERRUPTED
    assert reply.content.startswith(seen) and len(reply.content) > len(seen)
    # Saved with its provenance: the engine's final result was waited for.
    assert reply.provenance.seed is not None
    assert reply.provenance.stats.new_tokens > 0
    assert reply.provenance.levers.temperature == 1.0


def test_kill_9_mid_reply_then_continue_shows_it_interrupted(tmp_path, tiny_long_model_dir):
    home = tmp_path / "home"
    db = home / "data" / "history.sqlite3"
    app, _seen = start_a_long_reply(home, tiny_long_model_dir)
    try:
        app.process.kill()
        app.wait_exit()
    finally:
        app.close()
    status, saved = streamed_reply(db) or ("", "")
    assert status == "streaming" and saved  # nobody could mark it
    resumed = Terminal(home, "--model", str(tiny_long_model_dir), "--device", "cpu", "-c")
    try:
        resumed.wait_until(lambda: b"interrupted" in resumed.output, "the reply marked")
        resumed.wait_until(lambda: question_shown(resumed), "the question above the reply")
        resumed.process.send_signal(signal.SIGTERM)
        resumed.wait_exit()
    finally:
        resumed.close()
    info, conversation, check = only_chat(db)
    assert check == "ok"
    assert info.profile == "long"
    reply = conversation.messages[-1]
    assert (reply.status, reply.content) == (MessageStatus.INTERRUPTED, saved)
