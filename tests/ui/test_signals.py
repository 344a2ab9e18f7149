"""SIGHUP (SSH drop) and SIGTERM end the TUI cleanly: generation stops, the process exits."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

CHILD = r"""
import sys, threading
sys.path.insert(0, {tests_ui!r})
from scripted_engine import Script, ScriptedEngine
from pathlib import Path
from leverchat.profiles import ProfileStore
from leverchat.ui.app import LeverChatApp

script = Script(["tick "] * 100000, hold_after=1)  # a reply that never ends by itself
engine = ScriptedEngine([script])

class App(LeverChatApp):
    def on_ready(self) -> None:
        async def go() -> None:
            await self.screen.send("go")
        self.call_later(go)

app = App(engine, profile_store=ProfileStore(Path({profiles!r})), handle_signals=True)
watch = threading.Thread(
    target=lambda: script.reached_hold.wait(60) and open({ready!r}, "w").close(), daemon=True
)
watch.start()
app.run()
engine.close()
cancelled = engine.seen and engine.seen[-1].request.cancel.is_set()
open({done!r}, "w").write(f"cancelled={{bool(cancelled)}} code={{app.return_code}}")
"""


@pytest.mark.parametrize("signal_number", [signal.SIGHUP, signal.SIGTERM])
def test_a_hangup_or_terminate_mid_reply_stops_it_and_exits(tmp_path: Path, signal_number):
    ready, done = tmp_path / "ready", tmp_path / "done"
    code = CHILD.format(
        tests_ui=str(Path(__file__).parent),
        profiles=str(tmp_path / "profiles"),
        ready=str(ready),
        done=str(done),
    )
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    child = tmp_path / "child.py"
    child.write_text(code, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(child)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        start_new_session=True,
    )
    os.close(terminal)
    try:
        deadline = time.monotonic() + 60
        output = b""
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            output += _drain(controller)
            time.sleep(0.05)
        output += _drain(controller)
        assert ready.exists(), f"the app never started its reply: {output[-2000:]!r}"
        process.send_signal(signal_number)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            _drain(controller)
            time.sleep(0.05)
        assert process.poll() is not None, "the app did not exit after the signal"
        # After the clean shutdown, the exit code says which signal ended it (129, 143).
        assert done.read_text() == f"cancelled=True code={128 + signal_number}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(controller)


def _drain(fd: int) -> bytes:
    """Read what the app drew, so it never blocks on a full terminal buffer."""
    import select

    data = b""
    while select.select([fd], [], [], 0)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data
