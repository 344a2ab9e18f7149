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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leverchat import __version__, paths
from leverchat.engine import cache_digest
from leverchat.engine.gguf_header import gguf_problem
from leverchat.engine.safetensors_check import SafetensorsDamaged, check_safetensors_file
from leverchat.engine.types import EngineError
from leverchat.wording import sentence

# 2: weights stored compactly (bfloat16 or the file's float type), in shards, tensor by
# tensor; version 1 entries held float32 and are rebuilt (and removed, see _discard_superseded).
FORMAT_VERSION = 2
MANIFEST_NAME = "leverchat-manifest.json"
_IDENTITY_SAMPLE_BYTES = 1024 * 1024
_STALE_TEMP_AGE_S = 24 * 3600
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
        published = _publish(temporary, folder)
        _discard_superseded(root, gguf_path, published)
        return CacheEntry(published, converted_now=True)
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


def _discard_superseded(root: Path, gguf_path: Path, current: Path) -> None:
    """Delete older entries of the same GGUF path: an earlier format (version 1 held float32
    weights, twice the size), or the file before it was replaced. Nothing reads them again."""
    source = str(gguf_path.resolve())
    for candidate in root.iterdir():
        if candidate == current or candidate.name.startswith(".") or not candidate.is_dir():
            continue
        try:
            manifest = json.loads((candidate / MANIFEST_NAME).read_text(encoding="utf-8"))
            same_source = manifest["source"]["path"] == source
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an entry of ours, or damaged: its own load deals with it
        if same_source:
            _log.info("Removing %s, superseded by %s", candidate, current)
            with contextlib.suppress(OSError):
                discard_entry(candidate)


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
    """Convert ``gguf_path`` tensor by tensor into safetensors shards in ``destination``; the
    manifest also records the source weights' GGML types (they decide the quantisation)."""
    from leverchat.engine import gguf_convert

    name = gguf_path.name
    report(f"Reading {name}", 0.0)
    try:
        from gguf import GGUFReader

        reader = GGUFReader(gguf_path)
        plan = gguf_convert.plan_conversion(gguf_path, reader)
        _check_free_space(destination.parent, plan.stored_bytes)
        destination.mkdir(exist_ok=True)

        def on_tensor(done: int, total: int) -> None:
            if done == total or done % max(1, total // 50) == 0:
                report(f"De-quantising {name}", 0.05 + 0.75 * done / total)

        gguf_convert.convert_tensors(reader, plan, destination, on_tensor)
        del reader
        report(f"Converting the tokenizer of {name}", 0.85)
        _save_config_and_tokenizer(gguf_path, plan, destination)
        source_info: dict[str, Any] = {
            "weight_types": plan.weight_types,
            "main_weight_type": gguf_convert.main_weight_type(plan.weight_types),
        }
        _write_manifest(destination, gguf_path, source_info)
    except ImportError as error:
        raise EngineError(
            f"Reading GGUF files needs the 'gguf' package ({error}). Install it with: "
            "pip install gguf"
        ) from None
    except EngineError:
        raise
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise _cache_unwritable(destination.parent, error) from None
        raise _unconvertible(gguf_path, error) from None
    except (
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        RuntimeError,
        NotImplementedError,
    ) as error:
        raise _unconvertible(gguf_path, error) from None
    report(f"Converted {name}", 1.0)


def _unconvertible(gguf_path: Path, error: Exception) -> EngineError:
    return EngineError(
        f"Cannot convert {gguf_path}: {sentence(str(error))} "
        "It may be damaged, or an architecture "
        "transformers cannot read from GGUF; point --model at a Hugging Face model folder "
        "(config.json + safetensors) instead."
    )


def _save_config_and_tokenizer(gguf_path: Path, plan: Any, destination: Path) -> None:
    """config.json (without the GGUF quantization_config: the weights are plain now), the
    generation config and the tokenizer files."""
    from transformers import AutoTokenizer, GenerationConfig

    config = plan.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = _main_dtype(plan.weight_types)
    if not getattr(config, "architectures", None):
        # The tensor-by-tensor conversion never builds a model, whose save_pretrained wrote
        # this; other programs reading the folder (transformers serve) need it.
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        model_class = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
        if model_class is not None:
            config.architectures = [model_class]
    config.save_pretrained(destination)
    GenerationConfig.from_model_config(config).save_pretrained(destination)
    tokenizer = AutoTokenizer.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, trust_remote_code=False
    )
    tokenizer.save_pretrained(destination)


def _main_dtype(weight_types: dict[str, int]) -> str:
    from leverchat.engine.gguf_convert import main_weight_type, stored_dtype_name

    main = main_weight_type(weight_types)
    return stored_dtype_name(main) if main is not None else "float32"


def source_weight_type(folder: Path) -> str | None:
    """The GGML type most of the source GGUF's weights had ("Q4_1", "F16", ...), from the
    manifest of the converted entry ``folder``; None if unknown."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        value = manifest["source"]["main_weight_type"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _check_free_space(root: Path, stored_bytes: int) -> None:
    needed = stored_bytes + _DISK_MARGIN_BYTES
    free = shutil.disk_usage(root).free
    if free < needed:
        raise EngineError(
            f"Not enough disk space in {root} to convert the model: it needs about "
            f"{needed / 1e9:.1f} GB, {free / 1e9:.1f} GB are free. Free some space or set "
            "LEVERCHAT_CACHE_DIR to a folder on a larger disk."
        )


def _write_manifest(folder: Path, gguf_path: Path, source_info: dict[str, Any]) -> None:
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
            **source_info,
        },
        "created_by": f"leverchat {__version__}",
    }
    manifest_path = folder / MANIFEST_NAME
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _fsync(manifest_path)


def _fsync(file_path: Path) -> None:
    with file_path.open("rb") as stream:
        os.fsync(stream.fileno())
