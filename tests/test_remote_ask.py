"""`leverchat ask` on a server: levers the server cannot apply are warned about on stderr
(never silently dropped), a profile's model field takes the same spelling, and --json carries
the remote provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leverchat.cli import main
from remote_fakes import FakeServer

# No API key in the environment for any test here.
pytestmark = pytest.mark.usefixtures("no_api_key")


def run_ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["ask", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_unavailable_levers_are_warned_about(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_ask(
        capsys, "--model", fake.model_spec, "--server", "tgi", "--top-k", "20", "Hi"
    )
    assert code == 0 and out == "Hello there\n"
    assert (
        "leverchat: warning: top_k = 20 is not applied: TGI's Messages API does not take it" in err
    )
    # min_p defaults to 0.05 in leverchat: TGI cannot apply it either, and says so.
    assert "min_p = 0.05 is not applied: TGI has no min-p sampling" in err
    # Levers at their neutral value change nothing: no warning.
    assert "typical_p" not in err and "repetition_penalty" not in err


def test_no_warning_when_every_lever_applies(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_ask(capsys, "--model", fake.model_spec, "--server", "llama-server", "Hi")
    assert code == 0
    assert "warning" not in err


def test_a_profile_names_a_server_model(
    fake: FakeServer,
    isolated_user_dirs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profiles = isolated_user_dirs / "config" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "remote.toml").write_text(
        f'name = "remote"\nmodel = "{fake.model_spec}"\n\n[levers]\ntemperature = 0.2\n',
        encoding="utf-8",
    )
    code, out, _ = run_ask(capsys, "-p", "remote", "--json", "Hi")
    assert code == 0, out
    data = json.loads(out)
    assert data["remote"]["endpoint"] == fake.url + "/v1"
    assert data["remote"]["sent"]["temperature"] == "0.2"
    assert data["fault"] is None
    assert fake.posts()[0].body["temperature"] == 0.2
