"""Every key binding of the app, by id, and the user's keymap that rebinds them.

One registry (:data:`KEYS`) holds each binding's id, default keys and description; the widget
classes build their ``BINDINGS`` from it with :func:`binding`, and the help screen lists it. The
``[keymap]`` table of the config file maps ids to new keys (``toggle_panel = "f6"``); Textual's
``App.set_keymap`` applies it. A bad entry is reported and ignored, never fatal.

The chat's and the app's bindings are priority bindings (all but Escape's "stop", which must
close a select list or undo a lever edit first): a key the user gives them then works whatever
widget has the focus, even one whose own bindings use it (TextArea selects a line on F6). Keys
needed to type and edit text cannot be given to them, and a key that another binding of the
same screen keeps is refused: either would silently take a key away. Every hint on screen
names the current key with :func:`key_hint`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textual.binding import Binding
from textual.keys import Keys

from leverchat.levers import suggest_key
from leverchat.ui.key_names import key_display, normal_key


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
    KeySpec(
        "inspect",
        "f6",
        "Token inspector: tint replies by probability, move token by token",
        "chat",
        "Inspector",
    ),
    KeySpec(
        "inspect_tokens",
        "alt+t",
        "Go token by token through the focused (or last) reply: its alternatives",
        "chat",
        "Tokens",
    ),
    KeySpec("tokens.previous", "left", "Previous token", "token table", "Prev token"),
    KeySpec("tokens.next", "right", "Next token", "token table", "Next token"),
    KeySpec("tokens.first", "home", "First token of the reply", "token table", "First"),
    KeySpec("tokens.last", "end", "Last token of the reply", "token table", "Last"),
    KeySpec(
        "tokens.branch",
        "enter",
        "Branch: continue the reply with the chosen alternative",
        "token table",
        "Branch",
    ),
    KeySpec(
        "tokens.own_text",
        "e",
        "Branch with your own text in place of the token",
        "token table",
        "Own text",
    ),
    KeySpec("tokens.leave", "escape", "Leave the token cursor", "token table", "Leave"),
    KeySpec(
        "version_tree",
        "f7",
        "Show the versions of the focused reply as a tree",
        "chat",
        "Versions",
    ),
    KeySpec(
        "reply.branch",
        "b",
        "Branch this reply at a position you choose (a new version)",
        "focused reply",
        "Branch",
    ),
    KeySpec(
        "sweep",
        "f9",
        "Lever sweep: the prompt (or the last message) once per value of one lever, one seed",
        "chat",
        "Sweep",
    ),
    KeySpec("sweep.keep", "enter", "Copy this cell's reply (OSC 52)", "sweep cell", "Copy"),
    KeySpec(
        "ab_send",
        "f8",
        "A/B: send the message under the current settings and another (one seed); keep one",
        "chat",
        "A/B",
    ),
    KeySpec(
        "ab.keep",
        "enter",
        "Keep this reply; the other stays a version (left/right choose)",
        "A/B reply",
        "Keep",
    ),
    KeySpec("ab.provenance", "f3,i", "Show how this reply was made", "A/B reply", "Provenance"),
)

KEYS_BY_ID: dict[str, KeySpec] = {spec.id: spec for spec in KEYS}

# Fixed keys that are not bindings (the help screen lists them too).
FIXED_KEYS: tuple[tuple[str, str], ...] = (
    ("up", "In an empty prompt: recall the previous message"),
    ("tab / shift+tab", "Move the focus"),
    ("home / end", "Top / bottom of the chat (when the chat has the focus)"),
    ("up / down", "In the token table: pick an alternative (Enter branches with it)"),
)


# Where a binding answers whatever has the focus (see the module docstring).
_EVERYWHERE = ("chat", "app")
# Escape closes a select list, cancels a lever edit or a dialog before it stops a reply.
_NOT_PRIORITY = frozenset({"stop"})


def binding(
    binding_id: str, action: str, *, show: bool = True, priority: bool | None = None
) -> Binding:
    """The Binding for ``binding_id`` with its default keys and description; a priority
    binding where it must answer whatever has the focus, unless ``priority`` says."""
    spec = KEYS_BY_ID[binding_id]
    if priority is None:
        priority = spec.where in _EVERYWHERE and binding_id not in _NOT_PRIORITY
    return Binding(
        spec.keys,
        action,
        spec.label or spec.description,
        show=show,
        priority=priority,
        id=binding_id,
        tooltip=spec.description,
    )


def key_list(keymap: Mapping[str, str], binding_id: str) -> list[str]:
    """The keys ``binding_id`` answers to, after the user's keymap, in their order."""
    keys = keymap.get(binding_id, KEYS_BY_ID[binding_id].keys)
    return [key.strip() for key in keys.split(",") if key.strip()]


def current_keys(keymap: Mapping[str, str], binding_id: str) -> set[str]:
    """The keys ``binding_id`` answers to, after the user's keymap."""
    return set(key_list(keymap, binding_id))


def key_hint(keymap: Mapping[str, str], binding_id: str, *, every: bool = False) -> str:
    """The current key of ``binding_id`` as a hint shows it ("F6"); ``every``: all its keys
    ("Shift+Enter or Ctrl+J"). "no key" when the keymap left it none."""
    keys = [key_display(key) for key in key_list(keymap, binding_id)]
    if not keys:
        return "no key"
    return " or ".join(keys) if every else keys[0]


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
    help_keys = table.get("help", "f1")
    valid_help = isinstance(help_keys, str) and key_problem(help_keys) is None
    help_key = key_display(help_keys.split(",")[0].strip()) if valid_help else "F1"
    for binding_id, keys in table.items():
        if binding_id not in KEYS_BY_ID:
            suggestion = suggest_key(binding_id, KEYS_BY_ID)
            hint = (
                f"did you mean '{suggestion}'?"
                if suggestion
                else f"see the help screen ({help_key})"
            )
            problems.append(f"{source}: [keymap] {binding_id}: unknown binding id; {hint}")
            continue
        if not isinstance(keys, str):
            problems.append(
                f'{source}: [keymap] {binding_id} must be a string of keys like "f6", not {keys!r}'
            )
            continue
        problem = key_problem(keys) or _typing_key_problem(binding_id, keys)
        if problem is not None:
            problems.append(f"{source}: [keymap] {binding_id} = {keys!r}: {problem}; ignored")
            continue
        keymap[binding_id] = ",".join(part.strip() for part in keys.split(","))
    for binding_id in list(keymap):
        clash = _clash(keymap, binding_id)
        if clash is not None:
            key, other = clash
            problems.append(
                f"{source}: [keymap] {binding_id} = {keymap[binding_id]!r}: {key_display(key)} "
                f"is already the key of {other} ({KEYS_BY_ID[other].description.lower()}); "
                f"pick a free key or give {other} another one too; ignored"
            )
            del keymap[binding_id]
    return keymap, problems


# Keys the prompt and the lever boxes need for typing and editing text.
_EDITING_KEYS = frozenset(
    {"enter", "tab", "backspace", "delete", "up", "down", "left", "right", "home", "end"}
)
# Bindings that share a screen, so one key cannot serve two of them.
_SCREENS = (frozenset({"chat", "app", "prompt"}), frozenset({"chat list", "app"}))


def _typing_key_problem(binding_id: str, keys: str) -> str | None:
    if KEYS_BY_ID[binding_id].where not in _EVERYWHERE:
        return None
    for key in keys.split(","):
        if binding_id in _NOT_PRIORITY and normal_key(key) in _text_box_keys():
            # Not a priority binding: a text box with the focus would keep this key.
            return (
                f"'{key.strip()}' is a key of the text boxes (the prompt, the lever boxes); "
                f"give {binding_id} a key they leave alone, like escape or f12"
            )
        *modifiers, name = normal_key(key).split("+")
        if set(modifiers) - {"shift"}:
            continue
        if name in _EDITING_KEYS or name == "space" or len(key_display(name)) == 1:
            return (
                f"'{key.strip()}' is needed to type and edit text; give {binding_id} a key that "
                "works while you type, like f10, ctrl+g or alt+n"
            )
    return None


def _text_box_keys() -> frozenset[str]:
    """The keys Textual's text boxes bind for themselves (F6 selects a line, Ctrl+X cuts)."""
    from textual.widgets import Input, TextArea

    keys: set[str] = set()
    for owner in (Input, TextArea):
        for item in owner.BINDINGS:
            if isinstance(item, Binding):
                keys.update(normal_key(key) for key in item.key.split(","))
    return frozenset(keys)


def _clash(keymap: Mapping[str, str], binding_id: str) -> tuple[str, str] | None:
    """A key of ``binding_id`` that another binding of the same screen also has, and that
    binding's id."""
    where = KEYS_BY_ID[binding_id].where
    for key in key_list(keymap, binding_id):
        for other in KEYS:
            if other.id == binding_id or not any(
                where in screen and other.where in screen for screen in _SCREENS
            ):
                continue
            if normal_key(key) in {normal_key(each) for each in key_list(keymap, other.id)}:
                return key, other.id
    return None
