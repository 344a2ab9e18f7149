"""Read a file the user (or a download) put on disk, without letting it hang or flood us.

Every file leverchat reads on the user's behalf (profiles, config.toml, themes, imported
presets) goes through :func:`read_user_file`:

- a FIFO would block ``open()`` until someone writes to it (a blank screen forever), and a
  link to ``/dev/zero`` or ``/dev/urandom`` never ends. Only regular files are read: the type
  is checked with ``stat`` before any open, and again on the open descriptor (opened with
  ``O_NONBLOCK``, so a file swapped for a FIFO in between cannot block either);
- a size cap is checked before reading and enforced while reading, so a file that grows under
  us is not read without limit either.

Every refusal is a :class:`UserFileError` that names the file and says what to do.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

DEFAULT_MAX_BYTES: Final = 1_000_000
_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_CHUNK: Final = 65536


class UserFileError(Exception):
    """A user file that was not read. ``reason`` is the bare explanation; ``str()`` adds the
    path in front."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def read_user_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, kind: str = "") -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``max_bytes``.

    ``kind`` names what the file should be ("profile", "theme") in the messages. Raises
    :class:`UserFileError` for a missing file, a folder, anything that is not a regular file,
    a file over the cap, or an OS error.
    """
    try:
        info = path.stat()  # follows links, never opens: safe on a FIFO or a device
    except FileNotFoundError:
        reason = "is a link to a missing file" if path.is_symlink() else "file not found"
        raise UserFileError(path, reason) from None
    except OSError as error:
        raise UserFileError(path, _os_reason(error)) from None
    _check_type_and_size(path, info, max_bytes, kind)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise UserFileError(path, _os_reason(error)) from None
    try:
        # The path may have been swapped between stat and open: check what was opened.
        _check_type_and_size(path, os.fstat(fd), max_bytes, kind)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UserFileError(path, _too_big(f"more than {max_bytes}", max_bytes, kind))
    except OSError as error:
        raise UserFileError(path, _os_reason(error)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def special_file_reason(path: Path) -> str | None:
    """Why an existing ``path`` must not be opened for reading (a FIFO, a device, a socket),
    or None when it is missing, a folder or a regular file. For files read by other means
    (an SQLite database) that must not block on ``open()`` either."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    return f"is {_file_type(mode)}, not a regular file, so it was not opened"


def _check_type_and_size(path: Path, info: os.stat_result, max_bytes: int, kind: str) -> None:
    what = f"{kind} file" if kind else "file"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise UserFileError(path, f"is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise UserFileError(
            path,
            f"is {_file_type(mode)}, not a regular file, so it was not read: "
            f"put a real {what} there (or remove it)",
        )
    if info.st_size > max_bytes:
        raise UserFileError(path, _too_big(str(info.st_size), max_bytes, kind))


def _too_big(size: str, max_bytes: int, kind: str) -> str:
    what = f"{kind} file" if kind else "file"
    return (
        f"is {size} bytes; a {what} is far smaller (the limit is {max_bytes} bytes), "
        "so it was not read: is it the right file?"
    )


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device (like /dev/zero)"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _os_reason(error: OSError) -> str:
    return f"cannot read the file: {error.strerror or error}"
