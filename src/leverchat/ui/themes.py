"""Themes from TOML files: the built-in ones in themes/ and the user's in their config folder.

```toml
name = "leverchat-dark"      # optional: the file name (without .toml) otherwise
dark = true

[colors]                     # primary is required; the others are optional
primary = "#5fafff"
background = "#1b1d23"

[variables]                  # optional Textual theme variables
"footer-key-foreground" = "#5fafff"
```

A file that cannot be read, or that holds a bad colour, is reported and skipped; never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from leverchat import paths
from leverchat.tomlio import TomlError, read_toml

DEFAULT_THEME = "leverchat-dark"

COLOR_KEYS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_TOP_KEYS = ("name", "dark", "colors", "variables")
_THEME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ThemeSet:
    themes: tuple[Theme, ...]
    problems: tuple[str, ...]


class ThemeFileError(ValueError):
    pass


def load_theme_file(path: Path) -> Theme:
    """The Theme a TOML file describes; raises ThemeFileError naming the file and the key."""
    try:
        data = read_toml(path)
    except TomlError as error:
        raise ThemeFileError(str(error)) from None
    return theme_from_mapping(data, path)


def theme_from_mapping(data: dict[str, Any], path: Path) -> Theme:
    for key in data:
        if key not in _TOP_KEYS:
            raise ThemeFileError(f"{path}: unknown key '{key}' (known: {', '.join(_TOP_KEYS)})")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not _THEME_NAME.fullmatch(name):
        # Textual's theme picker reads names as markup: keep them to plain characters.
        raise ThemeFileError(
            f"{path}: name must be letters, digits, '-', '_' or '.', like \"my-theme\", "
            f"not {name!r}"
        )
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{path}: dark must be true or false, not {dark!r}")
    colors = data.get("colors", {})
    if not isinstance(colors, dict):
        raise ThemeFileError(f"{path}: [colors] must be a table")
    for key, value in colors.items():
        if key not in COLOR_KEYS:
            raise ThemeFileError(
                f"{path}: [colors] {key}: unknown colour name (known: {', '.join(COLOR_KEYS)})"
            )
        _check_color(path, f"[colors] {key}", value)
    if "primary" not in colors:
        raise ThemeFileError(f"{path}: [colors] primary is required")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(value, str) for value in variables.values()
    ):
        raise ThemeFileError(f"{path}: [variables] must be a table of strings")
    return Theme(name=name, dark=dark, variables=dict(variables), **colors)


def _check_color(path: Path, key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ThemeFileError(f'{path}: {key} must be a colour string like "#1e90ff", not {value!r}')
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(
            f'{path}: {key} = {value!r} is not a colour (use "#rrggbb", "rgb(r,g,b)" or a name)'
        ) from None


def theme_files(directories: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in directories:
        if directory.is_dir():
            files.extend(sorted(directory.glob("*.toml")))
    return files


def load_themes(directories: Iterable[Path] | None = None) -> ThemeSet:
    """Every theme in the built-in folder then the user's; a later file with the same name wins
    (a user theme can replace a built-in one)."""
    folders = (
        list(directories)
        if directories is not None
        else [paths.builtin_themes_dir(), paths.user_themes_dir()]
    )
    found: dict[str, Theme] = {}
    problems: list[str] = []
    for path in theme_files(folders):
        try:
            theme = load_theme_file(path)
        except ThemeFileError as error:
            problems.append(f"{error}; theme skipped")
            continue
        found[theme.name] = theme
    return ThemeSet(tuple(found.values()), tuple(problems))
