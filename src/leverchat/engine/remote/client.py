"""The HTTP side: httpx for the requests, httpx-sse for the event stream, and one place that
turns every failure into a RemoteError with a Fault and a message that says what to do.

Why httpx + httpx-sse and not the ``openai`` SDK: leverchat needs the raw status and headers
(Retry-After on 429/503, 401 against a wrong key), Ollama's native JSON-lines route for its
``options``, no hidden retries, and a cold `ask` that prints its first byte fast (the SDK's
pydantic types add import time). httpx-sse is a small, well-kept SSE parser on top of httpx.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx_sse

from leverchat.engine.remote.dialects import WireRequest
from leverchat.engine.remote.endpoint import Endpoint
from leverchat.engine.types import EngineError, Fault
from leverchat.safetext import single_line

CONNECT_TIMEOUT_S = 5.0
# The longest wait for the next event of a stream (a big model's first token may be slow).
READ_TIMEOUT_S = 120.0
# Retry-After: waits up to this long are honoured automatically, at most MAX_RETRIES times.
MAX_RETRY_WAIT_S = 30.0
MAX_RETRIES = 2


class RemoteError(EngineError):
    def __init__(self, message: str, fault: Fault, retry_after: float | None = None) -> None:
        super().__init__(message, fault)
        self.retry_after = retry_after


TIMEOUT_ENV = "LEVERCHAT_REMOTE_TIMEOUT"


@dataclass(frozen=True)
class Timeouts:
    connect: float = CONNECT_TIMEOUT_S
    read: float = READ_TIMEOUT_S

    @classmethod
    def from_environment(cls) -> Timeouts:
        """LEVERCHAT_REMOTE_TIMEOUT: seconds to wait for a server's next byte."""
        text = os.environ.get(TIMEOUT_ENV, "").strip()
        if not text:
            return cls()
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not (seconds > 0 and seconds < float("inf")):
            raise EngineError(f"{TIMEOUT_ENV} must be a number of seconds above 0, not {text!r}")
        return cls(connect=min(CONNECT_TIMEOUT_S, seconds), read=seconds)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110 10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _server_message(response: httpx.Response) -> str:
    """The error text a server put in its body (OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, Ollama's {"error": "..."}), on one line, shortened, and without terminal
    control sequences (a server's text is untrusted: it reaches stderr and the UI)."""
    try:
        data = response.json()
    except ValueError:
        return _clean(response.text)
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return _clean(str(error))
    return _clean(json.dumps(data))


def _clean(text: str, limit: int = 300) -> str:
    return single_line(text, limit)


def error_for_status(response: httpx.Response, where: str, model: str | None) -> RemoteError:
    status = response.status_code
    detail = _server_message(response)
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        return RemoteError(
            f"{where} refused the API key (HTTP {status}){said}. Set LEVERCHAT_API_KEY (or "
            "OPENAI_API_KEY, or api_key_command in config.toml) to a key this server accepts",
            Fault.KEY_REFUSED,
        )
    if status in (429, 503):
        wait = retry_after_seconds(response.headers.get("retry-after"))
        after = f"; it asks to retry after {wait:.0f} s" if wait is not None else ""
        return RemoteError(
            f"{where} is busy (HTTP {status}){after}{said}. Try again later",
            Fault.BUSY,
            retry_after=wait,
        )
    if status == 404 and model is not None and ("model" in detail.lower() or not detail):
        return RemoteError(
            f"{where} does not serve the model {model!r} (HTTP 404){said}. See the models it "
            "lists at /v1/models and choose one with --model-name",
            Fault.UNKNOWN_MODEL,
        )
    return RemoteError(f"{where} answered HTTP {status}{said}", Fault.SERVER_ERROR)


class RemoteClient:
    """One connection pool to one server. Thread-safe for the engine's single thread."""

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None,
        *,
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        limits = timeouts or Timeouts.from_environment()
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(limits.read, connect=limits.connect),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def url(self, path: str, *, at_root: bool = False) -> str:
        return (self.endpoint.root if at_root else self.endpoint.base) + path

    def get_json(
        self, path: str, *, at_root: bool = False, timeout: float | None = None
    ) -> tuple[int, httpx.Headers, Any]:
        """GET a JSON document; (status, headers, parsed body or None)."""
        url = self.url(path, at_root=at_root)
        with _translated(self.endpoint.base, None):
            response = self._http.get(url, timeout=timeout or httpx.USE_CLIENT_DEFAULT)
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, response.headers, body

    def list_models(self) -> tuple[list[dict[str, Any]], httpx.Headers]:
        url = self.url("/models")
        with _translated(self.endpoint.base, None):
            response = self._http.get(url)
        if response.status_code != 200:
            raise error_for_status(response, self.endpoint.base, None)
        try:
            data = response.json()
        except ValueError:
            raise RemoteError(
                f"{url} did not answer JSON: is this an OpenAI-compatible server?",
                Fault.MALFORMED,
            ) from None
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise RemoteError(
                f"{url} did not list models (no 'data' list): is this an OpenAI-compatible server?",
                Fault.MALFORMED,
            )
        return [entry for entry in entries if isinstance(entry, dict)], response.headers

    def stream(self, wire: WireRequest, model: str, cancel: threading.Event) -> Iterator[Any]:
        """The parsed events of one streaming request (JSON objects), until the server says
        it is done. Honours Retry-After on 429/503 before the first event (cancel-aware)."""
        url = self.url(wire.path, at_root=wire.at_root)
        retries = 0
        while True:
            try:
                yield from self._stream_once(url, wire, model, cancel)
                return
            except RemoteError as error:
                wait = error.retry_after
                if (
                    error.fault is not Fault.BUSY
                    or wait is None
                    or wait > MAX_RETRY_WAIT_S
                    or retries >= MAX_RETRIES
                ):
                    raise
                retries += 1
                if cancel.wait(wait):
                    return

    def _stream_once(
        self, url: str, wire: WireRequest, model: str, cancel: threading.Event
    ) -> Iterator[Any]:
        where = self.endpoint.base
        with (
            _translated(where, model, streaming=True),
            self._http.stream("POST", url, json=wire.body) as response,
            _close_on_cancel(response, cancel),
        ):
            if response.status_code != 200:
                response.read()
                raise error_for_status(response, where, model)
            if wire.stream_format == "ndjson":
                for line in response.iter_lines():
                    if line.strip():
                        yield _parse_event(line, url)
                return
            for event in httpx_sse.EventSource(response).iter_sse():
                if event.data.strip() == "[DONE]":
                    return
                if not event.data.strip():
                    continue
                yield _parse_event(event.data, url)


CANCEL_POLL_S = 0.1


@contextlib.contextmanager
def _close_on_cancel(response: httpx.Response, cancel: threading.Event) -> Iterator[None]:
    """Esc while the server sends nothing (a long prompt, a queue): shut the socket down from
    a watcher thread, which wakes the blocked read at once (closing the socket would not)."""
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(CANCEL_POLL_S):
                if not done.is_set():
                    _shutdown(response)
                return

    watcher = threading.Thread(target=watch, name="leverchat-remote-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()


def _shutdown(response: httpx.Response) -> None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _parse_event(text: str, url: str) -> Any:
    try:
        data = json.loads(text)
    except ValueError:
        raise RemoteError(
            f"{url} sent an event that is not JSON: {_clean(text, 80)!r}",
            Fault.MALFORMED,
        ) from None
    if not isinstance(data, dict):
        raise RemoteError(f"{url} sent an event that is not a JSON object", Fault.MALFORMED)
    error = data.get("error")
    if error:
        message = error.get("message", error) if isinstance(error, dict) else error
        raise RemoteError(f"{url} reported an error: {_clean(str(message))}", Fault.SERVER_ERROR)
    return data


@contextlib.contextmanager
def _translated(where: str, model: str | None, *, streaming: bool = False) -> Iterator[None]:
    """Turns httpx's exceptions into RemoteErrors with a Fault and a clear message."""
    try:
        yield
    except (httpx.ConnectTimeout, httpx.ConnectError) as error:
        raise RemoteError(
            f"cannot reach {where}: {_reason(error)}. Is the server running, and is the "
            "address right?",
            Fault.UNREACHABLE,
        ) from None
    except httpx.TimeoutException as error:
        raise RemoteError(
            f"{where} did not answer within the time limit ({type(error).__name__})",
            Fault.TIMEOUT,
        ) from None
    except httpx_sse.SSEError as error:
        raise RemoteError(
            f"{where} did not answer with an event stream ({error})", Fault.MALFORMED
        ) from None
    except (httpx.TransportError, httpx.StreamError) as error:
        raise RemoteError(
            f"the connection to {where} was cut ({_reason(error)})", Fault.STREAM_CUT
        ) from None


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    return text or type(error).__name__
