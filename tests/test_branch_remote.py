"""A branch on a remote server: the given start goes as a final assistant message the server
continues (the same path as a lever change mid-reply); a server that cannot continue a reply
says so instead of answering anew."""

from __future__ import annotations

import pytest

from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import (
    ChatMessage,
    FixedLevers,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
    ReplyPrefix,
    StopReason,
)
from leverchat.levers import Levers
from remote_fakes import FakeServer, sse_reply

MESSAGES = (ChatMessage("user", "Talk like a pirate"),)
LEVERS = Levers(temperature=0.7, seed=5, max_new_tokens=20)


# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def branch(fake: FakeServer, server: str, prefix: str) -> tuple[GenerationResult, list[str]]:
    engine = RemoteEngine()
    try:
        engine.load(ModelSpec(source=fake.model_spec, server=server)).result(timeout=30)
        chunks: list[str] = []
        request = GenerationRequest(
            MESSAGES, FixedLevers(LEVERS), reply_prefix=ReplyPrefix(prefix, token_ids=(1, 2))
        )
        return engine.generate(request, chunks.append).result(timeout=30), chunks
    finally:
        engine.close()


def test_vllm_continues_the_given_start(fake: FakeServer) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply([" sea", " dog"])
    result, chunks = branch(fake, "vllm", "Arr, [/]the")
    (post,) = fake.posts()
    assert post.body["messages"][-1] == {"role": "assistant", "content": "Arr, [/]the"}
    assert post.body["continue_final_message"] is True
    assert post.body["max_tokens"] == 20  # the given start takes none of the room
    assert chunks == ["Arr, [/]the", " sea", " dog"]
    assert result.text == "Arr, [/]the sea dog"


def test_a_server_that_cannot_continue_says_so(fake: FakeServer) -> None:
    # transformers serve continues through /v1/completions with the model's chat template,
    # which the fake server's model does not have.
    result, chunks = branch(fake, "transformers", "Arr")
    assert fake.posts() == []
    assert chunks == []
    assert result.stop_reason is StopReason.ERROR
    assert result.error is not None and "cannot continue a reply" in result.error
