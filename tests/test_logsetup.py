"""Library chatter goes to the log file, never to the terminal (it would draw over the TUI).

Checked in a fresh interpreter: pytest's own capture of warnings and logging would hide what a
user's terminal would show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import logging, warnings
from leverchat.engine.logsetup import route_library_output_to_log

log_path = route_library_output_to_log()
assert not log_path.exists(), "the log file is created on the first record only"
route_library_output_to_log()  # idempotent: no second handler, no duplicate lines

import transformers
from transformers.utils import logging as transformers_logging
import huggingface_hub.utils

transformers_logging.get_logger("transformers.modeling_utils").warning("TRANSFORMERS-WARNING")
logging.getLogger("huggingface_hub.file_download").warning("HUB-WARNING")
logging.getLogger("some.other.library").error("OTHER-ERROR")
warnings.warn("PYTHON-WARNING", UserWarning)
for _ in transformers_logging.tqdm(range(3), desc="TRANSFORMERS-BAR"):
    pass
for _ in huggingface_hub.utils.tqdm(range(3), desc="HUB-BAR"):
    pass
print(log_path)
"""


def test_library_output_goes_to_the_log_file_only(tmp_path: Path) -> None:
    env = dict(os.environ, LEVERCHAT_LOG_DIR=str(tmp_path / "logs" / "nested"))
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    log_path = Path(completed.stdout.strip())
    assert log_path == tmp_path / "logs" / "nested" / "leverchat.log"
    log = log_path.read_text()
    for marker in ("TRANSFORMERS-WARNING", "HUB-WARNING", "OTHER-ERROR", "PYTHON-WARNING"):
        assert log.count(marker) == 1, marker
    assert "BAR" not in log
