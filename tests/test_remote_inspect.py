"""`ask --inspect` on a server: leverchat asks for its log-probabilities where the dialect takes
them, keeps them as "reported" (never as raw or after-lever), and says what is missing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leverchat.cli import main
from remote_fakes import FakeServer, Recorded, Reply, chat_event

# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def _event(token: str, logprob: float, top: list[tuple[str, float]]) -> bytes:
    content = [
        {
            "token": token,
            "logprob": logprob,
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
        }
    ]
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"content": token},
        "logprobs": {"content": content},
    }
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def _with_logprobs(request: Recorded) -> Reply:
    chunks = [
        _event("Hello", -0.1, [("Hello", -0.1), ("Hi", -2.5), ("\x1b[31m", -5.0)]),
        _event(" there", -0.7, [(" there", -0.7), (" world", -0.9)]),
        chat_event(None, "stop"),
        b"data: [DONE]\n\n",
    ]
    return Reply(200, {"Content-Type": "text/event-stream"}, chunks=chunks)


def _ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_vllm_server_is_asked_for_log_probabilities_and_they_are_kept_as_reported(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST /v1/chat/completions"] = _with_logprobs
    code, out, _ = _ask(
        capsys, "--model", fake.model_spec, "--server", "vllm", "--inspect", "2", "--json", "Hi"
    )
    assert code == 0
    body = fake.posts()[-1].body
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    tokens = json.loads(out)["inspection"]["tokens"]
    assert [t["text"] for t in tokens] == ["Hello", " there"]
    first = tokens[0]
    assert first["raw"] is None and first["after"] is None and first["token_id"] is None
    assert first["reported"] == pytest.approx(0.904837, rel=1e-5)
    assert [a["text"] for a in first["alternatives"]] == ["Hello", "Hi"]  # at most N
    assert "not available from a server" in first["note"]


def test_the_table_shows_reported_probabilities_and_escapes_token_text(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.routes["POST /v1/chat/completions"] = _with_logprobs
    code, out, err = _ask(
        capsys, "--model", fake.model_spec, "--server", "vllm", "--inspect", "3", "Hi"
    )
    assert code == 0 and out == "Hello there\n"
    assert "reported 90.5%" in err and "not available from a server" in err
    assert "\x1b" not in err


def test_a_server_without_log_probabilities_is_not_asked_and_the_json_says_so(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _ask(
        capsys,
        "--model", fake.model_spec, "--server", "transformers", "--inspect", "5", "--json", "Hi",
    )  # fmt: skip
    assert code == 0
    body = fake.posts()[-1].body
    assert "logprobs" not in body and "top_logprobs" not in body
    inspection = json.loads(out)["inspection"]
    assert inspection["tokens"] == []
    assert "no token probabilities were reported" in inspection["note"]


def test_without_inspect_no_log_probabilities_are_asked_for(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _ask(capsys, "--model", fake.model_spec, "--server", "vllm", "Hi")
    assert code == 0
    assert "logprobs" not in fake.posts()[-1].body
