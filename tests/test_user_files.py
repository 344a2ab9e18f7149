"""Every file leverchat reads is guarded: regular files only, a size cap, bounded nesting."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from leverchat.bounded import MAX_NESTING, short_repr, toml_nesting_depth, value_depth
from leverchat.commands import profiles_cmd
from leverchat.profiles import ProfileStore
from leverchat.tomlio import TomlError, read_toml
from leverchat.userfile import UserFileError, read_user_file

NESTED_FILES = {
    "arrays": "x = " + "[" * 50_000 + "]" * 50_000 + "\n",
    "inline tables": "x = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n",
    "dotted key": ".".join(["a"] * 40_000) + " = 1\n",
    "table header": "[" + ".".join(["a"] * 40_000) + "]\nx = 1\n",
    "just over the limit": "x = " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "\n",
}


def returns_without_blocking(function: Any) -> Any:
    """A read of a FIFO never returns: run it in a thread so a hang fails instead of freezing."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "the read blocked"
    return result[0]


@pytest.mark.parametrize("kind", list(NESTED_FILES))
def test_deep_nesting_is_a_clear_error_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(NESTED_FILES[kind], encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(TomlError) as caught:
        read_toml(path)
    assert str(caught.value).startswith(f"{path}: nests too deeply (more than {MAX_NESTING}")
    assert path.read_bytes() == before


def test_brackets_and_dots_inside_strings_and_comments_do_not_count(tmp_path: Path) -> None:
    path = tmp_path / "fine.toml"
    brackets = "[" * 200 + "{" * 200 + "." * 200
    path.write_text(
        f'a = "{brackets}"\nb = \'{brackets}\'\nc = """\n{brackets}\n"""\n'
        f"d = '''{brackets}'''\n# {brackets}\n\"{brackets}\" = 1\n"
        f"e = [[1.5, 2.5], {{x.y = 1979-05-27T07:32:00.999}}]\n",
        encoding="utf-8",
    )
    data = read_toml(path)
    assert data["a"] == data["b"] == brackets
    assert data["e"][0] == [1.5, 2.5]


def test_the_nesting_limit_itself_is_accepted(tmp_path: Path) -> None:
    depth = MAX_NESTING - 1  # one level is the document itself
    path = tmp_path / "ok.toml"
    path.write_text("x = " + "[" * depth + "]" * depth + "\n", encoding="utf-8")
    assert value_depth(read_toml(path)) == MAX_NESTING


def test_value_depth_and_short_repr_do_not_recurse() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert value_depth(deep) == MAX_NESTING + 1  # stops counting past the limit
    assert short_repr(deep) == "[[[[...]]]]"
    assert len(short_repr("x" * 10_000_000)) == 60
    assert toml_nesting_depth("[" * 1_000_000) == MAX_NESTING + 1


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)

    def read() -> TomlError:
        with pytest.raises(TomlError) as caught:
            read_toml(fifo)
        return caught.value

    error = returns_without_blocking(read)
    assert str(error) == (
        f"{fifo}: is a named pipe (FIFO), not a regular file, so it was not read: "
        "put a real TOML file there (or remove it)"
    )


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_link_to_an_endless_device_is_refused(tmp_path: Path, device: str) -> None:
    link = tmp_path / "theme.toml"
    link.symlink_to(device)
    with pytest.raises(UserFileError) as caught:
        read_user_file(link, kind="theme")
    assert str(caught.value) == (
        f"{link}: is a character device (like /dev/zero), not a regular file, so it was not "
        "read: put a real theme file there (or remove it)"
    )


def test_the_size_cap_is_checked_before_reading_and_while_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * 2_000)
    with pytest.raises(UserFileError, match=r"is 2000 bytes; a file is far smaller"):
        read_user_file(path, max_bytes=1_000)
    # A file that grows after stat() (the size stat saw was small) is still cut off.
    real_stat, real_fstat = Path.stat, os.fstat

    def shrink(info: os.stat_result) -> os.stat_result:
        return os.stat_result((*info[:6], 10, *info[7:]))

    monkeypatch.setattr(os, "fstat", lambda fd: shrink(real_fstat(fd)))
    monkeypatch.setattr(Path, "stat", lambda self, **kw: shrink(real_stat(self, **kw)))
    with pytest.raises(UserFileError, match=r"is more than 1000 bytes"):
        read_user_file(path, max_bytes=1_000)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leverchat")
    profiles_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["profiles", *argv])
    result: int = args.handler(args)
    return result


def test_profiles_list_and_show_report_a_deep_profile_and_list_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = ProfileStore().directory
    folder.mkdir(parents=True)
    deep = folder / "deep.toml"
    deep.write_text(NESTED_FILES["arrays"], encoding="utf-8")
    (folder / "fine.toml").write_text('name = "fine"\n', encoding="utf-8")
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert f"error: {deep}: nests too deeply" in out
    assert "fine" in out and "pirate" in out
    assert cli("show", "deep") == 1
    assert f"{deep}: nests too deeply" in capsys.readouterr().err
    assert cli("show", "fine") == 0


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_history_database_that_is_a_fifo_or_device_is_refused_without_blocking(
    tmp_path: Path, kind: str
) -> None:
    from leverchat.history import HistoryStore, HistoryUnavailable

    path = tmp_path / "history.sqlite3"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")

    def open_history() -> HistoryUnavailable:
        with pytest.raises(HistoryUnavailable) as caught:
            HistoryStore(path)
        return caught.value

    error = returns_without_blocking(open_history)
    assert str(path) in str(error) and "not a regular file" in str(error)
