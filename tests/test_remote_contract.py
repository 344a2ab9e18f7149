"""The engine boundary: one contract, two engines. A remote engine never imports torch or
transformers (checked in a fresh interpreter that runs `ask` against a server), AnyEngine
picks the engine each model names, and the API key is never written anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.remote.endpoint import parse_endpoint
from leverchat.engine.remote.keys import api_key
from leverchat.engine.select import AnyEngine
from leverchat.engine.types import EngineError, ModelInfo, ModelSpec, is_remote_source
from remote_fakes import FakeServer

TESTS = Path(__file__).parent


def test_ask_against_a_server_never_imports_torch(fake: FakeServer) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from leverchat.cli import main
        code = main(["ask", "--model", {fake.model_spec!r}, "Hi"])
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "transformers"}})
        print("RC", code, "HEAVY", heavy)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "Hello there" in completed.stdout
    assert "RC 0 HEAVY []" in completed.stdout


@pytest.mark.parametrize(
    "module",
    [
        "leverchat.engine.select",
        "leverchat.engine.remote.engine",
        "leverchat.commands.remote_cli",
    ],
)
def test_remote_modules_import_no_torch_or_textual(module: str) -> None:
    code = f"import sys, {module}\nprint(sorted({{m.split('.')[0] for m in sys.modules}}))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    for heavy in ("'torch'", "'transformers'", "'textual'"):
        assert heavy not in completed.stdout


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loaded: list[ModelSpec] = []
        self.closed = False

    def load(self, spec: ModelSpec, progress: Any = None) -> Future[ModelInfo]:
        self.loaded.append(spec)
        future: Future[ModelInfo] = Future()
        future.set_result(ModelInfo(self.name, "", "", "", 0, True))
        return future

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


def test_any_engine_switches_and_frees_the_other() -> None:
    made: list[_Recorder] = []

    def factory(name: str) -> Any:
        def make() -> _Recorder:
            made.append(_Recorder(name))
            return made[-1]

        return make

    engine = AnyEngine(local=factory("local"), remote=factory("remote"))
    assert engine.load(ModelSpec()).result().name == "local"
    assert engine.load(ModelSpec(source="openai+http://h:1/v1")).result().name == "remote"
    assert [r.name for r in made] == ["local", "remote"]
    assert made[0].closed  # the local model's memory is freed
    assert engine.load(ModelSpec(source="/some/folder")).result().name == "local"
    assert made[1].closed


@pytest.mark.parametrize(
    ("source", "remote"),
    [
        ("openai+http://h:8000/v1", True),
        ("OPENAI+HTTPS://h/v1", True),
        ("openai+ftp://h", False),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", False),
        (None, False),
    ],
)
def test_remote_spelling(source: str | None, remote: bool) -> None:
    assert is_remote_source(source) is remote


def test_endpoint_urls() -> None:
    endpoint = parse_endpoint("openai+https://box.example:8443/api/v1/")
    assert endpoint.base == "https://box.example:8443/api/v1"
    assert endpoint.root == "https://box.example:8443/api"


def test_key_order_and_command(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    assert api_key({}, config) is None
    assert api_key({"OPENAI_API_KEY": "b", "LEVERCHAT_API_KEY": "a"}, config) == "a"
    assert api_key({"OPENAI_API_KEY": "b"}, config) == "b"
    script = tmp_path / "key.sh"
    script.write_text("#!/bin/sh\necho sk-from-command\n")
    script.chmod(0o755)
    config.write_text(f'api_key_command = "{script}"\n')
    assert api_key({}, config) == "sk-from-command"


def test_failing_key_command_is_named_without_its_output(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    script = tmp_path / "key.sh"
    script.write_text("#!/bin/sh\necho sk-leaked-secret >&2\nexit 3\n")
    script.chmod(0o755)
    config.write_text(f'api_key_command = "{script}"\n')
    with pytest.raises(EngineError) as caught:
        api_key({}, config)
    assert "api_key_command failed (exit code 3)" in str(caught.value)
    assert str(config) in str(caught.value)
    assert "sk-leaked-secret" not in str(caught.value)


def test_key_is_never_written_by_ask(
    fake: FakeServer,
    isolated_user_dirs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from leverchat.cli import main

    monkeypatch.setenv("LEVERCHAT_API_KEY", "sk-never-written-42")
    assert main(["ask", "--model", fake.model_spec, "--json", "Hi"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["remote"]["endpoint"] == fake.url + "/v1"
    assert fake.posts()[0].headers["Authorization"] == "Bearer sk-never-written-42"
    assert "sk-never-written-42" not in out + err
    for path in isolated_user_dirs.rglob("*"):
        if path.is_file():
            assert b"sk-never-written-42" not in path.read_bytes(), path


def test_another_server_loaded_from_the_app_drops_the_previous_servers_options() -> None:
    made: list[_Recorder] = []

    def remote() -> _Recorder:
        made.append(_Recorder("remote"))
        return made[-1]

    engine = AnyEngine(local=lambda: _Recorder("local"), remote=remote)
    first = ModelSpec(source="openai+http://a:1/v1", model_name="m1", server="vllm")
    engine.load(first)
    # The app replaces only the source: the model name and server kind were the first one's.
    engine.load(ModelSpec(source="openai+http://b:2/v1", model_name="m1", server="vllm"))
    engine.load(ModelSpec(source="openai+http://b:2/v1", model_name="m2"))  # given anew: kept
    assert [(s.source, s.model_name, s.server) for s in made[0].loaded] == [
        ("openai+http://a:1/v1", "m1", "vllm"),
        ("openai+http://b:2/v1", None, None),
        ("openai+http://b:2/v1", "m2", None),
    ]


def test_history_keeps_a_remote_reply_and_reports_a_damaged_record(tmp_path: Path) -> None:
    import sqlite3

    from leverchat.chat import MessageStatus, ReplyProvenance
    from leverchat.engine.types import RemoteProvenance, UnavailableLever
    from leverchat.history import HistoryStore
    from leverchat.levers import Levers

    remote = RemoteProvenance(
        endpoint="http://box:8000/v1",
        server="vllm",
        model_id="Qwen/Qwen3-8B",
        sent=(("temperature", "0.7"), ("top_k", "-1")),
        unavailable=(UnavailableLever("typical_p", "vLLM has no typical-p sampling"),),
        requests=2,
        continued=((4, (("temperature", "0.2"),)),),
    )
    provenance = ReplyProvenance("Qwen/Qwen3-8B", "default", "", Levers(), seed=3, remote=remote)
    db = tmp_path / "history.sqlite3"
    with HistoryStore(db) as store:
        chat = store.create_conversation(title="t")
        user = store.add_user_message(chat, "hi", parent_id=None)
        reply = store.start_reply(chat, parent_id=user.id, provenance=provenance)
        store.finish_reply(reply.id, "hello", status=MessageStatus.COMPLETE, provenance=provenance)
        loaded = store.load_conversation(chat).messages[-1].provenance
    assert loaded is not None and loaded.remote == remote
    for damaged, named in (('{"remote": {"sent": 5}}', "remote provenance sent"), ("[1]", "stats")):
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE messages SET stats = ? WHERE id = ?", (damaged, reply.id))
        # A damaged record never hides the chat: the reply is kept without its provenance,
        # and the problem is reported, naming the record and the value.
        with HistoryStore(db) as store:
            conversation, skipped = store.read_conversation(chat)
        kept = conversation.messages[-1]
        assert kept.content == "hello" and kept.provenance is None
        (problem,) = skipped
        assert problem.kept and problem.record_id == reply.id
        assert named in problem.reason
