"""RELIABILITY.md classes through the TUI (Pilot) and a real pty: what a user would see.

Display safety in the app's own messages (notifications, status line, chat list, provenance),
huge Markdown while the UI stays responsive, a malformed profile at start-up, the visible notice
of a trimmed history, and an SSH drop (SIGHUP when idle, or the pty closing with no signal).
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

import pytest
from scripted_engine import INFO, Script, ScriptedEngine
from test_signals import _drain

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.chat import MessageStatus
from leverchat.engine.types import GenerationResult
from leverchat.history import HistoryStore
from leverchat.ui.config import load_config
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.chat_list import ChatListScreen
from leverchat.ui.screens.provenance import ProvenanceScreen
from leverchat.ui.themes import load_themes
from leverchat.ui.widgets.lever_panel import LeverPanel
from leverchat.ui.widgets.messages_view import Notice, ReplyView

# Raw bytes that must never reach the terminal: ESC, 8-bit CSI, 8-bit OSC, 8-bit ST.
RAW_CONTROLS = ("\x1b", "\x9b", "\x9d", "\x9c")
MARKUP_NAME = "[/]no [@click=app.quit]x list[int]"


def notifications(app) -> str:
    return "\n".join(str(notification.message) for notification in app._notifications)


def assert_no_raw_controls(text: str) -> None:
    for byte in RAW_CONTROLS:
        assert byte not in text, f"{byte!r} reached the frame"


async def settle(pilot, rounds: int = 5) -> None:
    for _ in range(rounds):
        await pilot.pause()


# --- Rich markup in the app's own messages -------------------------------------------------------


async def test_a_missing_profile_named_with_markup_is_reported_literally(make_app):
    app = make_app(profile=MARKUP_NAME)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(pilot)
        screen = chat_screen(app)
        assert app.is_running  # neither [/] nor [@click=app.quit] did anything
        assert screen.profiles.profile.name == "default"  # the fallback
        message = notifications(app)
        assert f"could not load profile '{MARKUP_NAME}'" in message
        frame = frame_text(app)
        assert "list[int]" in frame and "[@click=app.quit]x" in frame


@pytest.fixture
def markup_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config folder (config file, user themes) inside folders whose names are markup."""
    folder = tmp_path / "[/]x [@click=app.quit]y list[int]" / "[bold]cfg"
    monkeypatch.setenv("LEVERCHAT_CONFIG_DIR", str(folder))
    (folder / "themes").mkdir(parents=True)
    return folder


async def test_a_broken_config_file_under_a_markup_path_is_named_literally(
    make_app, markup_config_dir: Path
):
    config_file = markup_config_dir / "config.toml"
    config_file.write_bytes(b'theme = "leverchat-light\n')
    app = make_app(config=load_config())
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await settle(pilot)
        assert app.is_running
        assert f"{config_file}:1" in notifications(app)
        frame = frame_text(app)
        assert "list[int]" in frame and "[bold]cfg" in frame
    assert config_file.read_bytes() == b'theme = "leverchat-light\n'


async def test_a_broken_theme_under_a_markup_path_is_named_literally(
    make_app, markup_config_dir: Path
):
    theme_file = markup_config_dir / "themes" / "mine.toml"
    theme_file.write_text('[colors]\nprimary = "[/]not a colour"\n', encoding="utf-8")
    app = make_app(themes=load_themes([markup_config_dir / "themes"]))
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await settle(pilot)
        assert app.is_running
        message = notifications(app)
        assert str(theme_file) in message and "'[/]not a colour' is not a colour" in message
        frame = frame_text(app)
        assert "list[int]" in frame and "[bold]cfg" in frame and "[/]not a colour" in frame


# --- Terminal control sequences in the app's other widgets ---------------------------------------


async def test_a_chat_title_with_escapes_never_reaches_the_terminal_in_the_chat_list(
    make_app, tmp_path: Path
):
    db = tmp_path / "history.sqlite3"
    with HistoryStore(db) as store:
        chat_id = store.create_conversation(title="t\x1b]52;c;eA==\x07\x9b2J tail", profile="x")
        store.add_user_message(chat_id, "hello \x1b[2J", parent_id=None)
    history = HistorySession(HistoryStore(db))
    app = make_app(history=history)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("f4")
            await wait_for(pilot, lambda: isinstance(app.screen, ChatListScreen), "the list")
            await settle(pilot)
            frame = frame_text(app)
            assert "tail" in frame  # the chat is listed
            assert_no_raw_controls(frame)
    finally:
        history.close()


async def test_a_model_name_with_escapes_never_reaches_the_status_line(make_app):
    engine = ScriptedEngine(info=replace(INFO, name="evil\x1b]0;x\x07\x9b2Jmodel"))
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(120, 30)) as pilot:
            screen = chat_screen(app)
            await wait_for(pilot, lambda: screen.model_info is not None, "the model loaded")
            await settle(pilot)
            frame = frame_text(app)
            assert "evil" in frame
            assert_no_raw_controls(frame)
    finally:
        engine.close()


async def test_the_provenance_of_a_reply_with_escapes_never_reaches_the_terminal(make_app, engine):
    engine.info = replace(INFO, name="m\x1b]0;title\x07")
    engine.scripts.append(
        Script(
            ["part \x1b[2J", "\x9d0;x\x9c more", "never"],
            fail_after=2,
            error="boom \x1b]52;c;eA==\x07",
        )
    )
    app = make_app()
    async with app.run_test(size=(120, 50)) as pilot:
        screen = chat_screen(app)
        screen.system_prompt = "be \x1b[31mred\x1b[0m \x9b6n"
        await send(pilot, "go")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].status is MessageStatus.FAILED
        assert_no_raw_controls(frame_text(app))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ProvenanceScreen), "provenance")
        await settle(pilot)
        frame = frame_text(app)
        assert "How this reply was made" in frame and "boom" in frame
        assert_no_raw_controls(frame)


async def test_the_apps_own_notification_with_escapes_never_reaches_the_terminal(make_app):
    name = "p\x1b]0;x\x07\x9b2J\x9d0;t\x9c\x1b[6n"
    app = make_app(profile=name)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await settle(pilot)
        assert "could not load profile" in notifications(app)
        frame = frame_text(app)
        assert "could not load profile" in frame  # the toast is on screen
        assert_no_raw_controls(frame)


# --- Huge or pathological Markdown -----------------------------------------------------------


def big_table(rows: int, columns: int, tag: str = "c") -> str:
    header = "| " + " | ".join(f"h{c}" for c in range(columns)) + " |\n"
    rule = "|" + "---|" * columns + "\n"
    body = "".join(
        "| " + " | ".join(f"{tag}{r}x{c}" for c in range(columns)) + " |\n" for r in range(rows)
    )
    return header + rule + body


def lines_of(text: str) -> list[str]:
    return text.splitlines(keepends=True)


async def stream_with_a_key_press_midway(make_app, engine, chunks: list[str], last_cell: str):
    """Stream ``chunks``; half-way, F2 (the panel) must be handled while the reply streams; at
    the end the whole text is kept and its last cell is on screen."""
    script = Script(chunks, hold_after=len(chunks) // 2)
    engine.chunk_delay = 0
    engine.scripts.append(script)
    app = make_app()
    async with app.run_test(size=(120, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "a big table please")
        await wait_for(pilot, script.reached_hold.is_set, "half of the reply streamed", 3000)
        panel = screen.query_one(LeverPanel)
        shown = panel.display
        await pilot.press("f2")
        await wait_for(pilot, lambda: panel.display is not shown, "F2 handled mid-reply", 3000)
        assert screen.streaming
        script.release.set()
        await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 6000)
        await settle(pilot)
        view = screen.query_one(ReplyView)
        assert screen.conversation.messages[-1].status is MessageStatus.COMPLETE
        assert view.text == "".join(chunks)
        assert view.plain_mode  # too heavy to lay out as Markdown
        assert last_cell in frame_text(app)  # the chat follows the end of the reply


@pytest.mark.slow
async def test_a_streamed_200_by_200_table_keeps_the_ui_responsive(make_app, engine):
    chunks = lines_of(big_table(200, 200))
    await stream_with_a_key_press_midway(make_app, engine, chunks, "c199x199")


@pytest.mark.slow
async def test_fifty_tables_streamed_keep_the_ui_responsive(make_app, engine):
    text = "\n".join(f"Table {n}:\n\n" + big_table(14, 10, tag=f"t{n}r") for n in range(50))
    await stream_with_a_key_press_midway(make_app, engine, lines_of(text), "t49r13x9")


# --- A malformed profile at start-up ---------------------------------------------------------


BAD_PROFILE = b'name = "bad"\nsystem_prompt = "unterminated\n[levers]\ntemperature = 0.5\n'


@pytest.mark.parametrize("selected", [None, "bad"])
async def test_a_malformed_profile_is_reported_and_the_app_starts_on_default(
    make_app, profile_store, selected
):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    bad = profile_store.directory / "bad.toml"
    bad.write_bytes(BAD_PROFILE)
    app = make_app(profile=selected)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = chat_screen(app)
        assert screen.profiles.profile.name == "default"
        assert screen.system_prompt == "You are a helpful assistant."
        message = notifications(app)
        assert f"{bad}:2:" in message  # file, line and column
        if selected:
            assert "could not load profile 'bad'" in message
            assert "using the 'default' profile" in message
        await send(pilot, "still works?")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].status is MessageStatus.COMPLETE
    assert bad.read_bytes() == BAD_PROFILE


# --- History longer than the context window: a visible notice --------------------------------


class TrimmingEngine(ScriptedEngine):
    """A scripted engine whose replies report that the oldest messages were left out."""

    trimmed = 4

    def generate(self, request, on_chunk=None) -> Future[GenerationResult]:
        inner = super().generate(request, on_chunk)
        outer: Future[GenerationResult] = Future()

        def done(future: Future[GenerationResult]) -> None:
            result = future.result()
            stats = replace(result.stats, trimmed_messages=self.trimmed)
            outer.set_result(replace(result, stats=stats))

        inner.add_done_callback(done)
        return outer


async def test_a_trimmed_history_shows_a_visible_notice(make_app):
    engine = TrimmingEngine()
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            await send(pilot, "a long chat")
            await reply_done(pilot)
            await settle(pilot)
            notices = [str(notice.render()) for notice in screen.query(Notice)]
            assert any("4 oldest messages no longer fit" in text for text in notices)
            assert "oldest messages no longer fit" in frame_text(app)
            assert screen.conversation.messages[-1].status is MessageStatus.COMPLETE
    finally:
        engine.close()


async def test_a_signal_during_a_flush_leaves_the_reply_interrupted(
    make_app, engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """SIGHUP's save runs between two awaits of a flush that is drawing the reply: the flush
    must not then save the reply as still streaming (seen as 'streaming' after a pty close)."""
    import asyncio

    db = tmp_path / "history.sqlite3"
    history = HistorySession(HistoryStore(db))
    script = Script(["one ", "two ", "three"], hold_after=2)
    engine.scripts.append(script)
    entered, gate = asyncio.Event(), asyncio.Event()
    real_append = ReplyView.append

    async def held_append(self: ReplyView, chunk: str) -> None:
        entered.set()
        await gate.wait()
        await real_append(self, chunk)

    monkeypatch.setattr(ReplyView, "append", held_append)
    app = make_app(history=history)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = chat_screen(app)
            await send(pilot, "go")
            await wait_for(pilot, script.reached_hold.is_set, "two chunks streamed")
            await wait_for(pilot, entered.is_set, "a flush is drawing the reply")
            reply_id = screen.conversation.messages[-1].id
            screen.save_and_stop(MessageStatus.INTERRUPTED)  # what SIGHUP does
            gate.set()
            await settle(pilot)
            with HistoryStore(db) as store:
                (chat,) = store.list_conversations()
                reply = store.load_conversation(chat.id).messages[-1]
            assert reply.id == reply_id
            assert (reply.status, reply.content) == (MessageStatus.INTERRUPTED, "one two ")
    finally:
        history.close()


# --- SSH drop: SIGHUP when idle, the pty closing without a signal -----------------------------

CHILD = r"""
import sys, threading
sys.path.insert(0, {tests_ui!r})
from pathlib import Path
from scripted_engine import Script, ScriptedEngine
from leverchat.history import HistoryStore
from leverchat.profiles import ProfileStore
from leverchat.ui.app import LeverChatApp
from leverchat.ui.history_session import HistorySession

script = Script(["tick "] * 100000, hold_after=3)  # a reply that never ends by itself
engine = ScriptedEngine([script])
history = HistorySession(HistoryStore(Path({db!r})))
send = {send!r}

class App(LeverChatApp):
    def on_ready(self) -> None:
        if send:
            async def go() -> None:
                await self.screen.send("go")
            self.call_later(go)
        else:
            open({ready!r}, "w").close()

app = App(engine, profile_store=ProfileStore(Path({profiles!r})), handle_signals=True,
          history=history)
if send:
    threading.Thread(
        target=lambda: script.reached_hold.wait(60) and open({ready!r}, "w").close(), daemon=True
    ).start()
app.run()
engine.close()
history.close()
open({done!r}, "w").write(f"terminated_by={{app.terminated_by}}")
"""


class ChildApp:
    """The app on a scripted engine and a real history, in a pty of its own (80x24). The pty
    is not its controlling terminal: closing it sends no signal."""

    def __init__(self, tmp_path: Path, *, send: bool) -> None:
        self.ready, self.done = tmp_path / "ready", tmp_path / "done"
        self.db = tmp_path / "history.sqlite3"
        child = tmp_path / "child.py"
        child.write_text(
            CHILD.format(
                tests_ui=str(Path(__file__).parent),
                db=str(self.db),
                profiles=str(tmp_path / "profiles"),
                ready=str(self.ready),
                done=str(self.done),
                send=send,
            ),
            encoding="utf-8",
        )
        self.controller: int | None
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, str(child)],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(terminal)
        self.output = b""

    def drain(self) -> None:
        if self.controller is not None:
            self.output += _drain(self.controller)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while not self.ready.exists() and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            self.drain()
            time.sleep(0.05)
        self.drain()
        assert self.ready.exists(), f"the app never got ready: {self.output[-2000:]!r}"

    def close_terminal(self) -> None:
        assert self.controller is not None
        os.close(self.controller)
        self.controller = None

    def wait_exit(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while self.process.poll() is None and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.05)
        assert self.process.poll() is not None, "the app did not exit"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.controller is not None:
            os.close(self.controller)

    def messages(self) -> list[tuple[str, str, str]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            return conn.execute(
                "SELECT role, status, content FROM messages ORDER BY seq"
            ).fetchall()


@pytest.fixture
def child_app(tmp_path: Path) -> Iterator[Callable[..., ChildApp]]:
    started: list[ChildApp] = []

    def start(*, send: bool) -> ChildApp:
        app = ChildApp(tmp_path, send=send)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGHUP, signal.SIGTERM])
def test_a_hangup_or_terminate_while_idle_exits_promptly(child_app, signal_number):
    app = child_app(send=False)
    app.wait_ready()
    app.process.send_signal(signal_number)
    app.wait_exit()
    assert app.done.read_text() == f"terminated_by={int(signal_number)}"
    assert not app.db.exists() or app.messages() == []  # nothing half-made is left


@pytest.mark.slow
def test_the_pty_closing_mid_reply_without_a_signal_saves_it_interrupted_and_exits(child_app):
    app = child_app(send=True)
    app.wait_ready()
    app.close_terminal()  # the SSH connection is gone; no SIGHUP comes
    app.wait_exit()
    assert app.done.read_text() == f"terminated_by={int(signal.SIGHUP)}"
    (user_role, user_status, question), (role, status, reply) = app.messages()
    assert (user_role, user_status, question) == ("user", "complete", "go")
    assert (role, status) == ("assistant", "interrupted")
    assert reply.startswith("tick tick tick")
    with sqlite3.connect(app.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
