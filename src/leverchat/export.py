"""Export a stored chat: Markdown for people, JSON with everything for machines.

Markdown shows the chat as the user sees it (the active version of each turn), each reply
followed by one compact provenance line: model, profile, the levers that differ from the
defaults, seed, speed and why it stopped. JSON holds every version of every message with its
full provenance, and :func:`from_json` reads it back into the same record (a round trip).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

from leverchat import __version__
from leverchat.chat import Conversation, Message, MessageStatus, ReplyProvenance
from leverchat.engine.inspection import (
    TokenInspection,
    inspections_from_list,
    inspections_to_list,
)
from leverchat.history import (
    ConversationInfo,
    ConversationRecord,
    StoredMessage,
    provenance_from_mapping,
    provenance_to_mapping,
)
from leverchat.levers import LEVER_NAMES, LeverError, Levers

JSON_FORMAT: Final = "leverchat-chat"
JSON_FORMAT_VERSION: Final = 1

_ROLE_HEADINGS: Final = {"user": "You", "assistant": "Assistant"}
_DEL_AND_C1: Final = re.compile("[\x7f-\x9f]")


class ExportError(ValueError):
    """A JSON export that cannot be read back; the message names the file and the key."""


# --------------------------------------------------------------------------------------------
# Markdown


def to_markdown(info: ConversationInfo, conversation: Conversation, *, plain: bool = False) -> str:
    """The chat as a Markdown document, a provenance line under each reply.

    ``plain``: the same layout as readable text for a terminal (``history show``): names and
    levers unescaped (``top_k``, not ``top\\_k``), no emphasis markers.
    """
    escape = _no_escape if plain else _escape
    code, strong = ("", "") if plain else ("`", "**")
    lines = [f"# {escape(info.title) or 'Untitled chat'}", ""]
    lines.append(f"- Chat: {code}{info.id}{code}")
    lines.append(f"- Started: {_when(info.created)} · last active: {_when(info.updated)}")
    if info.profile:
        lines.append(f"- Profile: {escape(info.profile)}")
    lines.append(f"- Levers at the end: {_lever_text(info.levers, escape) or 'the defaults'}")
    if info.system_prompt.strip():
        lines.append("")
        lines.append(f"> {strong}System prompt{strong}")
        lines.append(">")
        lines.extend(f"> {line}".rstrip() for line in info.system_prompt.splitlines())
    empty = "(no text)" if plain else "*(no text)*"
    for message in conversation.messages:
        lines.extend(["", f"## {_heading(message)}", "", message.content or empty])
        if message.role == "assistant":
            lines.extend(["", provenance_line(message, plain=plain)])
    return "\n".join(lines) + "\n"


def provenance_line(message: Message, *, plain: bool = False) -> str:
    """One italic line (plain: in parentheses): how this reply was made, and how it ended."""
    escape = _no_escape if plain else _escape
    provenance = message.provenance
    parts = _provenance_parts(provenance, escape) if provenance else ["no provenance recorded"]
    if message.status is not MessageStatus.COMPLETE:
        parts.append(message.status.value)
    if provenance is not None and provenance.error:
        parts.append("error: " + escape(" ".join(provenance.error.split())))
    line = " · ".join(parts)
    return f"({line})" if plain else f"*{line}*"


def _provenance_parts(provenance: ReplyProvenance, escape: Callable[[str], str]) -> list[str]:
    parts = [f"model {escape(provenance.model) or '?'}"]
    if provenance.remote is not None:  # where a server's reply came from (never a key)
        parts.append(f"via {provenance.remote.server} at {escape(provenance.remote.endpoint)}")
    if provenance.profile:
        parts.append(f"profile {escape(provenance.profile)}")
    levers = _lever_text(provenance.levers, escape)
    if levers:
        parts.append(levers)
    for change in provenance.lever_changes:
        changed = ", ".join(
            f"{name} {_format_value(getattr(change.levers, name))}" for name in change.changed
        )
        parts.append(f"from token {change.token_index}: {escape(changed) or 'no change'}")
    if provenance.branch is not None:
        parts.append(f"branched {escape(provenance.branch.where())}")
    seed = provenance.seed if provenance.seed is not None else provenance.levers.seed
    parts.append(f"seed {seed}" if seed is not None else "seed not recorded")
    stats = provenance.stats
    if stats.new_tokens:
        parts.append(f"{stats.new_tokens} tokens at {stats.tokens_per_s:.1f} tok/s")
    if provenance.stop_reason is not None:
        parts.append(provenance.stop_reason.description)
    return parts


# The levers that shape every sampled token are always shown, so each reply's line says how it
# was sampled even when nothing was changed; the others only when they differ from defaults.
_ALWAYS_SHOWN = ("temperature", "top_p", "top_k", "min_p")


def _lever_text(levers: Levers, escape: Callable[[str], str]) -> str:
    """The core sampling levers, then any other lever that differs from the defaults (the
    seed is shown on its own)."""
    changed = levers.to_mapping(only_changed_from=Levers())
    changed.pop("seed", None)
    shown = {name: getattr(levers, name) for name in LEVER_NAMES if name in _ALWAYS_SHOWN}
    shown.update({name: value for name, value in changed.items() if name not in shown})
    ordered = sorted(shown.items(), key=lambda item: LEVER_NAMES.index(item[0]))
    return escape(", ".join(f"{name} {_format_value(value)}" for name, value in ordered))


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and value and all(isinstance(item, tuple) for item in value):
        value = dict(value)  # the boost's (phrase, weight) pairs, as its table
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


def _heading(message: Message) -> str:
    heading = _ROLE_HEADINGS.get(message.role, message.role)
    if message.version_count > 1:
        heading += f" (version {message.version} of {message.version_count})"
    return heading


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_MARKDOWN_SPECIAL: Final = str.maketrans({char: "\\" + char for char in "\\`*_[]<>#|"})


def _escape(text: str) -> str:
    """Names and titles shown literally (a profile called ``*bold*`` stays as written)."""
    return text.translate(_MARKDOWN_SPECIAL)


def _no_escape(text: str) -> str:
    return text


# --------------------------------------------------------------------------------------------
# JSON


def to_json(record: ConversationRecord) -> str:
    """Readable UTF-8 JSON; every control character is escaped, so it is terminal-safe."""
    text = json.dumps(record_to_mapping(record), ensure_ascii=False, indent=2) + "\n"
    # json escapes C0 already; DEL and C1 can only occur inside strings, where \\u is exact.
    return _DEL_AND_C1.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def record_to_mapping(record: ConversationRecord) -> dict[str, Any]:
    info = record.info
    return {
        "format": JSON_FORMAT,
        "format_version": JSON_FORMAT_VERSION,
        "exported_by": f"leverchat {__version__}",
        "chat": {
            "id": info.id,
            "title": info.title,
            "created": info.created.isoformat(),
            "updated": info.updated.isoformat(),
            "profile": info.profile,
            "system_prompt": info.system_prompt,
            "levers": info.levers.to_mapping(),
        },
        "messages": [_message_to_mapping(message) for message in record.messages],
    }


def _message_to_mapping(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status.value,
        "active": message.active,
        "created": message.created.isoformat(),
        "updated": message.updated.isoformat(),
        "provenance": (provenance_to_mapping(message.provenance) if message.provenance else None),
        # Only replies generated with the token inspector on carry it (readers may skip it).
        **({"inspection": inspections_to_list(message.inspection)} if message.inspection else {}),
    }


def from_json(text: str, *, source: str = "<json>") -> ConversationRecord:
    """Read an export back; :class:`ExportError` names ``source`` and the offending key."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportError(
            f"{source}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from error
    return record_from_mapping(data, source=source)


def record_from_mapping(data: Any, *, source: str = "<json>") -> ConversationRecord:
    reader = _Reader(source)
    top = reader.mapping(data, "the document")
    if top.get("format") != JSON_FORMAT:
        raise ExportError(f"{source}: not a leverchat chat export (format is not {JSON_FORMAT!r})")
    version = top.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > JSON_FORMAT_VERSION:
        raise ExportError(
            f"{source}: export format version {version!r} is not one this leverchat reads "
            f"(up to {JSON_FORMAT_VERSION}); upgrade leverchat"
        )
    chat = reader.mapping(top.get("chat"), "chat")
    raw_messages = top.get("messages")
    if not isinstance(raw_messages, list):
        raise ExportError(f"{source}: 'messages' must be a list")
    messages = tuple(
        reader.message(item, f"messages[{index}]") for index, item in enumerate(raw_messages)
    )
    _check_branches(messages, source)
    info = ConversationInfo(
        id=reader.text(chat, "id", "chat"),
        title=reader.text(chat, "title", "chat"),
        created=reader.moment(chat, "created", "chat"),
        updated=reader.moment(chat, "updated", "chat"),
        message_count=_active_path_length(messages),
        profile=reader.text(chat, "profile", "chat"),
        system_prompt=reader.text(chat, "system_prompt", "chat"),
        levers=reader.levers(chat.get("levers", {}), "chat.levers"),
    )
    return ConversationRecord(info, messages)


def _check_branches(messages: tuple[StoredMessage, ...], source: str) -> None:
    """A branch names the version it grew from: an earlier version of the same turn."""
    earlier: dict[str, str | None] = {}  # each message's parent, by id
    for index, message in enumerate(messages):
        point = message.provenance.branch if message.provenance else None
        if point is not None and (
            point.source_id not in earlier or earlier[point.source_id] != message.parent_id
        ):
            raise ExportError(
                f"{source}: messages[{index}].provenance.branch.source_id: "
                f"{point.source_id!r} is not an earlier version of the same turn"
            )
        earlier[message.id] = message.parent_id


def _active_path_length(messages: tuple[StoredMessage, ...]) -> int:
    active = {message.parent_id: message.id for message in messages if message.active}
    length, parent = 0, None
    seen: set[str] = set()
    while parent in active:
        current = active[parent]
        if current in seen:
            break  # a cycle: malformed, but never loop forever
        seen.add(current)
        length += 1
        parent = current
    return length


class _Reader:
    """Typed access to untrusted JSON, with errors that say where the problem is."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ExportError:
        return ExportError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be an object")
        return cast(dict[str, Any], value)

    def text(self, mapping: Mapping[str, Any], key: str, where: str) -> str:
        value = mapping.get(key)
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"must be a string, not {value!r}")
        return value

    def moment(self, mapping: Mapping[str, Any], key: str, where: str) -> datetime:
        text = self.text(mapping, key, where)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.fail(f"{where}.{key}", f"not an ISO date and time: {text!r}") from None
        if moment.tzinfo is None:
            raise self.fail(f"{where}.{key}", f"needs a time zone: {text!r}")
        return moment

    def levers(self, value: Any, where: str) -> Levers:
        try:
            return Levers.from_mapping(self.mapping(value, where))
        except LeverError as error:
            raise self.fail(where, error.message) from None

    def message(self, value: Any, where: str) -> StoredMessage:
        item = self.mapping(value, where)
        role = self.text(item, "role", where)
        if role not in _ROLE_HEADINGS:
            raise self.fail(f"{where}.role", f"must be 'user' or 'assistant', not {role!r}")
        status_text = self.text(item, "status", where)
        try:
            status = MessageStatus(status_text)
        except ValueError:
            known = ", ".join(status.value for status in MessageStatus)
            raise self.fail(f"{where}.status", f"{status_text!r} is not one of {known}") from None
        parent_id = item.get("parent_id")
        if parent_id is not None and not isinstance(parent_id, str):
            raise self.fail(f"{where}.parent_id", "must be a string or null")
        active = item.get("active")
        if not isinstance(active, bool):
            raise self.fail(f"{where}.active", "must be true or false")
        provenance = None
        if item.get("provenance") is not None:
            raw = self.mapping(item["provenance"], f"{where}.provenance")
            try:
                provenance = provenance_from_mapping(raw)
            except ValueError as error:
                raise self.fail(f"{where}.provenance", str(error)) from None
        return StoredMessage(
            id=self.text(item, "id", where),
            parent_id=parent_id,
            role="user" if role == "user" else "assistant",
            content=self.text(item, "content", where),
            status=status,
            active=active,
            created=self.moment(item, "created", where),
            updated=self.moment(item, "updated", where),
            provenance=provenance,
            inspection=self.inspection(item.get("inspection"), f"{where}.inspection"),
        )

    def inspection(self, value: Any, where: str) -> tuple[TokenInspection, ...]:
        if value is None:
            return ()
        try:
            return inspections_from_list(value, where)
        except ValueError as error:
            raise ExportError(f"{self.source}: {error}") from None


# --------------------------------------------------------------------------------------------
# Files


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one.

    A temporary file in the same folder is written, synced and renamed over the target; a
    symlink is followed (the link stays) and an existing file keeps its permissions.
    """
    target = path.resolve() if path.is_symlink() else path
    mode = target.stat().st_mode & 0o7777 if target.exists() else None
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            Path(temporary).chmod(mode)
        else:
            # mkstemp creates 0600; a new export gets the usual permissions for new files.
            Path(temporary).chmod(0o666 & ~_current_umask())
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
