"""Structured output on remote servers: the request body each server documents (recorded by a
local capturing endpoint), and a server that cannot apply a constraint reports it with the
reason instead of dropping it silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leverchat.engine.remote.dialects import DIALECTS
from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers
from remote_fakes import FakeServer, Reply

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
GRAMMAR = 'root ::= "yes" | "no"'
MESSAGES = (ChatMessage("user", "Hi"),)


# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def ollama_reply(request: Any) -> Reply:
    lines = [{"message": {"role": "assistant", "content": "{}"}, "done": False}]
    lines.append({"done": True, "done_reason": "stop"})
    chunks = [json.dumps(line).encode() + b"\n" for line in lines]
    return Reply(200, {"Content-Type": "application/x-ndjson"}, chunks=chunks)


def send(fake: FakeServer, server: str, **levers: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The body the server got, and the unavailable levers with their reasons."""
    if server == "ollama":
        fake.routes["POST /api/chat"] = ollama_reply
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec, server=server)).result(timeout=30)
    request = GenerationRequest(MESSAGES, FixedLevers(Levers(seed=1, **levers)))
    result = engine.generate(request).result(timeout=30)
    engine.close()
    post = fake.posts()[-1]
    assert result.remote is not None
    return post.body, {lever.name: lever.reason for lever in result.remote.unavailable}


@pytest.mark.parametrize("server", ["openai", "vllm", "sglang"])
def test_openai_style_servers_get_response_format(fake: FakeServer, server: str) -> None:
    body, _ = send(fake, server, json_schema=json.dumps(SCHEMA))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }


@pytest.mark.parametrize("server", ["openai", "vllm", "sglang"])
def test_json_mode_is_the_json_object_format(fake: FakeServer, server: str) -> None:
    body, _ = send(fake, server, json_mode=1)
    assert body["response_format"] == {"type": "json_object"}


def test_vllm_takes_regex_and_grammar_in_structured_outputs(fake: FakeServer) -> None:
    body, reasons = send(fake, "vllm", regex="[0-9]+")
    assert body["structured_outputs"] == {"regex": "[0-9]+"}
    assert "regex" not in reasons and "grammar" not in reasons


def test_vllm_grammar(fake: FakeServer) -> None:
    body, _ = send(fake, "vllm", grammar=GRAMMAR)
    assert body["structured_outputs"] == {"grammar": GRAMMAR}


def test_sglang_takes_regex_and_ebnf(fake: FakeServer) -> None:
    body, _ = send(fake, "sglang", grammar=GRAMMAR)
    assert body["ebnf"] == GRAMMAR


def test_llama_server_takes_json_schema_and_gbnf(fake: FakeServer) -> None:
    body, reasons = send(fake, "llama-server", json_schema=json.dumps(SCHEMA))
    assert body["json_schema"] == SCHEMA
    assert reasons == {}


def test_llama_server_grammar_and_json_mode(fake: FakeServer) -> None:
    body, _ = send(fake, "llama-server", grammar=GRAMMAR)
    assert body["grammar"] == GRAMMAR


def test_llama_server_cannot_apply_a_regex_and_says_so(fake: FakeServer) -> None:
    body, reasons = send(fake, "llama-server", regex="[0-9]+")
    assert "regex" not in body and "grammar" not in body and "json_schema" not in body
    assert reasons["regex"].startswith("llama-server has no regular-expression constraint")


@pytest.mark.parametrize(
    ("levers", "expected"),
    [({"json_mode": 1}, "json"), ({"json_schema": json.dumps(SCHEMA)}, SCHEMA)],
)
def test_ollama_format(fake: FakeServer, levers: dict[str, Any], expected: Any) -> None:
    body, reasons = send(fake, "ollama", **levers)
    assert body["format"] == expected
    assert "options" in body and "format" not in body["options"]
    assert reasons == {}
    assert {"grammar", "regex"} <= set(DIALECTS["ollama"].unavailable)


def test_tgi_json_object_with_value(fake: FakeServer) -> None:
    body, _ = send(fake, "tgi", json_schema=json.dumps(SCHEMA))
    assert body["response_format"] == {"type": "json_object", "value": SCHEMA}
    _, reasons = send(fake, "tgi", regex="[0-9]+")
    assert "/generate" in reasons["regex"]


@pytest.mark.parametrize("lever", [{"grammar": GRAMMAR}, {"regex": "[0-9]+"}])
def test_plain_openai_reports_regex_and_grammar_unavailable(
    fake: FakeServer, lever: dict[str, Any]
) -> None:
    body, reasons = send(fake, "openai", **lever)
    [name] = lever
    what = "grammar" if name == "grammar" else "regular-expression"
    assert reasons[name] == f"OpenAI-compatible has no {what} constraint"
    assert "response_format" not in body


def test_transformers_serve_has_no_structured_output(fake: FakeServer) -> None:
    body, reasons = send(fake, "transformers", json_mode=1)
    assert reasons["json_mode"] == "transformers serve has no structured output"
    assert "response_format" not in body and "format" not in body


def test_no_constraint_sends_no_structured_field(fake: FakeServer) -> None:
    body, _ = send(fake, "vllm")
    assert not {"response_format", "structured_outputs", "regex", "ebnf"} & set(body)
