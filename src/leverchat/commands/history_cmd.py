"""``leverchat history``: list, show, export, search and delete saved chats.

Chat ids may be shortened to any unique prefix. Everything printed for a person passes
through :func:`leverchat.safetext.visible`: titles and messages are untrusted text, and their
control, bidi and zero-width characters are shown as escapes. An export written to a file
(``-o``) or into a pipe is exact; only an export shown on a terminal is made visible.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from leverchat.commands.options import positive_int
from leverchat.export import to_json, to_markdown, write_text_atomic
from leverchat.history import ConversationInfo, HistoryError, HistoryStore
from leverchat.history_import import import_file
from leverchat.history_rows import SkippedRecord
from leverchat.safetext import single_line, visible

_SHORT_ID = 8


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``history`` sub-command to the main parser's sub-commands."""
    parser = subparsers.add_parser(
        "history",
        help="list, show, export, import, search or delete saved chats",
        description="Browse the saved chats. Chat ids may be shortened to a unique prefix.",
    )
    parser.add_argument(
        "--database",
        type=Path,
        metavar="FILE",
        help="the history database to use (default: history.sqlite3 in the user data folder)",
    )
    actions = parser.add_subparsers(dest="history_action", metavar="ACTION")
    # Set after add_subparsers, so that plain `leverchat history` means `history list`.
    parser.set_defaults(handler=run, history_action="list")

    listing = actions.add_parser("list", help="saved chats, most recent first (the default)")
    listing.add_argument("--limit", type=positive_int, metavar="N", help="show at most N chats")

    show = actions.add_parser("show", help="print one chat with the provenance of each reply")
    show.add_argument("chat_id", metavar="ID", help="chat id or a unique prefix of it")

    export = actions.add_parser("export", help="write one chat as Markdown or JSON")
    export.add_argument("chat_id", metavar="ID", help="chat id or a unique prefix of it")
    export.add_argument(
        "--format",
        choices=("md", "json"),
        default="md",
        help="md: readable, with a provenance line under each reply; json: everything, "
        "every version of every reply included (default: md)",
    )
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )

    import_ = actions.add_parser(
        "import",
        help="add a chat from a JSON export (as written by `history export --format json`)",
        description="Add the chat in FILE, a JSON export, to the history: every message, "
        "every version and its provenance, with the same ids. A chat that is already in the "
        "history is refused (delete it first to replace it), and so is a file that is not a "
        "complete leverchat export; nothing is written then.",
    )
    import_.add_argument("file", type=Path, metavar="FILE", help="the JSON export to import")

    delete = actions.add_parser("delete", help="delete one chat and all its messages")
    delete.add_argument("chat_id", metavar="ID", help="chat id or a unique prefix of it")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    search = actions.add_parser("search", help="find chats whose messages contain TEXT")
    search.add_argument("text", nargs="+", metavar="TEXT", help="the text to look for (any case)")
    search.add_argument("--limit", type=positive_int, default=50, metavar="N")


def run(args: argparse.Namespace) -> int:
    """Run one ``history`` action; 0 on success, 1 on an error (explained on stderr)."""
    try:
        with HistoryStore(args.database) as store:
            action = args.history_action
            if action == "show":
                return _show(store, args.chat_id)
            if action == "export":
                return _export(store, args.chat_id, args.format, args.output)
            if action == "delete":
                return _delete(store, args.chat_id, assume_yes=args.yes)
            if action == "import":
                return _import(store, args.file)
            if action == "search":
                return _search(store, " ".join(args.text), args.limit)
            return _list(store, getattr(args, "limit", None))
    except HistoryError as error:
        _error(str(error))
        return 1
    except BrokenPipeError:
        # The reader (head, less) went away early: not worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _list(store: HistoryStore, limit: int | None) -> int:
    chats = store.list_conversations(limit=limit)
    if not chats:
        _say(f"No saved chats yet (history: {store.path}).")
        return 0
    width = _id_width([chat.id for chat in chats])
    profile_width = min(max(len(single_line(chat.profile)) for chat in chats), 20)
    profile_width = max(profile_width, len("PROFILE"))
    _say(f"{'ID':<{width}}  {'LAST ACTIVE':<16}  MSGS  {'PROFILE':<{profile_width}}  TITLE")
    for chat in chats:
        profile = single_line(chat.profile, profile_width) or "-"
        title = single_line(chat.title, 60) or "(untitled)"
        if chat.problem is not None:
            title = f"(unreadable) {title}"
        _say(
            f"{chat.id[:width]:<{width}}  {_local(chat.updated)}  {chat.message_count:>4}  "
            f"{profile:<{profile_width}}  {title}"
        )
    # Listed, so they can be deleted; explained once each on stderr, the listing stays clean.
    for chat in chats:
        if chat.problem is not None:
            _warn(
                f"chat {chat.id} cannot be read ({chat.problem}); delete it with "
                f"`leverchat history delete {chat.id}`"
            )
    return 0


def _show(store: HistoryStore, prefix: str) -> int:
    chat_id = store.resolve_id(prefix)
    info = store.get_info(chat_id, lenient=True)
    conversation, skipped = store.read_conversation(chat_id)
    # Plain text: a terminal shows `top_k`, not Markdown's `top\_k` (export keeps Markdown).
    _say(to_markdown(info, conversation, plain=True).rstrip("\n"))
    _report(info, skipped)
    return 0


def _export(store: HistoryStore, prefix: str, format_name: str, output: Path | None) -> int:
    chat_id = store.resolve_id(prefix)
    if format_name == "json":
        # Strict settings: a JSON export must hold the chat's real levers or nothing.
        record = store.export_record(chat_id)
        info, skipped = record.info, record.skipped
        text = to_json(record)
    else:
        info = store.get_info(chat_id, lenient=True)
        conversation, skipped = store.read_conversation(chat_id)
        text = to_markdown(info, conversation)
    _report(info, skipped)
    if output is None:
        # Exact bytes into a pipe or a redirect; cleaned text on a terminal.
        sys.stdout.write(visible(text) if sys.stdout.isatty() else text)
        sys.stdout.flush()
        return 0
    try:
        write_text_atomic(output, text)
    except OSError as error:
        _error(f"cannot write {output}: {error.strerror or error}")
        return 1
    _say(f"Exported chat {chat_id[:_SHORT_ID]} to {output}")
    return 0


def _import(store: HistoryStore, path: Path) -> int:
    record = import_file(store, path)
    info = record.info
    versions = len(record.messages)
    _say(
        f"Imported {_describe(info)} from {path}"
        f" ({versions} message version{'' if versions == 1 else 's'} in all)."
    )
    return 0


def _report(info: ConversationInfo, skipped: tuple[SkippedRecord, ...]) -> None:
    """Say on stderr what could not be read, so a partial chat is never taken for whole."""
    if info.problem is not None:
        _warn(f"chat {info.id}: its settings cannot be read ({info.problem}); defaults shown")
    for record in skipped:
        _warn(f"chat {info.id}: {record.describe()}")


def _delete(store: HistoryStore, prefix: str, *, assume_yes: bool) -> int:
    chat_id = store.resolve_id(prefix)
    # Lenient: a chat whose stored settings are unreadable must still be deletable.
    info = store.get_info(chat_id, lenient=True)
    if not assume_yes:
        if not sys.stdin.isatty():
            _error(f"not deleting {_describe(info)} without confirmation: add --yes")
            return 1
        try:
            answer = input(visible(f"Delete {_describe(info)}? [y/N] "))
        except (EOFError, KeyboardInterrupt):
            answer = ""
            print(file=sys.stderr)
        if answer.strip().lower() not in ("y", "yes"):
            _say("Nothing deleted.")
            return 1
    if not store.delete_conversation(chat_id):
        _error(f"chat {chat_id} was already gone")
        return 1
    _say(f"Deleted {_describe(info)}.")
    return 0


def _search(store: HistoryStore, text: str, limit: int) -> int:
    hits = store.search(text, limit=limit)
    if not hits:
        _say(f"No message contains '{single_line(text)}'.")
        return 0
    width = _id_width([hit.conversation_id for hit in hits])
    for hit in hits:
        title = single_line(hit.title, 60) or "(untitled)"
        _say(f"{hit.conversation_id[:width]}  {_local(hit.updated)}  {title}")
        _say(f"    {hit.role}: {single_line(hit.snippet)}")
    return 0


def _describe(info: ConversationInfo) -> str:
    title = single_line(info.title, 60) or "(untitled)"
    plural = "" if info.message_count == 1 else "s"
    return f"chat {info.id[:_SHORT_ID]} '{title}' ({info.message_count} message{plural})"


def _id_width(ids: list[str]) -> int:
    """The shortest prefix length (at least 8) that tells the listed ids apart."""
    longest = max((len(chat_id) for chat_id in ids), default=_SHORT_ID)
    for width in range(_SHORT_ID, longest + 1):
        if len({chat_id[:width] for chat_id in ids}) == len(set(ids)):
            return width
    return longest


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _say(text: str, stream: TextIO | None = None) -> None:
    print(visible(text), file=stream or sys.stdout)


def _error(text: str) -> None:
    _say(f"leverchat history: error: {text}", sys.stderr)


def _warn(text: str) -> None:
    _say(f"leverchat history: warning: {text}", sys.stderr)
