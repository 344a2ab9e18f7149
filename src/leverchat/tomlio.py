"""Reading and writing TOML files without ever losing the user's file.

``read_toml`` turns every way a file can be unreadable (syntax error, byte-order mark, bytes
that are not UTF-8, a folder where a file should be) into a :class:`TomlError` that names the
file and, when known, the line and column. ``write_toml_atomic`` replaces a file so that a
failure at any point (serialisation error, full disk, kill) leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from leverchat.bounded import MAX_NESTING, nesting_message, toml_nesting_depth, value_depth
from leverchat.userfile import DEFAULT_MAX_BYTES, UserFileError, read_user_file

_UTF8_BOM = b"\xef\xbb\xbf"
# Python 3.11's TOMLDecodeError carries its position only in the message (3.14 adds lineno and
# colno attributes): "Invalid value (at line 3, column 7)" or "... (at end of document)".
_POSITION_RE = re.compile(r"^(?P<reason>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_END_RE = re.compile(r"^(?P<reason>.*) \(at end of document\)$")

# Temporary files are hidden and end in .tmp, so a folder listing of *.toml never sees them,
# even when a kill leaves one behind.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


class TomlError(Exception):
    """A TOML file could not be read or written.

    ``reason`` is the bare explanation; ``str()`` adds ``path:line:column:`` in front, the form
    editors and terminals recognise.
    """

    def __init__(
        self, path: Path, reason: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{format_location(self.path, self.line, self.column)}: {self.reason}"


def format_location(path: Path | None, line: int | None, column: int | None) -> str:
    """``path:line:column`` with whatever parts are known."""
    text = str(path) if path is not None else "<profile>"
    if line is not None:
        text += f":{line}"
        if column is not None:
            text += f":{column}"
    return text


def read_toml(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, kind: str = "TOML"
) -> dict[str, Any]:
    """Parse the TOML file at ``path``. Raises :class:`TomlError` for every failure.

    Only a regular file of at most ``max_bytes`` is read (a FIFO or /dev/zero is refused, see
    :mod:`leverchat.userfile`); ``kind`` says what the file should be in those messages.
    """
    try:
        raw = read_user_file(path, max_bytes=max_bytes, kind=kind)
    except UserFileError as error:
        raise TomlError(path, error.reason) from None
    return parse_toml_bytes(raw, path)


def parse_toml_bytes(raw: bytes, path: Path) -> dict[str, Any]:
    """Parse TOML from bytes; ``path`` is only used in error messages."""
    if raw.startswith(_UTF8_BOM):
        raise TomlError(
            path,
            "the file starts with a byte-order mark (BOM); TOML must be plain UTF-8: "
            "save it as UTF-8 without BOM",
            line=1,
            column=1,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw[: error.start].decode("utf-8", errors="replace"))
        raise TomlError(
            path,
            f"not a text file: byte 0x{raw[error.start]:02x} is not valid UTF-8",
            line=line,
            column=column,
        ) from None
    # tomllib parses nested arrays by recursion, and everything that later walks the value
    # (validation, repr, ==) recurses too: refuse deep nesting before and after parsing.
    if toml_nesting_depth(text) > MAX_NESTING:
        raise TomlError(path, nesting_message())
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _decode_error(path, text, error) from None
    except RecursionError:  # the pre-scan over-counts rather than under-counts: belt and braces
        raise TomlError(path, nesting_message()) from None
    if value_depth(data) > MAX_NESTING:
        raise TomlError(path, nesting_message())
    return data


def _decode_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> TomlError:
    message = str(error)
    line = getattr(error, "lineno", None)
    column = getattr(error, "colno", None)
    reason = getattr(error, "msg", None)
    if isinstance(line, int) and isinstance(column, int) and isinstance(reason, str):
        return TomlError(path, reason, line=line, column=column)
    if match := _POSITION_RE.match(message):
        return TomlError(
            path, match["reason"], line=int(match["line"]), column=int(match["column"])
        )
    if match := _END_RE.match(message):
        line, column = _line_column(text)
        at_end = f"{match['reason']} at the end of the file"
        return TomlError(path, at_end, line=line, column=column)
    return TomlError(path, message)


def _line_column(prefix: str) -> tuple[int, int]:
    """1-based line and column of the position just after ``prefix``."""
    line = prefix.count("\n") + 1
    column = len(prefix) - (prefix.rfind("\n") + 1) + 1
    return line, column


def dumps_toml(data: Mapping[str, Any], *, header: str = "") -> str:
    """TOML text for ``data``; strings with newlines are written as readable multi-line strings.

    ``header`` (plain text, one comment line per line) is put on top as ``#`` comments.
    """
    body = tomli_w.dumps(data, multiline_strings=True)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + body


def write_toml_atomic(path: Path, data: Mapping[str, Any], *, header: str = "") -> bytes:
    """Replace the file at ``path`` with ``data`` as TOML, atomically.

    The text is serialised before anything is touched, written to a temporary file in the same
    folder, flushed and fsynced, then moved over the old file with ``os.replace`` and the folder
    fsynced. A symlinked ``path`` stays a link and its target is updated; the file's mode is
    kept. Any failure (serialisation, full disk, a kill) leaves the old file as it was.
    Returns the bytes written (callers fingerprint them without reading the file back).
    """
    try:
        payload = dumps_toml(data, header=header).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TomlError(path, f"cannot be written as TOML: {error}") from error
    write_bytes_atomic(path, payload)
    return payload


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """The atomic replace behind :func:`write_toml_atomic`, for any bytes."""
    # Follow symlinks (chains too) so the link stays a link and the file it points to changes.
    target = Path(os.path.realpath(path))
    try:
        old_stat: os.stat_result | None = target.stat()
    except FileNotFoundError:
        old_stat = None
    except OSError as error:
        raise TomlError(path, f"cannot write the file: {error.strerror or error}") from None
    try:
        temp = _write_temp_file(target, payload, old_stat)
    except OSError as error:
        raise TomlError(path, f"cannot write the file: {error.strerror or error}") from None
    try:
        temp.replace(target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(error, OSError):
            raise TomlError(path, f"cannot write the file: {error.strerror or error}") from None
        raise
    _fsync_directory(target.parent)


def _write_temp_file(target: Path, payload: bytes, old_stat: os.stat_result | None) -> Path:
    temp, fd = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if old_stat is not None:
                _copy_ownership_and_mode(handle.fileno(), old_stat)
            os.fsync(handle.fileno())
    except BaseException:
        # A full disk, a failed fsync, Ctrl-C: the old file has not been touched; drop ours.
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def _create_temp(target: Path) -> tuple[Path, int]:
    """A new, exclusively created temp file beside ``target``.

    Created with mode 0o666 so the umask decides a new file's mode, exactly as for a file
    written with ``open()``; an existing file's mode is copied over afterwards.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        temp = target.with_name(name)
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue


def _copy_ownership_and_mode(fd: int, old_stat: os.stat_result) -> None:
    if hasattr(os, "fchown") and (old_stat.st_uid, old_stat.st_gid) != _owner(fd):
        # Only root (or the owner changing the group) may do this; a failure is not worth
        # losing the save over: the file keeps our ownership, as any editor would leave it.
        with contextlib.suppress(OSError):
            os.fchown(fd, old_stat.st_uid, old_stat.st_gid)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(old_stat.st_mode))


def _owner(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_uid, info.st_gid


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable. Not possible on every platform (Windows): best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(directory: Path, *, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temp files a killed writer left behind, once they are clearly abandoned.

    Only files matching our own temp-name pattern and untouched for ``older_than_s`` are
    removed, so a save in progress in another process is never disturbed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = list(directory.iterdir())
    except OSError:
        return removed
    for candidate in candidates:
        name = candidate.name
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        try:
            info = candidate.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > older_than_s:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
    return removed
