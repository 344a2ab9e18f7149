"""`leverchat profiles ...`: what a user sees on the terminal and the exit codes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import leverchat.cli
from leverchat.commands import profiles_cmd
from leverchat.levers import LEVER_NAMES

FIXTURES = Path(__file__).parent / "fixtures" / "import"


@pytest.fixture
def profiles_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    monkeypatch.setenv("LEVERCHAT_CONFIG_DIR", str(config))
    return config / "profiles"


def cli(*argv: str) -> int:
    """Parse like the real entry point does, then run the handler in-process."""
    parser = argparse.ArgumentParser(prog="leverchat")
    subparsers = parser.add_subparsers(dest="command")
    profiles_cmd.register(subparsers)
    args = parser.parse_args(["profiles", *argv])
    result: int = args.handler(args)
    return result


def test_list_shows_builtins_with_an_empty_config(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "STATUS", "PATH"]
    rows = [line.split() for line in lines[1:5]]
    assert [row[:3] for row in rows] == [
        ["default", "built-in", "ok"],
        ["precise", "built-in", "ok"],
        ["creative", "built-in", "ok"],
        ["pirate", "built-in", "ok"],
    ]
    assert all(Path(row[3]).is_file() for row in rows)
    assert f"Your profiles folder: {profiles_dir}" in lines[-1]


def test_list_reports_a_broken_file_with_line_and_column_and_keeps_it(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles_dir.mkdir(parents=True)
    broken = profiles_dir / "mine.toml"
    broken.write_bytes(b'name = "mine"\n[levers]\ntemperature = \n')
    before = broken.read_bytes()
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert f"mine      user      broken  {broken}" in out
    assert f"    error: {broken}:3:15: Invalid value" in out
    assert "pirate    built-in  ok" in out
    assert "5 profiles, 1 broken" in out
    assert broken.read_bytes() == before


def test_show_prints_the_resolved_profile_as_toml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("show", "PIRATE") == 0
    out = capsys.readouterr().out
    assert out.startswith("# built-in: ")
    data = tomllib.loads(out)
    assert data["name"] == "pirate"
    assert set(data["levers"]) == set(LEVER_NAMES) - {"seed"}
    assert data["levers"]["temperature"] == 0.6
    assert data["levers"]["stop"] == ["User:"]
    assert "seed is not set" in out


def test_show_unknown_and_broken_profiles_fail_clearly(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("show", "pirat") == 1
    assert capsys.readouterr().err == (
        "leverchat profiles: error: no profile called 'pirat': did you mean 'pirate'?\n"
    )
    profiles_dir.mkdir(parents=True)
    (profiles_dir / "bad.toml").write_text('name = "bad"\n[levers]\ntop_p = 1.5\n')
    assert cli("show", "bad") == 1
    assert capsys.readouterr().err == (
        f"leverchat profiles: error: {profiles_dir / 'bad.toml'}:3:1: top_p = 1.5 is out of "
        "range: allowed 0 to 1\n"
    )


def test_path_prints_the_folder(profiles_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("path") == 0
    assert capsys.readouterr().out == f"{profiles_dir}\n"


def test_import_saves_and_prints_what_was_not_mapped(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("import", str(FIXTURES / "mario.modelfile")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"Imported 'mario' from {FIXTURES / 'mario.modelfile'} (Ollama Modelfile) into "
        f"{profiles_dir / 'mario.toml'}"
    )
    assert "Not mapped (5):" in out
    assert "  PARAMETER top_p = 1.5: top_p = 1.5 is out of range: allowed 0 to 1" in out
    assert (profiles_dir / "mario.toml").is_file()

    # A second import of the same name is refused with the way out.
    assert cli("import", str(FIXTURES / "mario.modelfile")) == 1
    assert "pass --name to import it under another name" in capsys.readouterr().err
    assert cli("import", str(FIXTURES / "mario.modelfile"), "--name", "Luigi") == 0
    assert "Imported 'Luigi'" in capsys.readouterr().out


def test_import_of_an_unreadable_file_fails(
    tmp_path: Path, profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.yaml"
    junk.write_text("just text\n")
    assert cli("import", str(junk)) == 1
    assert "not a recognised file" in capsys.readouterr().err
    assert not profiles_dir.exists() or not list(profiles_dir.glob("*.toml"))


def test_delete_and_restore(profiles_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("import", str(FIXTURES / "Divine Intellect.yaml")) == 0
    capsys.readouterr()
    assert cli("delete", "divine intellect") == 0
    out = capsys.readouterr().out
    assert "A copy is kept as" in out and "restore divine intellect" in out
    assert cli("list") == 0
    listing = capsys.readouterr().out
    assert "Deleted, can be restored with `leverchat profiles restore NAME`: Divine Intellect" in (
        listing
    )
    assert cli("restore", "Divine Intellect") == 0
    assert capsys.readouterr().out == (
        f"Restored 'Divine Intellect' to {profiles_dir / 'divine-intellect.toml'}\n"
    )
    assert cli("delete", "pirate") == 1
    assert "built-in profile and cannot be deleted" in capsys.readouterr().err
    assert cli("restore", "pirate") == 1


def test_no_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli() == 2
    err = capsys.readouterr().err
    assert "usage: leverchat profiles" in err
    assert "choose an action: list, show, path, import, delete, restore" in err


def test_hostile_names_are_printed_plainly(
    profiles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles_dir.mkdir(parents=True)
    (profiles_dir / "evil\x1b]52;c;cHduZWQ=\x07.toml").write_text("name = \n")
    (profiles_dir / "markup.toml").write_text('name = "[bold]x[/] [@click=app.quit]"\n')
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]52;c;cHduZWQ=\\x07" in out
    assert "[bold]x[/] [@click=app.quit]" in out


@pytest.mark.skipif(
    "profiles_cmd" not in Path(leverchat.cli.__file__).read_text(),
    reason="cli.py does not wire the profiles sub-command yet",
)
def test_python_dash_m_leverchat_profiles_list(tmp_path: Path) -> None:
    env = {**os.environ, "LEVERCHAT_CONFIG_DIR": str(tmp_path / "config")}
    for var in ("LEVERCHAT_DATA_DIR", "LEVERCHAT_CACHE_DIR", "LEVERCHAT_LOG_DIR"):
        env[var] = str(tmp_path / var.lower())
    done = subprocess.run(
        [sys.executable, "-m", "leverchat", "profiles", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()[1:5]]
    assert names == ["default", "precise", "creative", "pirate"]
