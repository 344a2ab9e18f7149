"""Give back the resident pages of memory-mapped weights that are no longer needed.

transformers loads a safetensors file as views of a private memory map: a weight costs no
memory until it is read. Quantising reads every weight once to build its int8 or int4 copy, and
each page read stays resident (and counted in the process's memory) as long as the map lives,
which is as long as any weight still points into it: the embedding table usually does. So a
1B model loaded for int8 peaked at its full bfloat16 size plus the int8 copy on top.

After a layer is quantised, :func:`release` tells the kernel (``madvise(MADV_DONTNEED)``) that
the pages under its old weight may go. This is safe for these maps: their pages were only ever
read, and a page of a file map that is touched again is simply read back from the file. Only
ranges inside a mapped ``.safetensors`` file are released, never other memory (where the same
call would zero it), and only on Linux; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MADV_DONTNEED = 4  # Linux's value
_MAPS = Path("/proc/self/maps")
_WEIGHT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class FileMaps:
    """The address ranges of this process that map weight files, read once."""

    ranges: tuple[tuple[int, int], ...]

    def holds(self, start: int, end: int) -> bool:
        return any(low <= start and end <= high for low, high in self.ranges)


def weight_file_maps() -> FileMaps:
    """Where this process maps ``.safetensors`` files now (nothing off Linux)."""
    if not sys.platform.startswith("linux"):
        return FileMaps(())
    ranges: list[tuple[int, int]] = []
    try:
        lines = _MAPS.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return FileMaps(())
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].strip().endswith(_WEIGHT_SUFFIX):
            continue
        low, _, high = fields[0].partition("-")
        try:
            ranges.append((int(low, 16), int(high, 16)))
        except ValueError:
            continue
    return FileMaps(tuple(ranges))


def release(tensor: Any, maps: FileMaps) -> int:
    """Drop the resident pages wholly under ``tensor``'s bytes if they lie in a weight file's
    map; return the bytes released (0 when the tensor is elsewhere, e.g. a copy in memory)."""
    if not maps.ranges or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return 0
    # The tensor's own bytes: its storage may be the whole file's map.
    start = int(tensor.data_ptr())
    end = start + int(tensor.numel()) * int(tensor.element_size())
    if start == 0 or end <= start or not maps.holds(start, end):
        return 0
    page = mmap.PAGESIZE
    # Whole pages only: a page shared with a neighbouring tensor stays.
    low = -(-start // page) * page
    high = end // page * page
    if high <= low:
        return 0
    libc = _libc()
    if libc is None:
        return 0
    if libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), _MADV_DONTNEED) != 0:
        log.debug("madvise failed for %d bytes at %#x", high - low, low)
        return 0
    return high - low


def trim_heap() -> None:
    """Hand the allocator's free memory back to the system (glibc's ``malloc_trim``).

    Quantising allocates a float32 block and an int8 result per layer; once glibc has seen a
    large free its threshold for mapping big blocks rises and the freed blocks stay in its heap,
    between the int8 results: measured, a 114M-parameter model's load grew by 264 MB where its
    int8 weights are 114 MB. Trimming after each layer keeps it at the weights' size.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None and sys.platform.startswith("linux"):
        trim(0)


_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.madvise.restype = ctypes.c_int
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0]
