"""Content digests of a converted-model cache entry, checked without slowing warm starts.

Sizes alone miss damage that keeps a file's size (bytes overwritten in place): the model then
loaded and answered with garbage. At conversion every file's CRC-32 is recorded in the
manifest, with the file's stat fingerprint (inode, size, mtime, ctime) at that moment.

Before use, a file whose fingerprint is unchanged needs no reading: any write to it changes its
ctime, which no ordinary tool can set back. A file whose fingerprint changed (written to,
copied, restored from a backup) is read in full and its CRC compared; when it matches, the new
fingerprint is recorded, so the next start is fast again.

Measured on the bundled SmolLM2 entry (538 MB of safetensors, 2 busy cores): CRC-32 of every
file takes 0.3-0.45 s (sha256 0.72 s, blake2b 1.4 s); the fingerprint check takes microseconds.
CRC-32 detects accidental damage, not tampering: whoever can write the cache can write the
manifest too.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

_CHUNK_BYTES: Final = 16 * 1024 * 1024
_PREFIX: Final = "crc32:"


def file_digest(path: Path) -> str:
    """The CRC-32 of ``path``'s content, as recorded in the manifest (``crc32:<hex>``)."""
    crc = 0
    buffer = bytearray(_CHUNK_BYTES)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as stream:
        while True:
            count = stream.readinto(buffer)
            if not count:
                break
            crc = zlib.crc32(view[:count], crc)
    return f"{_PREFIX}{crc:08x}"


def fingerprint(path: Path) -> list[int]:
    """What changes whenever the file is written: inode, size, mtime and ctime."""
    status = path.stat()
    return [status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


def record(folder: Path, names: list[str]) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Digests and fingerprints of ``names`` in ``folder``, for a new manifest."""
    digests = {name: file_digest(folder / name) for name in names}
    return digests, {name: fingerprint(folder / name) for name in names}


def content_problem(folder: Path, manifest: dict[str, Any], manifest_path: Path) -> str | None:
    """Why a file's content no longer matches its recorded digest, or None.

    An entry written before digests were recorded gets them now (they describe the files as
    they are: the best this version can do). Newly verified fingerprints are written back.
    """
    files = manifest.get("files")
    assert isinstance(files, Mapping)  # checked by the caller
    digests = manifest.get("digests")
    if digests is None:
        manifest["digests"], manifest["verified"] = record(folder, list(files))
        rewrite_json(manifest_path, manifest)
        return None
    if not isinstance(digests, dict) or set(digests) != set(files):
        return "its manifest's digests do not list its files"
    verified = manifest.get("verified")
    if not isinstance(verified, dict):
        verified = {}
    changed = False
    for name, expected in digests.items():
        path = folder / name
        try:
            current = fingerprint(path)
        except OSError:
            return f"{name} is missing"
        if verified.get(name) == current:
            continue
        try:
            actual = file_digest(path)
        except OSError as error:
            return f"{name} cannot be read ({error.strerror or error})"
        if actual != expected:
            return (
                f"{name} was changed after conversion (its content checksum is "
                f"{actual.removeprefix(_PREFIX)}, {str(expected).removeprefix(_PREFIX)} was "
                "recorded)"
            )
        verified[name] = current
        changed = True
    if changed:
        manifest["verified"] = verified
        rewrite_json(manifest_path, manifest)
    return None


def rewrite_json(manifest_path: Path, manifest: dict[str, Any]) -> None:
    """Replace the JSON file ``manifest_path`` atomically; a read-only cache just verifies
    again next time (quant_store.py writes its records with it too)."""
    temporary = manifest_path.with_name(f".{manifest_path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        temporary.replace(manifest_path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
