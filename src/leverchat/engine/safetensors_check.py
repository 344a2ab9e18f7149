"""Cheap integrity checks of safetensors files, without loading any tensor.

A safetensors file is an 8-byte little-endian header length, a JSON header giving each
tensor's byte range, then the data. A truncated download or an interrupted copy leaves a file
shorter than its header promises: reading the header alone detects it, so the user gets
"truncated: N of M bytes" instead of a deserialisation traceback from deep inside transformers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

# A header larger than this is not a real safetensors header (the format caps it at 100 MB).
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsDamaged(ValueError):
    """The file is not a complete safetensors file; the message says what is wrong."""


def expected_safetensors_size(path: Path) -> int:
    """The byte size ``path`` must have according to its own header.

    Raises SafetensorsDamaged if the header cannot be read, OSError if the file cannot be opened.
    """
    with path.open("rb") as stream:
        prefix = stream.read(8)
        if len(prefix) < 8:
            raise SafetensorsDamaged(f"{path} is empty or truncated (no safetensors header)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_HEADER_BYTES:
            raise SafetensorsDamaged(f"{path} is not a safetensors file (bad header length)")
        header_bytes = stream.read(header_len)
    if len(header_bytes) < header_len:
        raise SafetensorsDamaged(f"{path} is truncated inside its safetensors header")
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsDamaged(f"{path} has a damaged safetensors header ({error})") from None
    if not isinstance(header, dict):
        raise SafetensorsDamaged(f"{path} has a damaged safetensors header (not a JSON object)")
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(offset, int) for offset in offsets)
        ):
            raise SafetensorsDamaged(f"{path} has a damaged safetensors header (tensor {name!r})")
        data_end = max(data_end, offsets[1])
    return 8 + int(header_len) + data_end


def check_safetensors_file(path: Path) -> None:
    """Raise SafetensorsDamaged if ``path`` is shorter (or longer) than its header says."""
    expected = expected_safetensors_size(path)
    actual = path.stat().st_size
    if actual < expected:
        raise SafetensorsDamaged(
            f"{path} is truncated: it has {actual:,} of its {expected:,} bytes "
            "(an interrupted download or copy?)"
        )
    if actual > expected:
        raise SafetensorsDamaged(
            f"{path} is damaged: it has {actual:,} bytes, its header describes {expected:,}"
        )
