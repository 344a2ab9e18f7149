"""Each server dialect, checked on the request bodies a local capturing endpoint records:
every lever is sent the way that server applies it with leverchat's meaning, and a lever it
cannot apply is reported with the reason (never dropped silently)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leverchat.commands.remote_options import SERVER_CHOICES
from leverchat.engine.remote.dialects import DIALECTS
from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import (
    ChatMessage,
    FixedLevers,
    GenerationRequest,
    GenerationResult,
    ModelSpec,
)
from leverchat.levers import Levers, LiveLevers
from remote_fakes import FakeServer, Recorded, Reply, json_reply, running, sse_reply

LEVERS = Levers(
    temperature=0.6,
    top_k=40,
    top_p=0.9,
    min_p=0.1,
    typical_p=0.8,
    repetition_penalty=1.2,
    frequency_penalty=0.3,
    presence_penalty=0.4,
    no_repeat_ngram_size=3,
    max_new_tokens=50,
    seed=7,
    stop=("END",),
)
MESSAGES = (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))
OPENAI_FIELDS = {
    "temperature": 0.6,
    "top_p": 0.9,
    "frequency_penalty": 0.3,
    "presence_penalty": 0.4,
    "seed": 7,
    "max_tokens": 50,
    "stop": ["END"],
}


# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def ollama_lines(words: list[str]) -> Reply:
    chunks = [
        json.dumps({"message": {"role": "assistant", "content": w}, "done": False}).encode() + b"\n"
        for w in words
    ]
    chunks.append(json.dumps({"done": True, "done_reason": "stop"}).encode() + b"\n")
    return Reply(200, {"Content-Type": "application/x-ndjson"}, chunks=chunks)


def ask(
    fake: FakeServer,
    server: str,
    levers: Levers = LEVERS,
    model_name: str | None = None,
) -> tuple[GenerationResult, RemoteEngine]:
    engine = RemoteEngine()
    spec = ModelSpec(source=fake.model_spec, server=server, model_name=model_name)
    engine.load(spec).result(timeout=30)
    result = engine.generate(GenerationRequest(MESSAGES, FixedLevers(levers))).result(timeout=30)
    engine.close()
    return result, engine


def body_of(fake: FakeServer) -> dict[str, Any]:
    posts = fake.posts()
    assert len(posts) == 1
    body = posts[0].body
    assert isinstance(body, dict)
    return body


def dropped(result: GenerationResult) -> set[str]:
    assert result.remote is not None
    return {lever.name for lever in result.remote.unavailable}


def test_the_cli_choices_are_the_dialects() -> None:
    assert set(SERVER_CHOICES) == set(DIALECTS)


def test_plain_openai_sends_only_openai_fields(fake: FakeServer) -> None:
    result, _ = ask(fake, "openai")
    body = body_of(fake)
    assert result.text == "Hello there"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["stream"] is True and body["model"] == "fake-model"
    assert {k: v for k, v in body.items() if k not in ("model", "messages", "stream")} == (
        OPENAI_FIELDS
    )
    assert dropped(result) == {
        "top_k",
        "min_p",
        "typical_p",
        "repetition_penalty",
        "no_repeat_ngram_size",
    }


@pytest.mark.parametrize("server", ["vllm", "sglang"])
def test_vllm_and_sglang_take_extra_body_fields(fake: FakeServer, server: str) -> None:
    result, _ = ask(fake, server)
    body = body_of(fake)
    for key, value in OPENAI_FIELDS.items():
        assert body[key] == value
    assert body["top_k"] == 40
    assert body["min_p"] == 0.1
    assert body["repetition_penalty"] == 1.2
    assert "typical_p" not in body and "no_repeat_ngram_size" not in body
    assert dropped(result) == {"typical_p", "no_repeat_ngram_size"}


def test_vllm_top_k_off_is_minus_one(fake: FakeServer) -> None:
    # Sent even when off: vLLM would otherwise use the model's generation_config.json value.
    ask(fake, "vllm", Levers(top_k=0, seed=1))
    assert body_of(fake)["top_k"] == -1


def test_llama_server_names_and_whole_context_penalty(fake: FakeServer) -> None:
    result, _ = ask(fake, "llama-server")
    body = body_of(fake)
    assert body["top_k"] == 40
    assert body["min_p"] == 0.1
    assert body["typical_p"] == 0.8
    assert body["repeat_penalty"] == 1.2
    assert body["repeat_last_n"] == -1
    assert "repetition_penalty" not in body
    assert dropped(result) == {"no_repeat_ngram_size"}


def test_ollama_uses_native_chat_with_options(fake: FakeServer) -> None:
    fake.routes["POST /api/chat"] = lambda request: ollama_lines(["Ahoy", "!"])
    result, _ = ask(fake, "ollama")
    post = fake.posts()[0]
    assert post.path == "/api/chat"
    assert result.text == "Ahoy!"
    assert post.body["stream"] is True
    assert post.body["options"] == {
        "temperature": 0.6,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.1,
        "typical_p": 0.8,
        "repeat_penalty": 1.2,
        "repeat_last_n": -1,
        "presence_penalty": 0.4,
        "frequency_penalty": 0.3,
        "seed": 7,
        "num_predict": 50,
        "mirostat": 0,
        "mirostat_tau": 0.0,
        "mirostat_eta": 0.1,
        "stop": ["END"],
    }
    assert dropped(result) == {"no_repeat_ngram_size"}


def test_tgi_messages_api_reports_generate_only_levers(fake: FakeServer) -> None:
    result, _ = ask(fake, "tgi")
    body = body_of(fake)
    assert {k: v for k, v in body.items() if k not in ("model", "messages", "stream")} == (
        OPENAI_FIELDS
    )
    assert result.remote is not None
    reasons = {lever.name: lever.reason for lever in result.remote.unavailable}
    assert "only its /generate route" in reasons["top_k"]
    assert set(reasons) == {
        "top_k",
        "min_p",
        "typical_p",
        "repetition_penalty",
        "no_repeat_ngram_size",
    }


def test_transformers_serve_gets_a_generation_config_string(fake: FakeServer) -> None:
    result, _ = ask(fake, "transformers")
    body = body_of(fake)
    # It refuses unknown fields: only these may be sent.
    assert set(body) == {"model", "messages", "stream", "seed", "generation_config"}
    assert body["seed"] == 7
    config = json.loads(body["generation_config"])
    assert config == {
        "max_new_tokens": 50,
        "top_k": 40,
        "top_p": 0.9,
        "min_p": 0.1,
        "typical_p": 0.8,
        "repetition_penalty": 1.2,
        "no_repeat_ngram_size": 3,
        "do_sample": True,
        "temperature": 0.6,
        "stop_strings": ["END"],
    }
    # Its frequency_penalty means repetition_penalty = 1 + value: never sent.
    assert dropped(result) == {"frequency_penalty", "presence_penalty"}


def test_transformers_greedy_is_do_sample_false(fake: FakeServer) -> None:
    ask(fake, "transformers", Levers(temperature=0, seed=1))
    config = json.loads(body_of(fake)["generation_config"])
    assert config["do_sample"] is False
    assert "temperature" not in config


def test_neutral_unavailable_levers_are_not_reported_as_dropped(fake: FakeServer) -> None:
    result, _ = ask(fake, "openai", Levers(min_p=0.0, seed=1))
    assert dropped(result) == set()


def test_provenance_records_endpoint_model_and_exact_values(fake: FakeServer) -> None:
    result, _ = ask(fake, "vllm")
    remote = result.remote
    assert remote is not None
    assert remote.endpoint == fake.url + "/v1"
    assert remote.model_id == "fake-model"
    assert remote.server == "vllm"
    sent = dict(remote.sent)
    assert sent["top_k"] == "40"
    assert sent["stop"] == '["END"]'
    assert sent["seed"] == "7"


@pytest.mark.parametrize(
    ("owned_by", "expected"),
    [("vllm", "vllm"), ("sglang", "sglang"), ("llamacpp", "llama-server"), ("acme", "openai")],
)
def test_detection_from_owned_by(owned_by: str, expected: str) -> None:
    for fake in running([{"id": "m", "owned_by": owned_by}]):
        engine = RemoteEngine()
        engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
        engine.generate(GenerationRequest(MESSAGES, FixedLevers(LEVERS))).result(timeout=30)
        engine.close()
        result_server = fake.posts()[0]
        assert result_server.path == "/v1/chat/completions"
        body = result_server.body
        assert ("top_k" in body) == (expected != "openai")
        assert ("repeat_penalty" in body) == (expected == "llama-server")


def test_detection_of_transformers_serve_and_tgi() -> None:
    for fake in running([{"id": "m", "owned_by": "local", "status": {"value": "loaded"}}]):
        engine = RemoteEngine()
        info = engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
        engine.close()
        assert info.device.startswith("transformers serve")
    for fake in running([{"id": "m", "owned_by": "m"}]):
        fake.routes["GET /info"] = lambda request: json_reply({"router": "text-generation-router"})
        engine = RemoteEngine()
        info = engine.load(ModelSpec(source=fake.model_spec)).result(timeout=30)
        engine.close()
        assert info.device.startswith("Text Generation Inference")
        assert {lever.name for lever in info.unavailable_levers} >= {"top_k", "typical_p"}


# -- continuing a reply after a lever change ---------------------------------------------


def change_after_first_chunk(live: LiveLevers, new: Levers) -> Any:
    seen: list[str] = []

    def on_chunk(text: str) -> None:
        seen.append(text)
        if len(seen) == 1:
            live.set(new)

    return on_chunk


def run_with_change(fake: FakeServer, server: str, model_name: str | None = None) -> Any:
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec, server=server, model_name=model_name)).result(
        timeout=30
    )
    live = LiveLevers(Levers(temperature=0.9, seed=3, max_new_tokens=20))
    on_chunk = change_after_first_chunk(live, Levers(temperature=0.1, seed=3, max_new_tokens=20))
    result = engine.generate(GenerationRequest(MESSAGES, live), on_chunk).result(timeout=30)
    engine.close()
    return result


def test_vllm_continues_the_final_message_with_the_new_levers(fake: FakeServer) -> None:
    replies = iter([sse_reply(["One", " two", " three"]), sse_reply([" four"])])
    fake.routes["POST /v1/chat/completions"] = lambda request: next(replies)
    result = run_with_change(fake, "vllm")
    first, second = (post.body for post in fake.posts())
    assert first["temperature"] == 0.9
    assert second["temperature"] == 0.1
    assert second["continue_final_message"] is True
    assert second["add_generation_prompt"] is False
    assert second["messages"][-1] == {"role": "assistant", "content": "One"}
    # The new request asks only for the room left.
    assert second["max_tokens"] == 19
    assert result.text == "One four"
    assert [(c.token_index, c.changed) for c in result.lever_changes] == [(1, ("temperature",))]
    assert result.remote is not None and result.remote.requests == 2


def test_llama_server_continues_by_prefill(fake: FakeServer) -> None:
    replies = iter([sse_reply(["A", "B"]), sse_reply(["C"])])
    fake.routes["POST /v1/chat/completions"] = lambda request: next(replies)
    result = run_with_change(fake, "llama-server")
    second = fake.posts()[1].body
    assert second["messages"][-1] == {"role": "assistant", "content": "A"}
    assert "continue_final_message" not in second
    assert result.text == "AC"


def test_transformers_continues_through_completions_with_the_template(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    (folder / "tokenizer_config.json").write_text('{"eos_token": "<|end|>"}')
    for fake in running([{"id": str(folder), "owned_by": "local", "status": {"value": "x"}}]):
        fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(["Hel", "lo"])
        completions = iter(
            [
                Reply(
                    200,
                    {"Content-Type": "text/event-stream"},
                    chunks=[
                        b'data: {"choices":[{"index":0,"text":" you"}]}\n\n',
                        b'data: {"choices":[{"index":0,"text":"","finish_reason":"stop"}]}\n\n',
                    ],
                )
            ]
        )
        fake.routes["POST /v1/completions"] = lambda request, c=completions: next(c)
        result = run_with_change(fake, "transformers")
        second = fake.posts()[1]
        assert second.path == "/v1/completions"
        assert second.body["prompt"] == (
            "<|system|>Be brief.<|end|>\n<|user|>Hi<|end|>\n<|assistant|>Hel"
        )
        assert json.loads(second.body["generation_config"])["temperature"] == 0.1
        assert result.text == "Hel you"
        assert result.lever_changes[0].token_index == 1


def test_without_a_template_the_change_is_deferred_and_said(fake: FakeServer) -> None:
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(["a", "b", "c"])
    result = run_with_change(fake, "openai")
    assert len(fake.posts()) == 1
    assert result.text == "abc"
    assert result.lever_changes == ()
    assert result.remote is not None
    assert "applies from the next one" in result.remote.note


def test_a_change_during_a_structured_reply_waits_for_the_next_one(fake: FakeServer) -> None:
    """vLLM could continue the reply, but a new request would start its JSON grammar again in
    the middle of the object: the change is kept for the next reply, and the user is told."""
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(['{"a"', ": 1", "}"])
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec, server="vllm")).result(timeout=30)
    structured = Levers(temperature=0.9, seed=3, max_new_tokens=20, json_mode=1)
    live = LiveLevers(structured)
    on_chunk = change_after_first_chunk(live, structured.with_value("temperature", 0.1))
    result = engine.generate(GenerationRequest(MESSAGES, live), on_chunk).result(timeout=30)
    engine.close()
    assert len(fake.posts()) == 1  # no continuation request
    assert result.text == '{"a": 1}'
    assert result.lever_changes == ()
    assert any("structured output" in notice for notice in result.notices)


def test_recorded_request_never_holds_the_key_outside_the_header(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEVERCHAT_API_KEY", "sk-secret-123")
    result, _ = ask(fake, "vllm")
    post: Recorded = fake.posts()[0]
    assert post.headers["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in json.dumps(post.body)
    assert "sk-secret-123" not in repr(result)


def test_a_recorded_lever_change_replays_at_the_same_token(fake: FakeServer) -> None:
    import threading

    from leverchat.replay import ReplayLevers

    def script() -> Any:
        replies = iter([sse_reply(["a", "b", "c"]), sse_reply(["d", "e"])])
        return lambda request: next(replies)

    fake.routes["POST /v1/chat/completions"] = script()
    recorded = run_with_change(fake, "vllm")
    assert [c.token_index for c in recorded.lever_changes] == [1]
    fake.routes["POST /v1/chat/completions"] = script()
    engine = RemoteEngine()
    engine.load(ModelSpec(source=fake.model_spec, server="vllm")).result(timeout=30)
    cancel = threading.Event()
    source = ReplayLevers(recorded.levers, recorded.lever_changes, cancel=cancel)
    again = engine.generate(GenerationRequest(MESSAGES, source, cancel=cancel)).result(timeout=30)
    engine.close()
    assert again.lever_changes == recorded.lever_changes
    assert again.text == recorded.text == "ade"
    first, second, third, fourth = (post.body for post in fake.posts())
    assert (first, second) == (third, fourth)


def test_remote_provenance_round_trips_through_the_history_format() -> None:
    from leverchat.chat import ReplyProvenance
    from leverchat.history import provenance_from_mapping, provenance_to_mapping
    from leverchat.remote_record import remote_from_mapping

    for fake in running():
        result, _ = ask(fake, "vllm")
    provenance = ReplyProvenance("m", "default", "", LEVERS, seed=7, remote=result.remote)
    data = json.loads(json.dumps(provenance_to_mapping(provenance)))
    assert provenance_from_mapping(data) == provenance
    with pytest.raises(ValueError, match="remote provenance sent"):
        remote_from_mapping({**data["remote"], "sent": [["top_k"]]})
