"""Texts on screen that name a key: each names the key the user's keymap gives it now.

A keymap can rebind any binding (``toggle_panel = "f6"``); a hint that still said "F2" would
send the user to a key that does nothing.
"""

from __future__ import annotations

from textual.app import App

from leverchat.ui.keymap import key_hint


def key_of(app: App[object], binding_id: str, *, every: bool = False) -> str:
    """The current key of ``binding_id`` as hints write it ("F6", "Ctrl+P")."""
    keymap: dict[str, str] = getattr(app, "keymap", {})
    return key_hint(keymap, binding_id, every=every)


def welcome(app: App[object]) -> str:
    return (
        f"Ask anything below. {key_of(app, 'toggle_panel')} shows the levers, "
        f"{key_of(app, 'command_palette')} the commands, {key_of(app, 'help')} every key. "
        f"{key_of(app, 'stop')} stops a reply."
    )


def prompt_placeholder(app: App[object]) -> str:
    return (
        f"Ask something ({key_of(app, 'send')} sends, "
        f"{key_of(app, 'newline', every=True)} for a new line)"
    )


def busy(app: App[object]) -> str:
    """Refusing an action while a reply streams."""
    return f"A reply is still being written: stop it first ({key_of(app, 'stop')})."


def busy_send(app: App[object]) -> str:
    return f"A reply is still being written: press {key_of(app, 'stop')} to stop it, then send."


def load_failed(app: App[object]) -> str:
    """What to do after a model failed to load (follows the error)."""
    return (
        f"Load another one from the command palette ({key_of(app, 'command_palette')}, "
        f'"Load model"), or quit with {key_of(app, "quit")}.'
    )


def chat_list_keys(app: App[object]) -> str:
    return (
        f"Enter open · {key_of(app, 'chats.rename')} rename · "
        f"{key_of(app, 'chats.delete')} delete · {key_of(app, 'chats.search')} search · "
        "Esc close"
    )
