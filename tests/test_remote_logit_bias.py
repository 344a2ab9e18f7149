"""The boost lever on a server: sent as OpenAI's ``logit_bias`` with the token ids the model's
own tokenizer gives (the server's model id is a folder here), the same ids the local engine
biases; shown unavailable with the reason when no tokenizer is readable or the server has no
logit bias."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.remote.engine import RemoteEngine
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers
from remote_fakes import FakeServer

BOOSTED = Levers(temperature=0.5, seed=3, boost=(("treasure", 2.5), ("As an AI", -100.0)))
MESSAGES = (ChatMessage("user", "Hi"),)


# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def ask(fake: FakeServer, server: str, model_id: str, levers: Levers = BOOSTED) -> Any:
    fake.models = [{"id": model_id, "owned_by": "me"}]
    engine = RemoteEngine()
    info = engine.load(ModelSpec(source=fake.model_spec, server=server)).result(timeout=30)
    result = engine.generate(GenerationRequest(MESSAGES, FixedLevers(levers))).result(timeout=30)
    engine.close()
    [post] = fake.posts()
    return info, result, post.body


def expected_bias(tiny_model_dir: Path) -> dict[str, float]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    bias: dict[str, float] = {}
    for phrase, weight in BOOSTED.boost:
        capital = phrase[0].upper() + phrase[1:]
        for form in (phrase, " " + phrase, capital, " " + capital):
            first = tokenizer.encode(form, add_special_tokens=False)[0]
            bias[str(first)] = weight
    return bias


@pytest.mark.parametrize("server", ["openai", "vllm", "sglang", "llama-server"])
def test_a_local_tokenizer_maps_the_boost_to_logit_bias(
    fake: FakeServer, tiny_model_dir: Path, server: str
) -> None:
    info, result, body = ask(fake, server, str(tiny_model_dir))
    assert body["logit_bias"] == expected_bias(tiny_model_dir)
    assert "boost" not in {lever.name for lever in info.unavailable_levers}
    assert "boost" not in {lever.name for lever in result.remote.unavailable}
    assert ("logit_bias." + next(iter(body["logit_bias"])), "2.5") in result.remote.sent


def test_no_boost_sends_no_logit_bias(fake: FakeServer, tiny_model_dir: Path) -> None:
    _, _, body = ask(fake, "openai", str(tiny_model_dir), Levers(seed=3))
    assert "logit_bias" not in body


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("openai", "logit_bias takes token ids"),
        ("vllm", "the server's model id is a folder here with tokenizer.json"),
    ],
)
def test_without_a_tokenizer_the_boost_is_unavailable_with_the_reason(
    fake: FakeServer, server: str, reason: str
) -> None:
    info, result, body = ask(fake, server, "org/remote-only-model")
    assert "logit_bias" not in body
    reasons = {lever.name: lever.reason for lever in result.remote.unavailable}
    assert reason in reasons["boost"]
    assert "boost" in {lever.name for lever in info.unavailable_levers}


def test_a_server_without_logit_bias_says_so_even_with_a_tokenizer(
    fake: FakeServer, tiny_model_dir: Path
) -> None:
    _, result, body = ask(fake, "tgi", str(tiny_model_dir))
    assert "logit_bias" not in body
    reasons = {lever.name: lever.reason for lever in result.remote.unavailable}
    assert reasons["boost"] == "TGI's Messages API does not apply logit_bias"


def test_the_panel_is_told_what_the_boost_became_on_the_server(
    fake: FakeServer, tiny_model_dir: Path
) -> None:
    fake.models = [{"id": str(tiny_model_dir), "owned_by": "me"}]
    engine = RemoteEngine()
    try:
        engine.load(ModelSpec(source=fake.model_spec, server="vllm")).result(timeout=30)
        [item] = engine.lever_tokens(BOOSTED.with_value("boost", {"treasure": 2})).result(30)
        assert (item.lever, item.text, item.weight) == ("boost", "treasure", 2.0)
        assert {str(seq[0]) for seq in item.sequences} <= set(expected_bias(tiny_model_dir))
        assert "".join(item.pieces[0]) == "treasure"
    finally:
        engine.close()
    other = RemoteEngine()
    try:
        fake.models = [{"id": "org/remote-only-model", "owned_by": "me"}]
        other.load(ModelSpec(source=fake.model_spec, server="vllm")).result(timeout=30)
        assert other.lever_tokens(BOOSTED).result(30) == ()
    finally:
        other.close()
