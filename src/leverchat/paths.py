"""Every filesystem location leverchat uses, in one place.

Locations come from platformdirs. Each can be overridden with an environment variable
(``LEVERCHAT_CONFIG_DIR``, ``LEVERCHAT_DATA_DIR``, ``LEVERCHAT_CACHE_DIR``,
``LEVERCHAT_LOG_DIR``), which is also how tests and subprocesses are kept out of the real
user folders. Functions, not constants: the environment is read at call time.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "leverchat"


def _dir(env_var: str, default: str) -> Path:
    override = os.environ.get(env_var)
    return Path(override).expanduser() if override else Path(default)


def config_dir() -> Path:
    return _dir("LEVERCHAT_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    return _dir("LEVERCHAT_DATA_DIR", platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    return _dir("LEVERCHAT_CACHE_DIR", platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    return _dir("LEVERCHAT_LOG_DIR", platformdirs.user_log_dir(APP_NAME, appauthor=False))


def profiles_dir() -> Path:
    return config_dir() / "profiles"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def config_file() -> Path:
    return config_dir() / "config.toml"


def history_db() -> Path:
    return data_dir() / "history.sqlite3"


def converted_models_dir() -> Path:
    """Where GGUF files are converted to safetensors once, keyed by the file's identity."""
    return cache_dir() / "converted"


def log_file() -> Path:
    return log_dir() / "leverchat.log"


def builtin_themes_dir() -> Path:
    """The shipped themes: inside the wheel, or the repository's top-level themes/ folder."""
    packaged = Path(__file__).parent / "themes"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "themes"
