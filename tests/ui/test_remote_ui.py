"""The TUI on a remote engine (a scripted OpenAI-compatible server on 127.0.0.1): the status
line names the server, the panel marks the levers it cannot apply with the reason, replies are
saved with the remote provenance, a cut stream keeps its text marked interrupted, reproduce
works, and the API key is written nowhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat import paths
from leverchat.chat import MessageStatus
from leverchat.cli import main
from leverchat.engine.select import AnyEngine
from leverchat.engine.types import ModelSpec
from leverchat.history import HistoryStore
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.provenance import provenance_lines
from leverchat.ui.widgets.messages_view import Notice
from leverchat.ui.widgets.status_line import StatusLine
from remote_fakes import FakeServer, json_reply, running, sse_reply

KEY = "sk-remote-ui-secret-77"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    monkeypatch.setenv("LEVERCHAT_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield from running()


@pytest.fixture
def db() -> Path:
    return paths.history_db()  # where `leverchat history export` finds it


def remote_app(make_app, fake: FakeServer, db: Path, server: str | None = None):
    engine = AnyEngine()
    history = HistorySession(HistoryStore(db))
    app = make_app(
        engine=engine,
        model_spec=ModelSpec(source=fake.model_spec, server=server),
        history=history,
    )
    return app, engine, history


async def test_status_and_panel_show_the_server_and_unavailable_levers(make_app, fake, db):
    app, engine, history = remote_app(make_app, fake, db)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "connected")
        state = screen.query_one(StatusLine).state
        assert state.model == "fake-model"
        assert state.device == f"OpenAI-compatible at {fake.url}/v1"
        field = screen.panel.field("top_k")
        assert field.has_class("-unavailable")
        help_text = str(field.query_one(".lever-help").render())
        assert "Not applied by this server: not part of the OpenAI API" in help_text
        assert not screen.panel.field("temperature").has_class("-unavailable")
    engine.close()
    history.close()


async def test_a_remote_reply_is_saved_with_its_provenance_and_no_key(make_app, fake, db, tmp_path):
    app, engine, history = remote_app(make_app, fake, db, server="vllm")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "connected")
        await send(pilot, "hello server")
        await reply_done(pilot)
        assert "Hello there" in frame_text(app)
        chat_id = screen.conversation.id
    engine.close()
    history.close()
    assert fake.posts()[0].headers["Authorization"] == f"Bearer {KEY}"
    with HistoryStore(db) as store:
        conversation = store.load_conversation(chat_id)
    reply = conversation.messages[-1]
    assert reply.content == "Hello there"
    remote = reply.provenance.remote
    assert remote is not None
    assert (remote.endpoint, remote.server, remote.model_id) == (
        f"{fake.url}/v1",
        "vllm",
        "fake-model",
    )
    assert dict(remote.sent)["seed"] == str(reply.provenance.seed)
    lines = "\n".join(provenance_lines(reply.provenance))
    assert f"Server: vllm at {fake.url}/v1" in lines
    assert "Not applied: typical_p" not in lines  # typical_p was at its neutral value
    markdown, exported_json = tmp_path / "chat.md", tmp_path / "chat.json"
    assert main(["history", "export", chat_id, "-o", str(markdown)]) == 0
    assert main(["history", "export", chat_id, "--format", "json", "-o", str(exported_json)]) == 0
    assert f"via vllm at {fake.url}/v1" in markdown.read_text()
    assert '"model_id": "fake-model"' in exported_json.read_text()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


async def test_a_cut_stream_keeps_the_text_marked_interrupted(make_app, fake, db):
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        ["Half", " a reply"], finish=None, done=False, cut=True
    )
    app, engine, history = remote_app(make_app, fake, db)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "connected")
        await send(pilot, "hello")
        await reply_done(pilot)
        text = frame_text(app)
        assert "Half a reply" in text and "interrupted" in text
        # The app is alive and can retry.
        fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(["Back"])
        await send(pilot, "again")
        await reply_done(pilot)
        assert "Back" in frame_text(app)
        chat_id = screen.conversation.id
    engine.close()
    history.close()
    with HistoryStore(db) as store:
        messages = store.load_conversation(chat_id).messages
    assert (messages[1].content, messages[1].status) == ("Half a reply", MessageStatus.INTERRUPTED)
    assert "was cut" in (messages[1].provenance.error or "")


async def test_reproduce_a_remote_reply(make_app, fake, db):
    app, engine, history = remote_app(make_app, fake, db, server="vllm")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: screen.model_info is not None, "connected")
        await send(pilot, "story")
        await reply_done(pilot)
        await pilot.press("f5")
        await reply_done(pilot)
        assert "Reproduced exactly" in frame_text(app)
    engine.close()
    history.close()
    first, second = (json.dumps(post.body) for post in fake.posts())
    assert first == second  # the same messages, levers and seed were sent again


async def test_a_refused_key_is_shown_literally_and_the_app_stays(make_app, fake, db):
    fake.routes["GET /v1/models"] = lambda request: json_reply(
        {"error": {"message": "[/]no [bold]key[/] \x1b]0;title\x07"}}, 401
    )
    app, engine, history = remote_app(make_app, fake, db)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await wait_for(pilot, lambda: bool(app.query(Notice)), "the failure is shown")
        await pilot.pause()
        shown = str(app.query_one(Notice).render())
        assert "refused the API key (HTTP 401): [/]no [bold]key[/]" in shown
        assert "\x1b" not in frame_text(app)
        # Still alive: another model can be loaded (here the same server, now accepting).
        fake.routes["GET /v1/models"] = lambda request: json_reply({"data": [{"id": "m"}]})
        screen.load_model(ModelSpec(source=fake.model_spec))
        await wait_for(pilot, lambda: screen.model_info is not None, "connected")
    engine.close()
    history.close()
