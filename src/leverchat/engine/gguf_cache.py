"""Convert a GGUF file once into a safetensors model folder in the user cache.

Loading a GGUF file with transformers de-quantises every tensor and converts the tokenizer:
~17 s for the bundled 98 MB SmolLM2 on two cores. The same weights saved as safetensors load
in ~0.4 s, so each GGUF file is converted once, into ``paths.converted_models_dir()/<key>/``,
keyed by the file's identity (resolved path, size, mtime, a hash of its first and last MiB).

Crash and concurrency safety: an entry is built in a temporary sibling folder, its manifest
(every file's name and size, the format version) written last, and the folder renamed into
place only when complete. Renaming a folder onto an existing one fails, so when two processes
convert at once the first rename wins and the loser discards its copy. An entry whose manifest
is missing or disagrees with the files is damaged: it is moved aside, deleted and rebuilt.
Sizes miss damage in place, so the manifest also holds each file's CRC-32, checked whenever
the file changed since it was last verified (see ``cache_digest``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leverchat import __version__, paths
from leverchat.engine import cache_digest
from leverchat.engine.gguf_header import gguf_problem
from leverchat.engine.safetensors_check import SafetensorsDamaged, check_safetensors_file
from leverchat.engine.types import EngineError
from leverchat.wording import sentence

FORMAT_VERSION = 1
MANIFEST_NAME = "leverchat-manifest.json"
_IDENTITY_SAMPLE_BYTES = 1024 * 1024
_STALE_TEMP_AGE_S = 24 * 3600
# de-quantised float32 weights take about this many bytes per parameter, plus the tokenizer.
_BYTES_PER_PARAMETER = 4
_DISK_MARGIN_BYTES = 64 * 1024 * 1024

_log = logging.getLogger(__name__)

# Reports a step of the conversion: message and fraction of the conversion done (0..1).
ConversionReport = Callable[[str, float | None], None]


@dataclass(frozen=True)
class CacheEntry:
    """A complete converted model folder; ``converted_now`` is True if this call built it."""

    folder: Path
    converted_now: bool


def cache_key(gguf_path: Path) -> str:
    """A folder name unique to this file's identity: a readable stem plus a content digest.

    Path, size and mtime catch a replaced or edited file cheaply; the first and last MiB catch
    a file rewritten in place with its mtime preserved (the header and the last tensors).
    """
    resolved = gguf_path.resolve()
    stat = resolved.stat()
    digest = hashlib.sha256()
    digest.update(f"{FORMAT_VERSION}\0{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    with resolved.open("rb") as stream:
        digest.update(stream.read(_IDENTITY_SAMPLE_BYTES))
        stream.seek(max(0, stat.st_size - _IDENTITY_SAMPLE_BYTES))
        digest.update(stream.read(_IDENTITY_SAMPLE_BYTES))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.stem)[:60] or "model"
    return f"{stem}-{digest.hexdigest()[:20]}"


def entry_folder(gguf_path: Path, cache_root: Path | None = None) -> Path:
    root = cache_root if cache_root is not None else paths.converted_models_dir()
    return root / cache_key(gguf_path)


def entry_problem(folder: Path) -> str | None:
    """Why the cache entry ``folder`` cannot be used, or None if it is complete."""
    manifest_path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "it has no manifest (an interrupted conversion?)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"its manifest is unreadable ({error})"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        return "its manifest is from another format version"
    files = manifest.get("files")
    if (
        not isinstance(files, dict)
        or "config.json" not in files
        or not any(name.endswith(".safetensors") for name in files)
    ):
        return "its manifest lists no model files"
    for name, size in files.items():
        if not isinstance(name, str) or "/" in name or name.startswith("."):
            return f"its manifest names an unexpected file {name!r}"
        file_path = folder / name
        try:
            actual = file_path.stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes instead of {size}"
        if name.endswith(".safetensors"):
            try:
                check_safetensors_file(file_path)
            except (OSError, SafetensorsDamaged) as error:
                return str(error)
    return cache_digest.content_problem(folder, manifest, manifest_path)


def discard_entry(folder: Path) -> None:
    """Remove a damaged entry: renamed aside first, so no reader ever sees it half-deleted."""
    if not folder.exists():
        return
    trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
    try:
        folder.rename(trash)
    except FileNotFoundError:
        return  # another process discarded it first
    shutil.rmtree(trash, ignore_errors=True)


def ensure_converted(
    gguf_path: Path,
    report: ConversionReport | None = None,
    *,
    cache_root: Path | None = None,
) -> CacheEntry:
    """The converted folder for ``gguf_path``, converting it now if needed.

    ``report`` is called only when a conversion actually runs. EngineError if the file cannot
    be read or converted (the message names the file and says what to do).
    """
    if not gguf_path.is_file():
        raise EngineError(f"GGUF file not found: {gguf_path}")
    root = cache_root if cache_root is not None else paths.converted_models_dir()
    try:
        folder = entry_folder(gguf_path, root)
    except OSError as error:
        raise EngineError(f"Cannot read {gguf_path}: {error.strerror or error}") from None
    report = report or _ignore_report
    if folder.exists():
        problem = entry_problem(folder)
        if problem is None:
            return CacheEntry(folder, converted_now=False)
        # Rebuilt as a missing entry would be, but said: the user may wonder why it is slow.
        _log.warning("The converted copy %s is damaged (%s): converting again", folder, problem)
        report(f"The converted copy of {gguf_path.name} is damaged ({problem}); converting", None)
        try:
            discard_entry(folder)
        except OSError as error:
            raise EngineError(
                f"The converted copy {folder} is damaged ({problem}) and cannot be removed: "
                f"{error.strerror or error}. Delete it, or set LEVERCHAT_CACHE_DIR to a "
                "writable folder."
            ) from None
    problem = gguf_problem(gguf_path)
    if problem is not None:
        raise EngineError(
            f"{gguf_path} is not a valid GGUF file: {problem}. Point --model at a .gguf model "
            "file, or at a Hugging Face model folder (config.json + safetensors)."
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _cache_unwritable(root, error) from None
    _remove_stale_temporaries(root)
    temporary = root / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        # Made before the long conversion, so that an unwritable cache fails at once.
        temporary.mkdir()
    except OSError as error:
        raise _cache_unwritable(root, error) from None
    try:
        _convert_into(gguf_path, temporary, report)
        return CacheEntry(_publish(temporary, folder), converted_now=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _ignore_report(message: str, fraction: float | None) -> None:
    del message, fraction


def _publish(temporary: Path, folder: Path) -> Path:
    """Rename the finished ``temporary`` into place; if another process won, use its entry."""
    for _attempt in range(2):
        try:
            temporary.rename(folder)
            return folder
        except OSError:
            if not folder.exists():
                raise
            if entry_problem(folder) is None:
                return folder  # another process finished first: keep theirs, drop ours
            discard_entry(folder)
    raise EngineError(f"Could not store the converted model in {folder}: it keeps changing")


def _remove_stale_temporaries(root: Path) -> None:
    """Delete leftovers of conversions killed long ago (never a recent one: it may be running)."""
    now = time.time()
    for leftover in root.glob(".t*-*"):
        if not leftover.name.startswith((".tmp-", ".trash-")):
            continue
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime > _STALE_TEMP_AGE_S:
                shutil.rmtree(leftover, ignore_errors=True)


def _cache_unwritable(root: Path, error: OSError) -> EngineError:
    """The advice depends on the cause: a full disk and a read-only folder differ."""
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "Free some space or set LEVERCHAT_CACHE_DIR to a folder on a larger disk."
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return EngineError(
            f"The converted-model cache folder {root} is not writable ({reason}). Fix its "
            "permissions or set LEVERCHAT_CACHE_DIR to a writable folder."
        )
    else:
        advice = "Set LEVERCHAT_CACHE_DIR to a writable folder on a disk with free space."
    return EngineError(f"Cannot write the converted-model cache in {root}: {reason}. {advice}")


def _convert_into(gguf_path: Path, destination: Path, report: ConversionReport) -> None:
    """Load ``gguf_path`` with transformers and save it to ``destination`` as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = gguf_path.name
    report(f"Reading {name}", 0.0)
    try:
        with _gguf_tensor_progress(lambda done: report(f"De-quantising {name}", 0.05 + 0.6 * done)):
            gguf_model = AutoModelForCausalLM.from_pretrained(
                gguf_path.parent, gguf_file=name, dtype=torch.float32, trust_remote_code=False
            )
        report(f"Converting the tokenizer of {name}", 0.7)
        tokenizer = AutoTokenizer.from_pretrained(
            gguf_path.parent, gguf_file=name, trust_remote_code=False
        )
    except ImportError as error:
        raise EngineError(
            f"Reading GGUF files needs the 'gguf' package ({error}). Install it with: "
            "pip install gguf"
        ) from None
    except (ValueError, KeyError, IndexError, TypeError, OSError, RuntimeError) as error:
        raise EngineError(
            f"Cannot convert {gguf_path}: {sentence(str(error))} "
            "It may be damaged, or an architecture "
            "transformers cannot read from GGUF; point --model at a Hugging Face model folder "
            "(config.json + safetensors) instead."
        ) from None

    _check_free_space(destination.parent, gguf_model.num_parameters())
    report(f"Saving {name} as safetensors", 0.8)
    model = _rebuild_without_quantization(gguf_model)
    del gguf_model
    try:
        destination.mkdir(exist_ok=True)
        model.save_pretrained(destination)
        tokenizer.save_pretrained(destination)
        _write_manifest(destination, gguf_path)
    except OSError as error:
        raise _cache_unwritable(destination.parent, error) from None
    report(f"Converted {name}", 1.0)


def _rebuild_without_quantization(gguf_model: Any) -> Any:
    """A plain model with the GGUF model's weights: save_pretrained refuses a GGUF-loaded one.

    The config loses its GGUF ``quantization_config`` (the weights are already de-quantised);
    load_state_dict copies every weight, including both names of tied embeddings.
    """
    from transformers import AutoModelForCausalLM

    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=gguf_model.dtype
    )
    result = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise EngineError(
            "Converting the GGUF model lost weights "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    model.generation_config = gguf_model.generation_config
    return model.eval()


def _check_free_space(root: Path, parameters: int) -> None:
    needed = parameters * _BYTES_PER_PARAMETER + _DISK_MARGIN_BYTES
    free = shutil.disk_usage(root).free
    if free < needed:
        raise EngineError(
            f"Not enough disk space in {root} to convert the model: it needs about "
            f"{needed / 1e9:.1f} GB, {free / 1e9:.1f} GB are free. Free some space or set "
            "LEVERCHAT_CACHE_DIR to a folder on a larger disk."
        )


def _write_manifest(folder: Path, gguf_path: Path) -> None:
    """Written last, after every other file is complete on disk: its presence marks the entry
    as finished, and the sizes it lists detect any later truncation."""
    files = {}
    for file_path in sorted(folder.iterdir()):
        if file_path.is_file():
            _fsync(file_path)
            files[file_path.name] = file_path.stat().st_size
    digests, verified = cache_digest.record(folder, list(files))
    stat = gguf_path.resolve().stat()
    manifest = {
        "format": FORMAT_VERSION,
        "files": files,
        "digests": digests,
        "verified": verified,
        "source": {
            "path": str(gguf_path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        },
        "created_by": f"leverchat {__version__}",
    }
    manifest_path = folder / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(manifest_path)


def _fsync(file_path: Path) -> None:
    with file_path.open("rb") as stream:
        os.fsync(stream.fileno())


class _ReportingBar:
    """Stands in for tqdm inside transformers' GGUF reader: reports progress, prints nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None, *args: Any, **kwargs: Any) -> None:
        self._iterable = iterable
        self._on_fraction: Callable[[float], None] = kwargs.pop("_on_fraction")
        total = kwargs.get("total")
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self._total = int(total or 0)

    def __iter__(self) -> Iterator[Any]:
        if self._iterable is None:
            return
        step = max(1, self._total // 50)
        for index, item in enumerate(self._iterable, start=1):
            yield item
            if self._total and (index % step == 0 or index == self._total):
                self._on_fraction(index / self._total)

    def __enter__(self) -> _ReportingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        # update(), set_description(), close(), ...: nothing to draw.
        def ignore(*args: Any, **kwargs: Any) -> None:
            del args, kwargs

        return ignore


@contextlib.contextmanager
def _gguf_tensor_progress(on_fraction: Callable[[float], None]) -> Iterator[None]:
    """Replace the tqdm bar of transformers' GGUF tensor loop with progress reports.

    That loop uses ``tqdm.auto`` directly, which transformers' disable_progress_bar() does not
    reach, and it would draw on stderr over the TUI. The patch is process-wide but only lasts
    for one load, and only the engine thread loads models.
    """
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    if not hasattr(gguf_utils, "tqdm"):  # a transformers release that changed the loop
        yield
        return
    original = gguf_utils.tqdm

    def factory(*args: Any, **kwargs: Any) -> _ReportingBar:
        return _ReportingBar(*args, _on_fraction=on_fraction, **kwargs)

    gguf_utils.tqdm = factory
    try:
        yield
    finally:
        gguf_utils.tqdm = original
