"""The app's own config file (paths.config_file()): the chosen theme and the keymap.

```toml
theme = "leverchat-light"

[keymap]
toggle_panel = "f3"
```

A bad file or entry is reported (file, line, key) and ignored: the app always starts.
Writing the theme keeps every other key of the file, and never touches a file it could not
read (so a typo in it is not wiped out by a theme change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leverchat import paths
from leverchat.bounded import short_repr
from leverchat.tomlio import TomlError, read_toml, write_toml_atomic
from leverchat.ui.keymap import parse_keymap

# api_key_command is read by the remote engine (engine/remote/keys.py).
_KNOWN_KEYS = ("theme", "keymap", "api_key_command")


@dataclass(frozen=True)
class AppConfig:
    theme: str | None = None
    keymap: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    problems: tuple[str, ...] = ()
    readable: bool = True  # False when the file exists but could not be parsed


def load_config(path: Path | None = None) -> AppConfig:
    """Read the config file; a missing file is an empty config, a bad one is reported."""
    target = path if path is not None else paths.config_file()
    if not target.exists():
        return AppConfig(path=target)
    try:
        data = read_toml(target, kind="config")
    except TomlError as error:
        return AppConfig(path=target, problems=(f"{error}; using the defaults",), readable=False)
    problems: list[str] = []
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        problems.append(f"{target}: theme must be a theme name in quotes, not {short_repr(theme)}")
        theme = None
    keymap_table: Any = data.get("keymap", {})
    keymap: dict[str, str] = {}
    if isinstance(keymap_table, dict):
        keymap, keymap_problems = parse_keymap(keymap_table, str(target))
        problems.extend(keymap_problems)
    else:
        problems.append(
            f"{target}: keymap must be a table ([keymap]), not {short_repr(keymap_table)}"
        )
    for key in data:
        if key not in _KNOWN_KEYS:
            known = ", ".join(_KNOWN_KEYS)
            problems.append(f"{target}: unknown setting '{key}' (known: {known}); ignored")
    return AppConfig(theme=theme, keymap=keymap, path=target, problems=tuple(problems))


def remember_theme(config: AppConfig, theme: str) -> str | None:
    """Write ``theme`` into the config file, keeping the rest. Returns a problem, or None."""
    target = config.path if config.path is not None else paths.config_file()
    if not config.readable:
        return f"{target}: not saving the theme, the file could not be read (fix it first)"
    try:
        data = read_toml(target, kind="config") if target.exists() else {}
    except TomlError as error:
        return f"not saving the theme: {error}"
    if data.get("theme") == theme:
        return None
    data["theme"] = theme
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_toml_atomic(target, data, header="leverchat settings")
    except (TomlError, OSError) as error:
        return f"{target}: could not save the theme: {error}"
    return None
