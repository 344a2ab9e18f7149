"""TOML reading errors carry file, line and column; writes never lose the old file."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest

from leverchat.tomlio import TomlError, read_toml, remove_stale_temp_files, write_toml_atomic

OLD = b'name = "old"\n'


@pytest.mark.parametrize(
    ("raw", "line", "column", "reason"),
    [
        (b"name = \n", 1, 8, "Invalid value"),
        (b'a = 1\nb = "unterminated\n', 2, 18, "Illegal character '\\n'"),
        (b"a = 1\na = 2\n", 2, 6, "Cannot overwrite a value"),
        (b"[levers\ntemperature = 1\n", 1, 8, "Expected ']' at the end of a table declaration"),
        (b"a = 1\nb = ", 2, 5, "Invalid value at the end of the file"),
        (b"a = 1\nx = \x00\n", 2, 5, "Invalid value"),
        (
            b'\xef\xbb\xbfname = "x"\n',
            1,
            1,
            "the file starts with a byte-order mark (BOM); TOML must be plain UTF-8: "
            "save it as UTF-8 without BOM",
        ),
        (b'a = 1\nb = "caf\xe9"\n', 2, 9, "not a text file: byte 0xe9 is not valid UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", 1, 1, "not a text file: byte 0x89 is not valid UTF-8"),
    ],
)
def test_malformed_toml_names_file_line_and_column(
    tmp_path: Path, raw: bytes, line: int, column: int, reason: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(raw)
    with pytest.raises(TomlError) as caught:
        read_toml(path)
    error = caught.value
    assert (error.path, error.line, error.column, error.reason) == (path, line, column, reason)
    assert str(error) == f"{path}:{line}:{column}: {reason}"
    assert path.read_bytes() == raw


def test_unreadable_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TomlError, match=r"file not found$"):
        read_toml(tmp_path / "missing.toml")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(TomlError, match=r"is a folder, not a TOML file$"):
        read_toml(folder)


def test_multiline_strings_are_written_readably_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    prompt = 'Line one.\nSay "Arr!" and use \\n literally.\n\tIndented """ quotes.'
    write_toml_atomic(path, {"name": "x", "system_prompt": prompt}, header="Hello\nWorld")
    text = path.read_text()
    assert text.startswith("# Hello\n# World\n")
    assert 'system_prompt = """\nLine one.\n' in text
    assert read_toml(path) == {"name": "x", "system_prompt": prompt}


def test_write_keeps_symlink_and_updates_target(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "real.toml"
    real.parent.mkdir()
    real.write_bytes(OLD)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    write_toml_atomic(link, {"name": "new"})
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert read_toml(real) == {"name": "new"}
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.toml"]


def test_write_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(OLD)
    path.chmod(0o640)
    write_toml_atomic(path, {"name": "new"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert read_toml(path) == {"name": "new"}


def test_new_file_mode_follows_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_toml_atomic(tmp_path / "p.toml", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "p.toml").stat().st_mode) == 0o640


def test_serialisation_error_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(OLD)
    with pytest.raises(TomlError, match="cannot be written as TOML"):
        write_toml_atomic(path, {"name": "new", "bad": object()})
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]


def test_full_disk_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(OLD)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(TomlError) as caught:
        write_toml_atomic(path, {"name": "new"})
    assert str(caught.value) == f"{path}: cannot write the file: No space left on device"
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]


def test_failed_replace_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(OLD)

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(TomlError, match="Permission denied"):
        write_toml_atomic(path, {"name": "new"})
    assert path.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["p.toml"]


def test_stale_temp_files_are_removed_but_fresh_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / ".p.toml.0123456789ab.tmp"
    fresh = tmp_path / ".p.toml.ba9876543210.tmp"
    unrelated = tmp_path / ".notes.tmp.keep"
    for path in (stale, fresh, unrelated):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    os.utime(unrelated, (two_hours_ago, two_hours_ago))
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, unrelated.name])
