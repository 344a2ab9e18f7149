"""``leverchat profiles``: list, show, locate, import, delete and restore persona profiles.

Output is plain text written with ``print`` (never Rich markup), and every untrusted string
(profile names, paths, error texts) goes through :func:`leverchat.safetext.visible` first, so a
hostile file name cannot restyle or take over the terminal: its control, bidi and zero-width
characters are shown as escapes (``\x1b``, ``\u202e``). ``show`` prints TOML whose strings
escape the same characters the TOML way (:mod:`leverchat.commands.toml_display`).

Exit codes: 0 success, 1 an error the message explains, 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from leverchat.commands.toml_display import dumps_for_display
from leverchat.profile_import import import_profile
from leverchat.profiles import (
    Profile,
    ProfileEntry,
    ProfileError,
    ProfileExistsError,
    ProfileStore,
    profile_to_mapping,
)
from leverchat.safetext import visible

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
_PROG = "leverchat profiles"


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``profiles`` sub-command; its handler is :func:`run` (``args.handler``)."""
    parser = subparsers.add_parser(
        "profiles",
        help="list, show, import and manage persona profiles",
        description="Persona profiles: a system prompt plus the levers that shape replies.",
    )
    actions = parser.add_subparsers(dest="profiles_action", metavar="ACTION")
    actions.add_parser("list", help="every profile: built-in or user, broken or not, and its file")
    show = actions.add_parser("show", help="print a profile as TOML with every default filled in")
    show.add_argument("name", metavar="NAME")
    actions.add_parser("path", help="print the folder that holds your profiles")
    importer = actions.add_parser(
        "import",
        help="import an Ollama Modelfile, a text-generation-webui preset or an llm template",
    )
    importer.add_argument("file", metavar="FILE", type=Path)
    importer.add_argument("--name", metavar="NAME", help="name of the new profile")
    delete = actions.add_parser(
        "delete", help="delete a user profile (a copy is kept until the next delete)"
    )
    delete.add_argument("name", metavar="NAME")
    restore = actions.add_parser("restore", help="bring back the last deleted copy of a profile")
    restore.add_argument("name", metavar="NAME")
    parser.set_defaults(handler=run, profiles_parser=parser)
    return parser


def run(args: argparse.Namespace, *, store: ProfileStore | None = None) -> int:
    """Carry out ``leverchat profiles ACTION``; returns the exit code."""
    action: str | None = getattr(args, "profiles_action", None)
    handler = _ACTIONS.get(action or "")
    if handler is None:
        parser: argparse.ArgumentParser | None = getattr(args, "profiles_parser", None)
        if parser is not None:
            parser.print_usage(sys.stderr)
        _error("choose an action: " + ", ".join(_ACTIONS))
        return EXIT_USAGE
    try:
        return handler(args, store if store is not None else ProfileStore())
    except ProfileError as error:
        _error(str(error))
        return EXIT_ERROR


def _list(args: argparse.Namespace, store: ProfileStore) -> int:
    entries = store.list()
    rows = [("NAME", "SOURCE", "STATUS", "PATH")]
    rows += [
        (_safe(e.name), e.source, "broken" if e.broken else "ok", _safe(str(e.path)))
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[3]]))
        entry = entries[index - 1] if index > 0 else None
        if entry is not None and entry.error is not None:
            print(f"    error: {_safe(str(entry.error))}")
    broken = sum(1 for e in entries if e.broken)
    summary = f"{len(entries)} profiles"
    if broken:
        summary += f", {broken} broken (fix or delete the file; the others work as usual)"
    print(f"\n{summary}. Your profiles folder: {_safe(str(store.directory))}")
    deleted = store.list_deleted()
    if deleted:
        names = ", ".join(_safe(entry.name) for entry in deleted)
        print(f"Deleted, can be restored with `{_PROG} restore NAME`: {names}")
    return EXIT_OK


def _show(args: argparse.Namespace, store: ProfileStore) -> int:
    loaded = store.load(args.name)
    origin = "built-in" if loaded.builtin else "user profile"
    header = "\n".join([f"{origin}: {loaded.path}", *_show_notes(loaded.profile)])
    mapping = profile_to_mapping(loaded.profile, all_levers=True)
    sys.stdout.write(dumps_for_display(mapping, header=header))
    return EXIT_OK


def _show_notes(profile: Profile) -> list[str]:
    notes = [f"Profile '{profile.name}' with every lever resolved."]
    if profile.model is None:
        notes.append("model is not set: the model leverchat was started with is used.")
    if profile.levers.seed is None:
        notes.append("seed is not set: every reply picks a new random seed.")
    return notes


def _path(args: argparse.Namespace, store: ProfileStore) -> int:
    print(_safe(str(store.directory)))
    return EXIT_OK


def _import(args: argparse.Namespace, store: ProfileStore) -> int:
    result = import_profile(args.file, name=args.name)
    try:
        saved = store.save_as(result.profile)
    except ProfileExistsError as error:
        _error(f"{error.message}; pass --name to import it under another name")
        return EXIT_ERROR
    print(
        f"Imported '{_safe(saved.name)}' from {_safe(str(args.file))} "
        f"({result.format_label}) into {_safe(str(saved.path))}"
    )
    if result.unmapped:
        print(f"Not mapped ({len(result.unmapped)}):")
        for item in result.unmapped:
            print(f"  {_safe(str(item))}")
    else:
        print("Everything was mapped.")
    for note in result.notes:
        print(f"Note: {_safe(note)}")
    return EXIT_OK


def _delete(args: argparse.Namespace, store: ProfileStore) -> int:
    kept = store.delete(args.name)
    name = _safe(args.name)
    print(
        f"Deleted '{name}'. A copy is kept as {_safe(str(kept))} until the next "
        f"delete of this name; `{_PROG} restore {name}` brings it back."
    )
    return EXIT_OK


def _restore(args: argparse.Namespace, store: ProfileStore) -> int:
    entry: ProfileEntry = store.restore(args.name)
    print(f"Restored '{_safe(entry.name)}' to {_safe(str(entry.path))}")
    if entry.error is not None:
        print(f"It does not load yet: {_safe(str(entry.error))}")
    return EXIT_OK


_ACTIONS = {
    "list": _list,
    "show": _show,
    "path": _path,
    "import": _import,
    "delete": _delete,
    "restore": _restore,
}


def _error(message: str, stream: TextIO | None = None) -> None:
    print(f"{_PROG}: error: {_safe(message)}", file=stream or sys.stderr)


def _safe(text: str) -> str:
    """A name, path or error quoted on one line: line breaks and tabs are escaped too."""
    return visible(text, multiline=False)
