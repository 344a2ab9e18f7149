"""A scripted OpenAI-compatible server on 127.0.0.1 for the remote engine's tests: it records
every request (method, path, headers, JSON body) and answers what each test scripts, including
the faults a real server rarely produces (401, 429 with Retry-After, a cut stream, a malformed
event, a stall)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    """What the fake sends: a status, headers, and a body (bytes) or a stream of chunks."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None
    chunk_delay_s: float = 0.0
    cut: bool = False  # close the connection without ending the chunked body
    stall_s: float = 0.0  # wait this long before the first chunk


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode()
    )


def chat_event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    choice: dict[str, Any] = {"index": 0, "delta": delta}
    if finish:
        choice["finish_reason"] = finish
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def sse_reply(
    words: list[str],
    *,
    finish: str | None = "stop",
    done: bool = True,
    delay: float = 0.0,
    cut: bool = False,
    extra: list[bytes] | None = None,
) -> Reply:
    chunks = [chat_event(word) for word in words] + list(extra or [])
    if finish:
        chunks.append(chat_event(None, finish))
    if done:
        chunks.append(b"data: [DONE]\n\n")
    return Reply(
        200, {"Content-Type": "text/event-stream"}, chunks=chunks, chunk_delay_s=delay, cut=cut
    )


Handler = Callable[[Recorded], Reply]


class FakeServer:
    """Routes are "METHOD /path" -> handler; /v1/models answers ``models`` by default."""

    def __init__(self, models: list[dict[str, Any]] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.models = models if models is not None else [{"id": "fake-model", "owned_by": "me"}]
        self.routes: dict[str, Handler] = {
            "GET /v1/models": lambda request: json_reply({"object": "list", "data": self.models}),
            "POST /v1/chat/completions": lambda request: sse_reply(["Hello", " there"]),
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def model_spec(self) -> str:
        return f"openai+{self.url}/v1"

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                request = Recorded(method, self.path, dict(self.headers.items()), body)
                fake.requests.append(request)
                handler = fake.routes.get(f"{method} {self.path}")
                reply = handler(request) if handler else json_reply({"detail": "Not Found"}, 404)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.chunks is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                if reply.stall_s:
                    time.sleep(reply.stall_s)
                try:
                    for chunk in reply.chunks:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        if reply.chunk_delay_s:
                            time.sleep(reply.chunk_delay_s)
                    if reply.cut:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


def running(models: list[dict[str, Any]] | None = None) -> Iterator[FakeServer]:
    server = FakeServer(models).start()
    try:
        yield server
    finally:
        server.stop()


# Fixtures for every test module (tests/conftest.py loads this module as a plugin).


@pytest.fixture
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No API key in the environment: a request carries none unless the test gives one."""
    monkeypatch.delenv("LEVERCHAT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    yield from running()
