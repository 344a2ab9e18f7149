"""Tell a file that is not a readable GGUF model apart before converting it.

transformers reports a damaged or fake GGUF file in misleading words: a wrong header became
"the config file … is not a valid JSON file", and a file of four bytes raised a bare
``struct.error``. Reading the header and metadata first (no tensor data; well under a second
even for large files, and only before a first conversion) gives one clear message instead.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Final

_MAGIC: Final = b"GGUF"
_HEADER: Final = struct.Struct("<4sIQQ")  # magic, version, tensor count, metadata count
_KNOWN_VERSIONS: Final = (2, 3)


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` is not a GGUF file this version can read, or None if it looks like one."""
    try:
        with path.open("rb") as stream:
            header = stream.read(_HEADER.size)
    except OSError as error:
        return f"it cannot be read: {error.strerror or error}"
    if not header.startswith(_MAGIC):
        return "it does not start with the GGUF signature"
    if len(header) < _HEADER.size:
        return f"it is only {len(header)} bytes long, shorter than a GGUF header"
    _, version, _, _ = _HEADER.unpack(header)
    if version not in _KNOWN_VERSIONS:
        known = " or ".join(str(number) for number in _KNOWN_VERSIONS)
        return f"its header says GGUF version {version}; known versions are {known}"
    try:
        from transformers.integrations.gguf.reader import read_gguf_metadata
    except ImportError:
        return None  # another transformers release: its own loader will judge the file
    try:
        read_gguf_metadata(str(path))
    except (ValueError, struct.error, IndexError, KeyError, OverflowError, UnicodeDecodeError):
        return "its metadata is damaged (it ends early or holds impossible values)"
    except MemoryError:
        return "its metadata claims more entries than fit in memory"
    return None
