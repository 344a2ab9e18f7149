"""typical_p = 0 is refused everywhere a lever can be set, with the lever's range, as
transformers refuses it. (It used to keep one arbitrary "most typical" token.)"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from leverchat.cli import main
from leverchat.levers import SPECS_BY_NAME, LeverError, Levers
from leverchat.profiles import ProfileStore

REFUSAL = "typical_p = 0.0 is out of range: allowed 0.01 to 1"


def test_the_lever_refuses_zero_and_names_its_range() -> None:
    with pytest.raises(LeverError) as caught:
        Levers(typical_p=0.0)
    assert caught.value.key == "typical_p"
    assert caught.value.message == REFUSAL
    assert Levers(typical_p=0.01).typical_p == 0.01
    assert SPECS_BY_NAME["typical_p"].range_text() == "0.01 to 1"


def test_a_profile_with_typical_p_zero_is_listed_broken_and_left_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEVERCHAT_CONFIG_DIR", str(tmp_path / "config"))
    folder = tmp_path / "config" / "profiles"
    folder.mkdir(parents=True)
    path = folder / "typical.toml"
    raw = textwrap.dedent(
        """\
        name = "typical"
        [levers]
        typical_p = 0
        """
    ).encode()
    path.write_bytes(raw)
    entries = {entry.path.name: entry for entry in ProfileStore().list()}
    assert entries["typical.toml"].broken
    assert str(entries["typical.toml"].error) == f"{path}:3:1: {REFUSAL}"
    assert path.read_bytes() == raw


def test_ask_refuses_typical_p_zero_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["ask", "--typical-p", "0", "hello"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "argument --typical-p" in err and REFUSAL in err


def test_nudging_typical_p_down_stops_at_its_smallest_allowed_value() -> None:
    from leverchat.ui.widgets.lever_field import nudged

    spec = SPECS_BY_NAME["typical_p"]
    assert nudged(spec, 0.01, -1) == 0.01
    assert nudged(spec, 0.05, -1) == 0.04
