"""Themes from TOML files: the built-in ones in themes/ and the user's in their config folder.

```toml
name = "my-theme"            # optional: the file name (without .toml) otherwise
dark = true

[colors]                     # primary is required; the others are optional
primary = "#5fafff"
background = "#1b1d23"

[variables]                  # optional Textual theme variables
"footer-key-foreground" = "#5fafff"
```

A file that cannot be read, or whose primary colour is missing or bad, is reported and skipped;
any other bad entry (an unknown key, a colour that does not parse) is reported and skipped on
its own, and the rest of the theme is kept. Never a crash.
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
from leverchat.bounded import short_repr
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


def load_theme_file(path: Path, problems: list[str] | None = None) -> Theme:
    """The Theme a TOML file describes; raises ThemeFileError naming the file and the key.

    A bad entry (an unknown key, a colour that does not parse) is appended to ``problems``
    and skipped; only a file that cannot be read or has no usable primary colour is an error.
    """
    try:
        data = read_toml(path, kind="theme")
    except TomlError as error:
        raise ThemeFileError(str(error)) from None
    return theme_from_mapping(data, path, problems)


def theme_from_mapping(
    data: dict[str, Any], path: Path, problems: list[str] | None = None
) -> Theme:
    skipped = problems if problems is not None else []
    for key in data:
        if key not in _TOP_KEYS:
            skipped.append(
                f"{path}: unknown key '{key}' (known: {', '.join(_TOP_KEYS)}); entry skipped"
            )
    name = _theme_name(data, path, skipped)
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        skipped.append(f"{path}: dark must be true or false, not {short_repr(dark)}; using true")
        dark = True
    colors_table = data.get("colors", {})
    if not isinstance(colors_table, dict):
        raise ThemeFileError(f"{path}: [colors] must be a table with at least primary = ...")
    colors: dict[str, Any] = {}
    for key, value in colors_table.items():
        if key not in COLOR_KEYS:
            skipped.append(
                f"{path}: [colors] {key}: unknown colour name "
                f"(known: {', '.join(COLOR_KEYS)}); entry skipped"
            )
            continue
        problem = _color_problem(path, f"[colors] {key}", value)
        if problem is not None:
            if key == "primary":
                raise ThemeFileError(problem)
            skipped.append(f"{problem}; entry skipped")
            continue
        colors[key] = value
    if "primary" not in colors:
        raise ThemeFileError(f'{path}: [colors] primary is required, like primary = "#5fafff"')
    return Theme(name=name, dark=dark, variables=_variables(data, path, skipped), **colors)


def _theme_name(data: dict[str, Any], path: Path, problems: list[str]) -> str:
    """``name`` when set and valid, else the file name without .toml."""
    name = data.get("name", path.stem)
    if isinstance(name, str) and _THEME_NAME.fullmatch(name):
        return name
    # Textual's theme picker reads names as markup: keep them to plain characters.
    rule = "letters, digits, '-', '_' or '.', like \"my-theme\""
    if "name" in data and _THEME_NAME.fullmatch(path.stem):
        problems.append(f"{path}: name must be {rule}, not {short_repr(name)}; using '{path.stem}'")
        return path.stem
    raise ThemeFileError(
        f"{path}: the theme needs a name of {rule}: add a name line or rename the file"
    )


def _variables(data: dict[str, Any], path: Path, problems: list[str]) -> dict[str, str]:
    table = data.get("variables", {})
    if not isinstance(table, dict):
        problems.append(f"{path}: [variables] must be a table of strings; entry skipped")
        return {}
    variables: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, str):
            variables[key] = value
        else:
            problems.append(
                f"{path}: [variables] {key} must be a string, not {short_repr(value)}; "
                "entry skipped"
            )
    return variables


def _color_problem(path: Path, key: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f'{path}: {key} must be a colour string like "#1e90ff", not {short_repr(value)}'
    try:
        Color.parse(value)
    except ColorParseError:
        return (
            f"{path}: {key} = {short_repr(value)} is not a colour "
            '(use "#rrggbb", "rgb(r,g,b)" or a name)'
        )
    return None


def theme_files(directories: Iterable[Path], problems: list[str] | None = None) -> list[Path]:
    files: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        try:
            # iterdir, not glob: glob hides an unreadable folder as an empty one.
            files.extend(sorted(p for p in directory.iterdir() if p.name.endswith(".toml")))
        except OSError as error:
            if problems is not None:
                problems.append(f"{directory}: cannot read the themes folder: {error.strerror}")
    return files


def load_themes(directories: Iterable[Path] | None = None) -> ThemeSet:
    """Every theme in the built-in folder then the user's; a later file with the same name wins
    (a user theme can replace a built-in one), with a warning that says so."""
    folders = (
        list(directories)
        if directories is not None
        else [paths.builtin_themes_dir(), paths.user_themes_dir()]
    )
    found: dict[str, Theme] = {}
    origin: dict[str, Path] = {}
    problems: list[str] = []
    for path in theme_files(folders, problems):
        try:
            theme = load_theme_file(path, problems)
        except ThemeFileError as error:
            problems.append(f"{error}; theme skipped")
            continue
        if theme.name in origin:
            problems.append(
                f"{path}: theme '{theme.name}' replaces the one in {origin[theme.name]}; to add "
                f"a theme of its own instead, remove its name line (it is then called "
                f"'{path.stem}')"
            )
        found[theme.name] = theme
        origin[theme.name] = path
    return ThemeSet(tuple(found.values()), tuple(problems))
