"""Every key binding of the app, by id, and the user's keymap that rebinds them.

One registry (:data:`KEYS`) holds each binding's id, default keys and description; the widget
classes build their ``BINDINGS`` from it with :func:`binding`, and the help screen lists it. The
``[keymap]`` table of the config file maps ids to new keys (``toggle_panel = "f3"``); Textual's
``App.set_keymap`` applies it. A bad entry is reported and ignored, never fatal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textual.binding import Binding
from textual.keys import Keys

from leverchat.levers import suggest_key


@dataclass(frozen=True)
class KeySpec:
    id: str
    keys: str
    description: str
    where: str  # where the binding is active, for the help screen
    label: str = ""  # the short name the footer shows (the description otherwise)


KEYS: tuple[KeySpec, ...] = (
    KeySpec("send", "enter", "Send the message", "prompt", "Send"),
    KeySpec("newline", "shift+enter,ctrl+j", "Insert a new line", "prompt", "Newline"),
    KeySpec(
        "stop", "escape", "Stop the reply that is streaming, or back to the prompt", "chat", "Stop"
    ),
    KeySpec("toggle_panel", "f2", "Show or hide the lever panel", "chat", "Levers"),
    KeySpec("help", "f1", "Show this help", "app", "Help"),
    KeySpec("command_palette", "ctrl+p", "Open the command palette", "app", "Commands"),
    KeySpec("quit", "ctrl+q", "Quit", "app", "Quit"),
    KeySpec("save_profile", "ctrl+s", "Save the profile", "chat", "Save"),
    KeySpec("regenerate", "ctrl+r", "Regenerate the last reply (new seed)", "chat", "Regenerate"),
    KeySpec("edit_last", "ctrl+o", "Edit the last message and send it again", "chat", "Edit last"),
    KeySpec("copy_reply", "ctrl+t", "Copy the last reply (OSC 52, works over SSH)", "chat", "Copy"),
    KeySpec("provenance", "f3", "Show how the last reply was made", "chat", "Provenance"),
    KeySpec("new_chat", "ctrl+n", "Start a new chat", "chat", "New chat"),
    KeySpec("focus_panel", "ctrl+l", "Move the focus to the levers", "chat", "Levers"),
    KeySpec(
        "chat_list", "f4", "Open a saved chat: browse, search, rename, delete", "chat", "Chats"
    ),
    KeySpec(
        "reproduce",
        "f5",
        "Reproduce the focused (or last) reply with its recorded levers and seed",
        "chat",
        "Reproduce",
    ),
    KeySpec(
        "version_previous",
        "alt+left",
        "Previous version of the focused (or last) reply",
        "chat",
        "Older version",
    ),
    KeySpec(
        "version_next",
        "alt+right",
        "Next version of the focused (or last) reply",
        "chat",
        "Newer version",
    ),
    KeySpec("scroll_up", "pageup", "Scroll the chat up", "chat", "Page up"),
    KeySpec("scroll_down", "pagedown", "Scroll the chat down", "chat", "Page down"),
    KeySpec("reply.copy", "c", "Copy this reply", "focused reply", "Copy"),
    KeySpec("reply.provenance", "i", "Show how this reply was made", "focused reply", "Provenance"),
    KeySpec("chats.rename", "r,f2", "Rename the chosen chat", "chat list", "Rename"),
    KeySpec(
        "chats.delete", "d,delete", "Delete the chosen chat (asks first)", "chat list", "Delete"
    ),
    KeySpec("chats.search", "slash,ctrl+f", "Search message text", "chat list", "Search"),
    KeySpec("lever.step_up", "up,plus", "Lever one step up", "lever", "Step up"),
    KeySpec("lever.step_down", "down", "Lever one step down", "lever", "Step down"),
    KeySpec("lever.minus", "minus", "Lever one step down (or a minus sign)", "lever", "Step down"),
)

KEYS_BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}

# Fixed keys that are not bindings (the help screen lists them too).
FIXED_KEYS: tuple[tuple[str, str], ...] = (
    ("up", "In an empty prompt: recall the previous message"),
    ("tab / shift+tab", "Move the focus"),
    ("home / end", "Top / bottom of the chat (when the chat has the focus)"),
)


def binding(binding_id: str, action: str, *, show: bool = True, priority: bool = False) -> Binding:
    """The Binding for ``binding_id`` with its default keys and description."""
    spec = KEYS_BY_ID[binding_id]
    return Binding(
        spec.keys,
        action,
        spec.label or spec.description,
        show=show,
        priority=priority,
        id=binding_id,
        tooltip=spec.description,
    )


def current_keys(keymap: Mapping[str, str], binding_id: str) -> set[str]:
    """The keys ``binding_id`` answers to, after the user's keymap."""
    keys = keymap.get(binding_id, KEYS_BY_ID[binding_id].keys)
    return {key.strip() for key in keys.split(",") if key.strip()}


_MODIFIERS = {"ctrl", "shift", "alt", "meta", "super", "hyper"}
_KEY_NAMES = {key.value for key in Keys} | {f"f{number}" for number in range(1, 25)}
_NAMED = {
    "enter",
    "escape",
    "tab",
    "space",
    "backspace",
    "delete",
    "insert",
    "home",
    "end",
    "pageup",
    "pagedown",
    "up",
    "down",
    "left",
    "right",
    "plus",
    "minus",
    "question_mark",
    "exclamation_mark",
    "slash",
    "backslash",
    "comma",
    "full_stop",
    "colon",
    "semicolon",
}
_PRINTABLE_KEY = re.compile(r"^[!-~]$")


def key_problem(keys: str) -> str | None:
    """Why ``keys`` (comma separated, e.g. ``"ctrl+s,f5"``) is not a key list, or None."""
    if not keys.strip():
        return "no key given"
    for key in keys.split(","):
        parts = key.strip().split("+")
        if not parts[-1]:
            # "ctrl++" means ctrl and the plus key.
            parts = [*parts[:-2], "plus"] if len(parts) > 1 else parts
        *modifiers, name = [part.strip() for part in parts]
        unknown = [modifier for modifier in modifiers if modifier.lower() not in _MODIFIERS]
        if unknown:
            return f"'{unknown[0]}' in '{key.strip()}' is not a modifier (ctrl, shift, alt, ...)"
        lowered = name.lower()
        if not (lowered in _KEY_NAMES or lowered in _NAMED or _PRINTABLE_KEY.match(name)):
            return f"'{name}' is not a key name (examples: f3, ctrl+g, escape, pageup)"
    return None


def parse_keymap(table: Mapping[str, Any], source: str) -> tuple[dict[str, str], list[str]]:
    """The usable entries of a ``[keymap]`` table and a problem line for each bad entry."""
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in table.items():
        if binding_id not in KEYS_BY_ID:
            suggestion = suggest_key(binding_id, KEYS_BY_ID)
            hint = f"did you mean '{suggestion}'?" if suggestion else "see the help screen (F1)"
            problems.append(f"{source}: [keymap] {binding_id}: unknown binding id; {hint}")
            continue
        if not isinstance(keys, str):
            problems.append(
                f'{source}: [keymap] {binding_id} must be a string of keys like "f3", not {keys!r}'
            )
            continue
        problem = key_problem(keys)
        if problem is not None:
            problems.append(f"{source}: [keymap] {binding_id} = {keys!r}: {problem}; ignored")
            continue
        keymap[binding_id] = ",".join(part.strip() for part in keys.split(","))
    return keymap, problems
