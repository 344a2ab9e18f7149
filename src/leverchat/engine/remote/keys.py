"""The API key: from LEVERCHAT_API_KEY, OPENAI_API_KEY, or a command named in config.toml
(``api_key_command = "pass show openai"``). Only ever held in memory: never written to a
profile, the history, the log or an export (the engine keeps it out of provenance)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

from leverchat import paths
from leverchat.engine.types import EngineError
from leverchat.tomlio import TomlError, read_toml

ENV_NAMES = ("LEVERCHAT_API_KEY", "OPENAI_API_KEY")
CONFIG_KEY = "api_key_command"
COMMAND_TIMEOUT_S = 30.0


def api_key(
    environment: Mapping[str, str] | None = None, config_path: Path | None = None
) -> str | None:
    """The key to send, or None (many local servers need none)."""
    env = os.environ if environment is None else environment
    for name in ENV_NAMES:
        value = env.get(name, "").strip()
        if value:
            return value
    command = _configured_command(config_path or paths.config_file())
    return _run_key_command(command[0], command[1]) if command else None


def _configured_command(path: Path) -> tuple[str, Path] | None:
    if not path.exists():
        return None
    try:
        data = read_toml(path)
    except TomlError:
        return None  # the app reports a bad config file itself
    command = data.get(CONFIG_KEY)
    if command is None:
        return None
    if not isinstance(command, str) or not command.strip():
        raise EngineError(f"{path}: {CONFIG_KEY} must be a command line in quotes")
    return command, path


def _run_key_command(command: str, path: Path) -> str:
    try:
        argv = shlex.split(command)
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        raise EngineError(f"{path}: {CONFIG_KEY} could not run: {error}") from None
    if completed.returncode != 0:
        # Its stderr may hold anything; say only that it failed.
        raise EngineError(
            f"{path}: {CONFIG_KEY} failed (exit code {completed.returncode}); "
            "run it yourself to see why"
        )
    key = completed.stdout.strip()
    if not key:
        raise EngineError(f"{path}: {CONFIG_KEY} printed no key")
    return key.splitlines()[0].strip()
