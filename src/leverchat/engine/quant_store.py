"""Quantised layers kept beside a converted GGUF, so that later starts skip quantising.

Quantising at every load cost the bundled model ~1.2 s of a 4.9 s warm ``ask`` and a random
3B Q4_0 model 36-84 s. The first load writes each replaced layer's buffers (packed weights,
scales, bias) to ``quantized/<method>-<device>-torch<version>-v<format>.safetensors`` in the
cache entry, with a small JSON record beside it: the file's CRC-32 and stat fingerprint
(cache_digest.py: a file that was not written since is trusted without reading it) and the
layer list. Later loads build the layers from it.

Never trusted blindly: a missing, unreadable, damaged or changed file, another layer list, or
a first layer that does not equal what quantising its float weight gives now (another
quantisation code, say) means the layers are quantised afresh and the file is rewritten. Only
CPU layouts are stored: the packed int4 layout is the CPU kernel's of this torch version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

import torch

from leverchat.engine import cache_digest

log = logging.getLogger(__name__)

# Bump whenever quantize.py would quantise a layer differently.
FORMAT: Final = 1
FOLDER_NAME: Final = "quantized"


def store_path(entry: Path, method: str, device: torch.device) -> Path | None:
    """Where ``method``'s layers for ``device`` are kept in the cache entry ``entry``; None
    where nothing is stored (not the CPU)."""
    if device.type != "cpu":
        return None
    version = torch.__version__.split("+")[0]
    return entry / FOLDER_NAME / f"{method}-cpu-torch{version}-v{FORMAT}.safetensors"


class StoredLayers:
    """The layers in a store file, read one layer at a time (so that loading never holds
    every stored layer and the float model's pages at once)."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        handle: Any = safe_open(str(path), framework="pt")
        self._file = handle
        self._keys: dict[str, list[str]] = {}
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            name, _, _buffer = key.rpartition(".")
            self._keys.setdefault(name, []).append(key)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._keys)

    def layer(self, name: str, in_features: int) -> Any:
        """The stored layer ``name`` (an int8 or int4 module; None where it is not stored)
        of a linear layer with ``in_features`` inputs."""
        from leverchat.engine.quant_layers import Int4WeightOnlyLinear, Int8WeightOnlyLinear

        if name not in self._keys:
            return None
        buffers = {key.rpartition(".")[2]: self._file.get_tensor(key) for key in self._keys[name]}
        if "scales_and_zeros" in buffers:
            return Int4WeightOnlyLinear.from_buffers(buffers, in_features)
        return Int8WeightOnlyLinear.from_buffers(buffers)


def read(path: Path | None) -> StoredLayers | None:
    """The stored layers, or None where there are none to trust (the log says why)."""
    if path is None or not path.is_file():
        return None
    from safetensors import SafetensorError

    try:
        record = json.loads(_record_path(path).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError("another format")
        if record.get("verified") != cache_digest.fingerprint(path):
            if cache_digest.file_digest(path) != record.get("digest"):
                raise ValueError("its content changed since it was written")
            _write_record(path, record)  # verified again: the next start skips it
        names = record.get("layers")
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError("its record lists no layers")
        stored = StoredLayers(path)
        if stored.names != frozenset(names):
            raise ValueError("its record and its tensors list different layers")
    except (OSError, ValueError, SafetensorError) as error:
        log.warning("Quantised layers in %s not used (%s): quantising again", path, error)
        return None
    return stored


def write(path: Path | None, layers: dict[str, Any]) -> None:
    """Store the buffers of ``layers`` (qualified name -> quantised module) at ``path``,
    atomically. A cache that cannot be written is left as it is: the next start quantises
    again."""
    if path is None or not layers:
        return
    from safetensors.torch import save_file

    flat = {
        f"{name}.{buffer}": tensor.contiguous()
        for name, module in layers.items()
        for buffer, tensor in module.named_buffers(recurse=False)  # a None bias is not listed
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(flat, str(temporary))
        temporary.replace(path)
        digest = cache_digest.file_digest(path)
    except OSError as error:
        log.warning("Could not keep the quantised layers in %s: %s", path, error)
        with contextlib.suppress(OSError):
            temporary.unlink()
        return
    _write_record(path, {"format": FORMAT, "layers": sorted(layers), "digest": digest})
    _remove_superseded(path)


def _remove_superseded(path: Path) -> None:
    """Drop this method's files written by another torch version or format: this version
    never reads them again, and for a 3B model each is 2 GB."""
    method = path.name.split("-cpu-", 1)[0]
    for other in path.parent.glob(f"{method}-cpu-torch*.safetensors"):
        if other != path:
            for stale in (other, _record_path(other)):
                with contextlib.suppress(OSError):
                    stale.unlink()


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """The record of ``path``, as it is now; a cache that cannot be written is left as it is
    (without a record the file is not used: the next start quantises again)."""
    record = {**record, "verified": cache_digest.fingerprint(path)}
    cache_digest.rewrite_json(_record_path(path), record)
