"""Every server fault gets a clear message and its own `ask` exit code, and the engine stays
usable: unreachable, key refused, unknown model, 429/503 with Retry-After, a stream cut
mid-reply (text kept, marked interrupted), a malformed event, a timeout."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from leverchat.cli import main
from leverchat.commands.remote_cli import FAULT_EXIT_CODES
from leverchat.engine.remote.client import retry_after_seconds
from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    Fault,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers
from remote_fakes import FakeServer, Reply, chat_event, json_reply, running, sse_reply

# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def run_ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_exit_codes_are_distinct() -> None:
    codes = list(FAULT_EXIT_CODES.values())
    assert len(set(codes)) == len(Fault) == len(codes)
    assert not {0, 1, 2, 130} & set(codes)


def test_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"openai+http://127.0.0.1:{free_port()}/v1"
    code, out, err = run_ask(capsys, "--model", url, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.UNREACHABLE]
    assert "cannot reach http://127.0.0.1:" in err and "Is the server running" in err
    assert out == ""


def test_key_refused(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["GET /v1/models"] = lambda request: json_reply(
        {"error": {"message": "Incorrect API key provided"}}, 401
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.KEY_REFUSED]
    assert "refused the API key (HTTP 401): Incorrect API key provided" in err
    assert "LEVERCHAT_API_KEY" in err


def test_unknown_model_at_load(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "--model-name", "gpt-9", "Hi")
    assert code == FAULT_EXIT_CODES[Fault.UNKNOWN_MODEL]
    assert "does not serve a model named 'gpt-9'; it lists: 'fake-model'" in err


def test_several_models_need_a_model_name(capsys: pytest.CaptureFixture[str]) -> None:
    for fake in running([{"id": "a"}, {"id": "b"}]):
        code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
        assert code == FAULT_EXIT_CODES[Fault.UNKNOWN_MODEL]
        assert "serves 2 models: choose one with --model-name" in err
        code, out, _ = run_ask(capsys, "--model", fake.model_spec, "--model-name", "b", "Hi")
        assert code == 0 and out == "Hello there\n"
        assert fake.posts()[-1].body["model"] == "b"


def test_unknown_model_at_generation(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: json_reply(
        {"error": {"message": "The model `fake-model` does not exist."}}, 404
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.UNKNOWN_MODEL]
    assert "does not serve the model 'fake-model'" in err


def test_retry_after_is_honoured_then_succeeds(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = iter(
        [
            json_reply({"error": "slow down"}, 429, {"Retry-After": "0"}),
            sse_reply(["Done"]),
        ]
    )
    fake.routes["POST /v1/chat/completions"] = lambda request: next(replies)
    code, out, _ = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == 0 and out == "Done\n"
    assert len(fake.posts()) == 2


def test_busy_with_a_long_retry_after_says_when(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: json_reply(
        {"error": "overloaded"}, 503, {"Retry-After": "120"}
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.BUSY]
    assert "is busy (HTTP 503); it asks to retry after 120 s" in err
    assert len(fake.posts()) == 1  # a 2-minute wait is not made silently


def test_retry_after_http_date() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-5") == 0.0


def test_stream_cut_keeps_the_text_and_marks_interrupted(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        ["Half", " a reply"], finish=None, done=False, cut=True
    )
    code, out, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.STREAM_CUT]
    assert out == "Half a reply\n"
    assert "connection to" in err and "was cut" in err
    code, out, _ = run_ask(capsys, "--model", fake.model_spec, "--json", "Hi")
    data = json.loads(out)
    assert data["text"] == "Half a reply"
    assert data["stop_reason"] == "interrupted"
    assert data["fault"] == "stream_cut"


def test_stream_that_ends_without_finishing_is_a_cut(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        ["Half"], finish=None, done=False
    )
    code, out, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.STREAM_CUT]
    assert out == "Half\n"
    assert "ended before the reply did" in err


def test_malformed_event(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        ["Fine"], extra=[b"data: {not json\n\n"]
    )
    code, out, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.MALFORMED]
    assert out == "Fine\n"
    assert "sent an event that is not JSON: '{not json'" in err


def test_error_event_mid_stream(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        [], extra=[b'data: {"error": {"message": "CUDA out of memory"}}\n\n']
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.SERVER_ERROR]
    assert "reported an error: CUDA out of memory" in err


def test_timeout(
    fake: FakeServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEVERCHAT_REMOTE_TIMEOUT", "0.3")
    fake.routes["POST /v1/chat/completions"] = lambda request: Reply(
        200, {"Content-Type": "text/event-stream"}, chunks=[chat_event("x")], stall_s=1.5
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.TIMEOUT]
    assert "did not answer within the time limit" in err


def test_bad_timeout_setting_is_named(
    fake: FakeServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEVERCHAT_REMOTE_TIMEOUT", "soon")
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == 1
    assert "LEVERCHAT_REMOTE_TIMEOUT must be a number of seconds above 0, not 'soon'" in err


def test_engine_stays_usable_after_a_fault(fake: FakeServer) -> None:
    replies = iter([sse_reply(["Cut"], finish=None, done=False, cut=True), sse_reply(["Ok"])])
    fake.routes["POST /v1/chat/completions"] = lambda request: next(replies)
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
    request = (ChatMessage("user", "Hi"),)
    first = engine.generate(GenerationRequest(request, FixedLevers(Levers()))).result(timeout=30)
    second = engine.generate(GenerationRequest(request, FixedLevers(Levers()))).result(timeout=30)
    engine.close()
    assert (first.stop_reason, first.fault, first.text) == (
        StopReason.INTERRUPTED,
        Fault.STREAM_CUT,
        "Cut",
    )
    assert (second.stop_reason, second.text, second.fault) == (StopReason.END_OF_TURN, "Ok", None)


def test_cancel_closes_the_stream_and_keeps_the_text(fake: FakeServer) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        [f" w{i}" for i in range(200)], delay=0.01
    )
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
    request = GenerationRequest((ChatMessage("user", "Hi"),), FixedLevers(Levers()))
    seen: list[str] = []

    def on_chunk(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            request.cancel.set()

    result = engine.generate(request, on_chunk).result(timeout=30)
    engine.close()
    assert result.stop_reason is StopReason.CANCELLED
    assert result.text == " w0 w1 w2"


def test_close_while_a_reply_streams_stops_it_and_fails_the_queued(fake: FakeServer) -> None:
    # Quitting (or SIGHUP) mid-reply: the stream stops, its text is kept, nothing queued runs.
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(
        [f" w{i}" for i in range(2000)], delay=0.01
    )
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
    started = threading.Event()
    request = GenerationRequest((ChatMessage("user", "Hi"),), FixedLevers(Levers()))
    running = engine.generate(request, lambda _: started.set())
    queued = engine.generate(
        GenerationRequest((ChatMessage("user", "Next"),), FixedLevers(Levers()))
    )
    assert started.wait(30)
    engine.close(timeout=20)
    result = running.result(timeout=1)
    assert result.stop_reason is StopReason.CANCELLED
    assert result.text.startswith(" w0")
    with pytest.raises(EngineError, match="the engine was closed"):
        queued.result(timeout=1)
    assert len(fake.posts()) == 1


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("openai+http://user:pw@host/v1", "do not put credentials in the model URL"),
        ("openai+http:///v1", "has no host"),
        ("openai+http://host:99999/v1", "the port is not a number"),
    ],
)
def test_bad_model_urls(source: str, message: str) -> None:
    engine = RemoteEngine()
    with pytest.raises(EngineError, match=message):
        engine.load(ModelSpec(source=source)).result(timeout=30)
    engine.close()


def test_url_without_path_gets_v1(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_ask(capsys, "--model", "openai+" + fake.url, "Hi")
    assert code == 0 and out == "Hello there\n"
    assert fake.posts()[0].path == "/v1/chat/completions"


def test_cancel_while_the_server_sends_nothing(fake: FakeServer) -> None:
    # The server holds the stream open and silent for a minute (a long prompt, a queue):
    # Esc must not wait for it.
    fake.routes["POST /v1/chat/completions"] = lambda request: Reply(
        200, {"Content-Type": "text/event-stream"}, chunks=[chat_event("late")], stall_s=60
    )
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
    request = GenerationRequest((ChatMessage("user", "Hi"),), FixedLevers(Levers()))
    future = engine.generate(request)
    threading.Timer(0.3, request.cancel.set).start()
    result = future.result(timeout=20)  # a bound far below the server's silence, not a timing
    engine.close()
    assert result.stop_reason is StopReason.CANCELLED
    assert result.fault is None and result.error is None


@pytest.mark.parametrize(
    "payload",
    ["\x1b]52;c;aGFja2Vk\x07stolen", "\x1b[2J\x1b[Hcleared", "\x9b31mred", "[/]bad markup"],
)
def test_a_servers_error_text_never_reaches_the_terminal_raw(
    fake: FakeServer, capsys: pytest.CaptureFixture[str], payload: str
) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: json_reply(
        {"error": {"message": f"bad {payload}"}}, 400
    )
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "Hi")
    assert code == FAULT_EXIT_CODES[Fault.SERVER_ERROR]
    assert "answered HTTP 400: bad " in err
    assert not any(ch in err for ch in "\x1b\x07\x9b")
