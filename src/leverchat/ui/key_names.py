"""How keys are written: in hints on screen (``Ctrl+P``, ``F6``, ``/``) and, to compare them,
in one normal form (``ctrl+slash``)."""

from __future__ import annotations

from textual.keys import key_to_character

_DISPLAY_NAMES = {
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "escape": "Escape",
    "space": "Space",
    "slash": "/",
    "backslash": "\\",
    "plus": "+",
    "minus": "-",
    "comma": ",",
    "full_stop": ".",
    "colon": ":",
    "semicolon": ";",
    "question_mark": "?",
    "exclamation_mark": "!",
}


def key_display(key: str) -> str:
    """A key as hints write it: ``ctrl+p`` -> ``Ctrl+P``, ``f6`` -> ``F6``, ``slash`` -> ``/``."""
    *modifiers, name = key.split("+") if not key.endswith("++") else [*key[:-2].split("+"), "+"]
    character = key_to_character(name) if len(name) > 1 else name
    if name in _DISPLAY_NAMES:
        shown = _DISPLAY_NAMES[name]
    elif character is not None and character.isprintable() and len(character) == 1:
        shown = character.upper() if modifiers else character
    else:
        shown = name[:1].upper() + name[1:]
    return "+".join([*(modifier.capitalize() for modifier in modifiers if modifier), shown])


def normal_key(key: str) -> str:
    """One spelling per key, to compare keys: ``Ctrl+/`` and ``ctrl+slash`` are the same."""
    *modifiers, name = (
        key.strip().split("+") if not key.endswith("++") else [*key[:-2].split("+"), "+"]
    )
    for long_name, character in _DISPLAY_NAMES.items():
        if name == character:
            name = long_name
    return "+".join([*(modifier.lower() for modifier in modifiers), name])
