"""Property: however a server's bytes are split into network chunks, and whatever the text
holds (newlines, "data:" lines, unicode, CRLF event endings), the reply leverchat streams is
exactly the text the server sent, in the same pieces. Bounded for CI; set
LEVERCHAT_FUZZ_EXAMPLES for a longer run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import (
    ChatMessage,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers
from remote_fakes import FakeServer, Reply, running

EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "30"))

pieces = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
    | st.sampled_from(["\n", "\r\n", "data: x\n\n", "é", "🙂"]),
    min_size=1,
    max_size=8,
)


def event_bytes(words: list[str], newline: bytes) -> bytes:
    out = b""
    for word in words:
        data = {"choices": [{"index": 0, "delta": {"content": word}}]}
        out += b"data: " + json.dumps(data).encode() + newline + newline
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    out += b"data: " + json.dumps(end).encode() + newline + newline
    return out + b"data: [DONE]" + newline + newline


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(cut, 1), len(data) - 1) for cut in cuts})
    chunks, start = [], 0
    for point in points:
        chunks.append(data[start:point])
        start = point
    chunks.append(data[start:])
    return [chunk for chunk in chunks if chunk]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeServer, RemoteEngine]]:
    for fake in running():
        engine = RemoteEngine()
        engine.load(ModelSpec(source=fake.model_spec, server="vllm")).result(timeout=30)
        yield fake, engine
        engine.close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    words=pieces,
    cuts=st.lists(st.integers(min_value=1, max_value=4000), max_size=20),
    newline=st.sampled_from([b"\n", b"\r\n"]),
)
def test_any_chunking_streams_the_exact_text(
    served: tuple[FakeServer, RemoteEngine], words: list[str], cuts: list[int], newline: bytes
) -> None:
    fake, engine = served
    chunks = split(event_bytes(words, newline), cuts)
    fake.routes["POST /v1/chat/completions"] = lambda request: Reply(
        200, {"Content-Type": "text/event-stream"}, chunks=chunks
    )
    seen: list[str] = []
    request = GenerationRequest((ChatMessage("user", "Hi"),), FixedLevers(Levers(seed=1)))
    result = engine.generate(request, seen.append).result(timeout=30)
    assert result.error is None
    assert result.stop_reason is StopReason.END_OF_TURN
    assert seen == words
    assert result.text == "".join(words)
