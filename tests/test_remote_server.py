"""Against a real OpenAI-compatible server: `transformers serve` on 127.0.0.1 serving the
bundled SmolLM2-135M-Instruct (its converted safetensors folder), started once per test
session. Streaming, Esc, a lever change mid-reply, the server killed mid-reply, an unknown
model, and `ask` end to end.

Needs transformers[serving] (the `test` extra) and the bundled model (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import (
    ChatMessage,
    Fault,
    FixedLevers,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers, LiveLevers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_TIMEOUT_S = 180.0
QUESTION = (ChatMessage("user", "Write a few sentences about the sea."),)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("transformers")
    if not script.exists():
        pytest.skip("transformers serve is not installed (pip install 'transformers[serving]')")
    return [str(script), "serve"]


@dataclass
class Served:
    folder: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    started_in_s: float = 0.0

    @property
    def spec(self) -> str:
        return f"openai+http://127.0.0.1:{self.port}/v1"

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        import httpx

        self.port = _free_port()
        started = time.perf_counter()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *_serve_command(),
                    str(self.folder),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--device",
                    "cpu",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"transformers serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    self.started_in_s = time.perf_counter() - started
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"transformers serve was not healthy in {START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from leverchat.engine import bundled, gguf_cache

    root = tmp_path_factory.mktemp("served-model")
    folder = gguf_cache.ensure_converted(bundled.bundled_gguf_path(), cache_root=root).folder
    server = Served(folder, root / "serve.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    monkeypatch.delenv("LEVERCHAT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    served.ensure_running()
    return served


@pytest.fixture
def engine(server: Served) -> Iterator[RemoteEngine]:
    remote = RemoteEngine()
    remote.load(ModelSpec(source=server.spec)).result(timeout=60)
    yield remote
    remote.close()


def generate(
    engine: RemoteEngine, request: GenerationRequest, on_chunk: object = None
) -> tuple[GenerationResult, list[str]]:
    chunks: list[str] = []

    def collect(text: str) -> None:
        chunks.append(text)
        if callable(on_chunk):
            on_chunk(len(chunks))

    return engine.generate(request, collect).result(timeout=300), chunks


def test_detects_transformers_serve_and_streams(server: Served, engine: RemoteEngine) -> None:
    assert engine.info is not None
    assert engine.info.name == str(server.folder)
    assert engine.info.device.startswith("transformers serve at http://127.0.0.1:")
    levers = Levers(temperature=0, max_new_tokens=12, seed=1)
    result, chunks = generate(engine, GenerationRequest(QUESTION, FixedLevers(levers)))
    assert result.error is None
    assert len(chunks) > 1 and "".join(chunks) == result.text
    assert result.stop_reason in (StopReason.MAX_TOKENS, StopReason.END_OF_TURN)
    assert result.stats.new_tokens == len(chunks) <= 12
    assert result.remote is not None
    assert result.remote.endpoint == f"http://127.0.0.1:{server.port}/v1"
    assert dict(result.remote.sent)["generation_config.do_sample"] == "false"


def test_escape_stops_the_reply_and_keeps_the_text(engine: RemoteEngine) -> None:
    # transformers serve (5.24, no continuous batching) finishes a reply whose client went
    # away before it takes the next one: a short limit keeps this test short.
    request = GenerationRequest(QUESTION, FixedLevers(Levers(max_new_tokens=12, seed=2)))

    def stop_at(count: int) -> None:
        if count == 3:
            request.cancel.set()

    result, chunks = generate(engine, request, stop_at)
    assert result.stop_reason is StopReason.CANCELLED
    assert result.text == "".join(chunks[:3])
    # The engine is free again at once: the next reply streams.
    again, _ = generate(
        engine, GenerationRequest(QUESTION, FixedLevers(Levers(max_new_tokens=3, seed=2)))
    )
    assert again.error is None and again.text


def test_lever_change_mid_reply_continues_the_same_reply(engine: RemoteEngine) -> None:
    greedy = Levers(temperature=0, max_new_tokens=12, seed=1)
    plain, _ = generate(engine, GenerationRequest(QUESTION, FixedLevers(greedy)))

    live = LiveLevers(greedy)

    def change_at(count: int) -> None:
        if count == 5:
            # top-k does not change a greedy reply: continuing it must give the same text
            # (the prompt rendered here from the model's template, plus the text so far).
            live.set(greedy.with_value("top_k", 40))

    result, _ = generate(engine, GenerationRequest(QUESTION, live), change_at)
    assert result.text == plain.text
    assert [(c.token_index, c.changed) for c in result.lever_changes] == [(5, ("top_k",))]
    assert result.remote is not None and result.remote.requests == 2
    index, sent = result.remote.continued[0]
    assert index == 5 and dict(sent)["generation_config.top_k"] == "40"


def test_lever_change_takes_effect_mid_reply(engine: RemoteEngine) -> None:
    live = LiveLevers(Levers(temperature=0, max_new_tokens=200, seed=1))

    def shorten(count: int) -> None:
        if count == 4:
            live.set(Levers(temperature=0, max_new_tokens=7, seed=1))

    result, chunks = generate(engine, GenerationRequest(QUESTION, live), shorten)
    assert result.stop_reason is StopReason.MAX_TOKENS
    assert len(chunks) == result.stats.new_tokens == 7
    assert result.lever_changes[0].changed == ("max_new_tokens",)


def test_unknown_model_is_named(server: Served) -> None:
    remote = RemoteEngine()
    with pytest.raises(Exception, match="does not serve a model named 'nope'") as caught:
        remote.load(ModelSpec(source=server.spec, model_name="nope")).result(timeout=60)
    remote.close()
    assert getattr(caught.value, "fault", None) is Fault.UNKNOWN_MODEL


def test_ask_end_to_end(server: Served, tmp_path: Path) -> None:
    started = time.perf_counter()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "leverchat",
            "ask",
            "--model",
            server.spec,
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--json",
            "Hello",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LEVERCHAT_CONFIG_DIR": str(tmp_path / "c")},
    )
    seconds = time.perf_counter() - started
    assert completed.returncode == 0, completed.stderr
    data = json.loads(completed.stdout)
    assert data["text"]
    assert data["remote"]["server"] == "transformers"
    assert data["remote"]["model_id"] == str(server.folder)
    print(f"ask against transformers serve: {seconds:.2f} s for the whole process")


async def test_tui_history_and_reproduce_on_a_remote_reply(server: Served, tmp_path: Path) -> None:
    from leverchat.engine.select import AnyEngine
    from leverchat.history import HistoryStore
    from leverchat.ui.app import LeverChatApp
    from leverchat.ui.history_session import HistorySession
    from leverchat.ui.screens.chat import ChatScreen
    from leverchat.ui.widgets.messages_view import Notice

    db = tmp_path / "history.sqlite3"
    engine = AnyEngine()
    history = HistorySession(HistoryStore(db))
    app = LeverChatApp(engine, model_spec=ModelSpec(source=server.spec), history=history)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        for _ in range(3000):
            if screen.model_info is not None:
                break
            await pilot.pause(0.01)
        assert screen.model_info is not None and screen.model_info.name == str(server.folder)
        screen.live_levers.set(Levers(temperature=0.8, max_new_tokens=8, seed=5))
        await screen.send("Name a colour.")
        for _ in range(30000):
            if not screen.streaming:
                break
            await pilot.pause(0.01)
        first = screen.last_result
        assert first is not None and first.text and first.error is None
        await pilot.press("f5")  # reproduce the reply
        await pilot.pause()
        for _ in range(30000):
            if not screen.streaming:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        assert screen.last_result is not None and screen.last_result is not first
        assert screen.last_result.text == first.text  # the server honours the seed
        notices = [str(notice.render()) for notice in app.query(Notice)]
        assert any(text.startswith("Reproduced exactly") for text in notices), notices
        chat_id = screen.conversation.id
    engine.close()
    history.close()
    with HistoryStore(db) as store:
        reply = store.load_conversation(chat_id).messages[-1]
    assert reply.version_count == 2  # the reproduction is a new version of the reply
    assert reply.provenance is not None and reply.provenance.remote is not None
    assert reply.provenance.remote.model_id == str(server.folder)
    assert dict(reply.provenance.remote.sent)["seed"] == "5"


def test_server_killed_mid_reply_keeps_the_text(server: Served, engine: RemoteEngine) -> None:
    # Last: it kills the session's server (the next test using it starts a new one).
    request = GenerationRequest(QUESTION, FixedLevers(Levers(max_new_tokens=200, seed=3)))

    def kill_at(count: int) -> None:
        if count == 3:
            server.kill()

    result, chunks = generate(engine, request, kill_at)
    assert result.stop_reason is StopReason.INTERRUPTED
    assert result.fault is Fault.STREAM_CUT
    assert result.text == "".join(chunks) and len(chunks) >= 3
    assert result.error is not None and "cut" in result.error
    # Then the server is gone: the next reply says so, and the engine is still alive.
    after, _ = generate(
        engine, GenerationRequest(QUESTION, FixedLevers(Levers(max_new_tokens=3, seed=3)))
    )
    assert after.fault is Fault.UNREACHABLE
    assert "cannot reach" in (after.error or "")
