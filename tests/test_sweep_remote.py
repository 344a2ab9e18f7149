"""`leverchat sweep` against a server (the same engine selection as `ask`), a failing cell,
and Ctrl+C in the middle of a sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from leverchat.cli import main
from remote_fakes import FakeServer, Recorded, Reply, json_reply, sse_reply

# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def run_sweep(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_server_gets_one_request_per_value_with_the_same_seed(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    words = iter([["Calm", " | reply"], ["Wild\nreply"]])
    fake.routes["POST /v1/chat/completions"] = lambda request: sse_reply(next(words))
    code, out, err = run_sweep(
        capsys,
        "--model",
        fake.model_spec,
        "--server",
        "vllm",
        "--lever",
        "temperature",
        "--values",
        "0.2,1.5",
        "--seed",
        "5",
        "Hi",
    )
    assert code == 0, err
    bodies: list[dict[str, Any]] = [post.body for post in fake.posts()]
    assert [body["temperature"] for body in bodies] == [0.2, 1.5]
    assert [body["seed"] for body in bodies] == [5, 5]
    assert "| 0.2 | Calm \\| reply |" in out  # the pipe escaped: the row keeps two cells
    assert "| 1.5 | Wild<br>reply |" in out


def test_a_failed_cell_stops_the_sweep_with_ask_s_exit_code(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = iter([sse_reply(["Fine"]), json_reply({"error": "boom"}, 500)])

    def answer(request: Recorded) -> Reply:
        return next(replies)

    fake.routes["POST /v1/chat/completions"] = answer
    code, out, err = run_sweep(
        capsys,
        "--model",
        fake.model_spec,
        "--lever",
        "top_p",
        "--values",
        "0.5,0.9,1",
        "--seed",
        "1",
        "--json",
        "Hi",
    )
    assert code == 27  # ask's exit code for a server error
    assert "leverchat: generation failed:" in err
    data = json.loads(out)  # what was written is still printed
    assert [cell["value"] for cell in data["cells"]] == [0.5, 0.9]
    assert data["cells"][0]["text"] == "Fine" and data["cells"][0]["error"] is None
    assert data["cells"][1]["error"]
    assert len(fake.posts()) == 2  # the third value was not tried


def test_ctrl_c_prints_the_cells_so_far_and_exits_130(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import leverchat.commands.sweep_cmd as sweep_cmd

    real_wait = sweep_cmd.wait_for_result
    calls = {"generate": 0}

    def wait(future: Any) -> Any:
        result = real_wait(future)
        # The second reply's first wait: as if Ctrl+C came while it was written.
        if hasattr(result, "stop_reason"):
            calls["generate"] += 1
            if calls["generate"] == 2:
                calls["generate"] += 1
                raise KeyboardInterrupt
        return result

    monkeypatch.setattr(sweep_cmd, "wait_for_result", wait)
    code, out, _ = run_sweep(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--lever",
        "temperature",
        "--values",
        "0,0.5,1",
        "--max-tokens",
        "4",
        "Hi",
    )
    assert code == 130
    rows = [line for line in out.splitlines() if line.startswith("| ") and "reply" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| 0", "| 0.5"]  # the third never ran
