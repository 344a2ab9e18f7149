"""``leverchat history import FILE``: take a JSON export back into the history, losslessly.

The file is untrusted: it may not be a regular file (a FIFO would block, /dev/zero never
ends), may be huge, deeply nested, not UTF-8, or hold a message tree that the database would
refuse half-way. Everything is checked before the one write transaction, and every refusal
names the file and the key; nothing is imported unless all of it can be.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from leverchat.export import ExportError, from_json
from leverchat.history import ConversationNotFound, ConversationRecord, HistoryError, HistoryStore

# A chat export is text: 64 MiB is far beyond any real chat, and bounds what is read.
MAX_IMPORT_BYTES: Final = 64 * 1024 * 1024


class ImportRefused(HistoryError):
    """The file cannot be imported; the message names it and says why. Nothing was written."""


def import_file(store: HistoryStore, path: Path) -> ConversationRecord:
    """Import the chat exported to ``path``; return what was imported."""
    record = read_export(path)
    _refuse_existing(store, record, path)
    store.import_record(record)
    return record


def read_export(path: Path) -> ConversationRecord:
    """The chat in a JSON export file, checked to be importable as a whole."""
    text = _read_text(path)
    try:
        record = from_json(text, source=str(path))
    except ExportError as error:
        raise ImportRefused(f"{error}; nothing was imported") from None
    except RecursionError:
        raise ImportRefused(
            f"{path}: the JSON is nested too deeply to be a leverchat export; nothing was imported"
        ) from None
    _check_tree(record, path)
    return record


def _read_text(path: Path) -> str:
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ImportRefused(f"{path}: no such file") from None
    except OSError as error:
        raise ImportRefused(f"cannot read {path}: {error.strerror or error}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise ImportRefused(
            f"{path} is {_kind(mode)}, not a file: give the JSON file that "
            "`leverchat history export --format json -o FILE` wrote"
        )
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"{path} is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: not a chat export"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportRefused(
            f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}): not a leverchat JSON export"
        ) from None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check_tree(record: ConversationRecord, path: Path) -> None:
    """Refuse what the database would refuse half-way, naming the message."""
    first: dict[str, int] = {}
    for index, message in enumerate(record.messages):
        where = f"{path}: messages[{index}]"
        if not message.id:
            raise ImportRefused(f"{where}.id: must not be empty; nothing was imported")
        if message.id in first:
            raise ImportRefused(
                f"{where}.id: {message.id!r} is already the id of messages[{first[message.id]}]; "
                "nothing was imported"
            )
        first[message.id] = index
    seen: set[str] = set()
    active_parents: set[str | None] = set()
    for index, message in enumerate(record.messages):
        where = f"{path}: messages[{index}]"
        if message.parent_id is not None and message.parent_id not in seen:
            raise ImportRefused(
                f"{where}.parent_id: {message.parent_id!r} is not an earlier message "
                "(an export lists parents first); nothing was imported"
            )
        if message.active:
            if message.parent_id in active_parents:
                raise ImportRefused(
                    f"{where}.active: another version of this turn is already active; "
                    "nothing was imported"
                )
            active_parents.add(message.parent_id)
        seen.add(message.id)


def _refuse_existing(store: HistoryStore, record: ConversationRecord, path: Path) -> None:
    chat_id = record.info.id
    try:
        store.get_info(chat_id, lenient=True)
    except ConversationNotFound:
        pass
    else:
        raise ImportRefused(
            f"{path}: chat {chat_id} is already in the history {store.path} (imported before, "
            "or never deleted); nothing was imported. Delete it first to replace it: "
            f"`leverchat history delete {chat_id}`"
        )
    for index, message in enumerate(record.messages):
        try:
            store.versions(message.id)
        except ConversationNotFound:
            continue
        raise ImportRefused(
            f"{path}: messages[{index}].id: message {message.id} is already in another chat "
            f"of {store.path}; nothing was imported"
        )
