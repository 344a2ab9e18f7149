"""The wheel ships every module, the built-in profiles and the top-level themes/ folder."""

from __future__ import annotations

import tomllib
from pathlib import Path

from leverchat import paths

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_folder_is_a_listed_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    source = ROOT / "src"
    found = {
        ".".join(folder.relative_to(source).parts)
        for folder in source.rglob("*")
        if folder.is_dir()
        and "__pycache__" not in folder.parts
        and not folder.name.endswith(".egg-info")
        and any(child.suffix in (".py", ".toml", ".tcss") for child in folder.iterdir())
    }
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert config["tool"]["setuptools"]["package-dir"]["leverchat.themes"] == "themes"


def test_builtin_themes_are_found_in_an_editable_install() -> None:
    themes = sorted(p.stem for p in paths.builtin_themes_dir().glob("*.toml"))
    assert {"leverchat-dark", "leverchat-light"} <= set(themes)
    assert len(themes) >= 3
