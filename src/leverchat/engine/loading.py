"""Resolve a model spec, check it, and load the model and tokenizer onto a device.

A spec's ``source`` is one of: None (the bundled SmolLM2-135M-Instruct GGUF), a ``.gguf`` file
(converted once into the cache, see gguf_cache), a local Hugging Face folder (config.json +
safetensors), or a hub id ``owner/name`` that is not an existing path.

Every problem a user can fix is an EngineError naming the path or id and what to do. Checks
that need no torch (missing path, no config.json, truncated safetensors, pickle weights,
unknown architecture) run before anything heavy is loaded. torch and transformers are imported
inside functions: importing this module stays cheap (the UI imports it before any model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from leverchat import paths
from leverchat.engine import bundled, gguf_cache
from leverchat.engine.cpu_layout import tune_linear_layouts
from leverchat.engine.logsetup import route_library_output_to_log
from leverchat.engine.safetensors_check import SafetensorsDamaged, check_safetensors_file
from leverchat.engine.types import (
    EngineError,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    ProgressCallback,
)
from leverchat.wording import sentence

if TYPE_CHECKING:
    import torch

# Progress stages, in the order they are reported ("converting" and "downloading" only when
# they happen). LoadProgress.fraction is the fraction of the current stage, None if unknown.
STAGE_LOCATING = "locating"
STAGE_DOWNLOADING = "downloading"
STAGE_CONVERTING = "converting"
STAGE_TOKENIZER = "loading tokenizer"
STAGE_WEIGHTS = "loading weights"
STAGE_DEVICE = "moving to device"
STAGE_QUANTIZING = "quantizing"
STAGE_COMPILING = "compiling"  # run by the engine thread after loading (--compile)
STAGE_READY = "ready"

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
DEFAULT_CONTEXT_WINDOW = 2048
LAYOUT_CACHE_NAME = "cpu-layouts.json"
# Config keys that hold the context length, by model family, most specific first.
_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "n_ctx",
    "max_seq_len",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_TIMEOUT_S = 10.0
_HUB_TEXT_FILES = ["*.json", "*.jinja", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]

SourceKind = Literal["gguf", "folder", "hub"]


class ModelFilesError(EngineError):
    """The model's files are missing, damaged or unusable (as opposed to, say, no memory)."""


@dataclass
class LoadedModel:
    """A model ready to generate: evaluation mode, on ``device`` (its input embeddings' device
    when spread over several GPUs)."""

    model: Any
    tokenizer: Any
    info: ModelInfo
    device: torch.device


@dataclass(frozen=True)
class ResolvedSource:
    kind: SourceKind
    location: str
    display_name: str


def load_model(spec: ModelSpec, progress: ProgressCallback | None = None) -> LoadedModel:
    """Load the model ``spec`` names; EngineError with an actionable message on any problem."""
    report = progress_reporter(progress)
    route_library_output_to_log()
    report(STAGE_LOCATING, "Locating the model", None)
    source = resolve_source(spec.source)
    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device)
    if source.kind == "gguf":
        return _load_gguf(source, spec, device, dtype, report)
    if source.kind == "hub":
        folder = _hub_snapshot(source.location, spec, report)
    else:
        folder = Path(source.location)
    return _load_folder(folder, source, spec, device, dtype, report)


def resolve_source(source: str | None) -> ResolvedSource:
    """Decide what kind of model ``source`` names, without loading anything."""
    if source is None:
        gguf_path = bundled.bundled_gguf_path()
        return ResolvedSource("gguf", str(gguf_path), f"{bundled.DISPLAY_NAME} (bundled)")
    text = source.strip()
    if not text:
        raise EngineError("The model name is empty: give a folder, a .gguf file or a hub id")
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ResolvedSource("gguf", str(path), path.stem)
        raise EngineError(
            f"{path} is a file but not a .gguf model. Point --model at a .gguf file or at a "
            "Hugging Face model folder (the folder containing config.json)."
        )
    if path.is_dir():
        return ResolvedSource("folder", str(path), path.resolve().name or str(path))
    if path.exists():  # neither file nor folder: a FIFO would block, /dev/zero never ends
        raise EngineError(
            f"{path} is {special_file_kind(path)}, not a model file: give a .gguf file or a "
            "Hugging Face model folder."
        )
    if _HUB_ID.match(text) and not text.lower().endswith(".gguf"):
        return ResolvedSource("hub", text, text)
    raise EngineError(
        f"No such model file or folder: {path}. Give a Hugging Face model folder, a .gguf file, "
        "or a hub id such as HuggingFaceTB/SmolLM2-360M-Instruct."
    )


def special_file_kind(path: Path) -> str:
    """What a path that exists but is neither a file nor a folder is, in words."""
    import stat

    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def pick_device(requested: str) -> torch.device:
    """The torch device for ``requested`` (auto: CUDA, then MPS, then CPU)."""
    import torch

    name = requested.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise EngineError(
                "--device mps: Apple's Metal backend is not available here. Use --device auto "
                "or --device cpu."
            )
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise EngineError(
            f"Unknown device {requested!r}: use one of {', '.join(DEVICE_CHOICES)} "
            "(N is a GPU number, e.g. cuda:1)."
        )
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build"
        raise EngineError(
            f"--device {requested}: no CUDA GPU is available (torch {torch.__version__} is "
            f"{build}). Use --device cpu or --device auto."
        )
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise EngineError(
            f"--device {requested}: there is no GPU {index}; this machine has {count} "
            f"(cuda:0 to cuda:{count - 1})."
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The weights' dtype for ``requested`` on ``device`` (auto: bf16/fp16 on GPUs, fp32 on CPU)."""
    import torch

    name = requested.strip().lower()
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    explicit = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in explicit:
        raise EngineError(f"Unknown dtype {requested!r}: use one of {', '.join(DTYPE_CHOICES)}.")
    return explicit[name]


def check_model_folder(folder: Path, spec: ModelSpec) -> dict[str, Any]:
    """Check ``folder`` is a loadable model folder; return its config.json contents.

    Runs before torch is touched: missing config, damaged weights, pickle weights and unknown
    architectures are reported here, naming the file and what to do.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        hint = (
            f" It contains a GGUF file: use --model {ggufs[0]}"
            if ggufs
            else " Point --model at the folder containing config.json and the weights, "
            "or at a .gguf file."
        )
        raise ModelFilesError(f"{folder} is not a model folder: it has no config.json.{hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFilesError(f"Cannot read {config_path}: {error}") from None
    if not isinstance(config, dict):
        raise ModelFilesError(f"{config_path} is not a model config (expected a JSON object)")
    _check_weights(folder, spec)
    _check_architecture(config, config_path, spec)
    return config


def context_window_of(config: Any, tokenizer: Any = None) -> int:
    """The model's context length in tokens, from its config; a safe default if none is given."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in _CONTEXT_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    # Tokenizers without a limit report a huge sentinel (1e30): only trust plausible values.
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit <= 10_000_000:
        return limit
    return DEFAULT_CONTEXT_WINDOW


# --- sources -------------------------------------------------------------------------------


def _load_gguf(
    source: ResolvedSource,
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    report: _Report,
) -> LoadedModel:
    gguf_path = Path(source.location)

    def on_conversion(message: str, fraction: float | None) -> None:
        report(
            STAGE_CONVERTING,
            f"{message}: first start only, about 30 s per 100 MB of GGUF; "
            "later starts load from the cache in about a second",
            fraction,
        )

    entry = gguf_cache.ensure_converted(gguf_path, on_conversion)
    weight_type = gguf_cache.source_weight_type(entry.folder)
    try:
        loaded = _load_folder(
            entry.folder, source, spec, device, dtype, report, weight_type, cache_entry=True
        )
    except ModelFilesError:
        if entry.converted_now:
            raise
        # An entry that passed the manifest checks but still fails to load is damaged in a
        # way sizes cannot show: never use it again, convert afresh once.
        gguf_cache.discard_entry(entry.folder)
        entry = gguf_cache.ensure_converted(gguf_path, on_conversion)
        weight_type = gguf_cache.source_weight_type(entry.folder)
        loaded = _load_folder(
            entry.folder, source, spec, device, dtype, report, weight_type, cache_entry=True
        )
    return loaded


def _hub_snapshot(repo_id: str, spec: ModelSpec, report: _Report) -> Path:
    """Download (or find in the local hub cache) the files of ``repo_id``; return the folder.

    A quick metadata request with a short timeout decides if the hub is reachable: downloads
    through huggingface_hub retry a dead connection for ~25 s before giving up.
    """
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    offline_reason: str | None = None
    patterns = [*_HUB_TEXT_FILES, "*.safetensors"]
    if spec.trust_remote_code:
        patterns.append("*.py")
    if huggingface_hub.constants.is_offline_mode():
        offline_reason = "offline mode is on (HF_HUB_OFFLINE)"
    else:
        try:
            info = huggingface_hub.HfApi().model_info(repo_id, timeout=_HUB_TIMEOUT_S)
        except hub_errors.GatedRepoError:
            raise EngineError(
                f"{repo_id} is gated on the Hugging Face Hub: accept its licence on "
                f"https://huggingface.co/{repo_id} and log in with `hf auth login`."
            ) from None
        except hub_errors.RepositoryNotFoundError:
            raise EngineError(
                f"There is no model {repo_id!r} on the Hugging Face Hub (or it is private: log "
                "in with `hf auth login`). If you meant a local folder, check the path."
            ) from None
        except hub_errors.HfHubHTTPError as error:
            raise EngineError(f"The Hugging Face Hub refused {repo_id}: {error}") from None
        except Exception as error:  # network down, DNS, timeout, proxy, TLS: all the same here
            offline_reason = f"the Hub could not be reached ({type(error).__name__}: {error})"
        else:
            names = [sibling.rfilename for sibling in info.siblings or ()]
            if not any(name.endswith(".safetensors") for name in names) and any(
                name.endswith(_PICKLE_SUFFIXES) for name in names
            ):
                if not spec.allow_pickle:
                    raise _pickle_refused(repo_id)
                patterns.append("*.bin")
    report(
        STAGE_DOWNLOADING,
        f"Looking for {repo_id} in the local Hugging Face cache"
        if offline_reason
        else f"Downloading {repo_id} from the Hugging Face Hub (only the first time)",
        None,
    )
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, allow_patterns=patterns, local_files_only=offline_reason is not None
        )
    except Exception as error:
        why = offline_reason or f"the download failed ({type(error).__name__}: {error})"
        raise EngineError(
            f"Could not download {repo_id}: {why}, and it is not in the local Hugging Face "
            "cache. Download it where there is network (`hf download "
            f"{repo_id} --local-dir DIR`) and run with --model DIR, or point --model at a "
            f"local model folder or .gguf file (there is no local folder {repo_id!r})."
        ) from None
    return Path(folder)


# --- loading a folder ------------------------------------------------------------------------


def _load_folder(
    folder: Path,
    source: ResolvedSource,
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    report: _Report,
    source_weight_type: str | None = None,
    *,
    cache_entry: bool = False,
) -> LoadedModel:
    """``cache_entry``: ``folder`` is leverchat's own conversion of a GGUF, where the
    quantised layers may be kept for the next start (quant_store.py); never a user's folder."""
    import torch

    from leverchat.engine import quant_store, quantize

    check_model_folder(folder, spec)
    method = quantization_method(spec, device, source_weight_type)
    if method != "none" and spec.dtype.strip().lower() == "auto":
        # The kernels take bfloat16 activations, and loading in bfloat16 never holds a float32
        # copy of a model that is about to shrink to int8 or int4.
        dtype = quantize.COMPUTE_DTYPE
    report(STAGE_TOKENIZER, f"Loading the tokenizer of {source.display_name}", None)
    tokenizer = _load_tokenizer(folder, spec)
    several_gpus = spec.device.strip().lower() == "auto" and device.type == "cuda"
    several_gpus = several_gpus and torch.cuda.device_count() > 1
    placement = "all GPUs" if several_gpus else str(device)
    report(STAGE_WEIGHTS, f"Loading the weights of {source.display_name} onto {placement}", None)
    model = _load_weights(folder, spec, device, dtype, several_gpus=several_gpus)
    if device.type == "mps":
        report(STAGE_DEVICE, "Moving the model to the Apple GPU (mps)", None)
        model = model.to(device)
    model.eval()
    quantization = "none"
    compute_dtype: torch.dtype | None = None
    if method != "none":
        store = quant_store.store_path(folder, method, device) if cache_entry else None
        message = f"Quantising the linear layers to {method} (weight-only)"
        if store is not None and not store.is_file():
            message += ": first start only, later starts read the kept layers"
        report(STAGE_QUANTIZING, message, None)

        def quantizing(fraction: float) -> None:
            report(STAGE_QUANTIZING, message, fraction)

        quantization = quantize.quantize_model(model, method, store, quantizing).label
        if device.type == "cpu" and spec.dtype.strip().lower() == "auto":
            compute_dtype = torch.float32
            quantize.keep_float_parts_in(model, compute_dtype)
    elif device.type == "cpu" and not spec.compile and not several_gpus:
        # One-row products stream each weight from memory; pick the faster layout per shape.
        tune_linear_layouts(model, paths.cache_dir() / LAYOUT_CACHE_NAME)
    # After quantising: the dtype of what stays in floating point (embeddings, norms).
    dtype_label = str(compute_dtype or model.dtype).removeprefix("torch.")
    model_device = model.get_input_embeddings().weight.device
    device_label = f"cuda ({torch.cuda.device_count()} GPUs)" if several_gpus else str(device)
    info = ModelInfo(
        name=source.display_name,
        source=source.location,
        device=device_label,
        dtype=dtype_label,
        context_window=context_window_of(model.config, tokenizer),
        has_chat_template=bool(getattr(tokenizer, "chat_template", None)),
        quantization=quantization,
    )
    weights = info.dtype if quantization == "none" else f"{quantization}, {info.dtype}"
    report(STAGE_READY, f"{info.name} is ready on {info.device} ({weights})", 1.0)
    return LoadedModel(model=model, tokenizer=tokenizer, info=info, device=model_device)


def quantization_method(
    spec: ModelSpec, device: torch.device, source_weight_type: str | None = None
) -> str:
    """The quantisation to apply: ``spec.quantize``, or for auto (None) the default for the
    source's weight type on ``device`` (see quantize.default_method)."""
    from leverchat.engine import quantize

    requested = (spec.quantize or "auto").strip().lower()
    if requested not in quantize.QUANTIZE_CHOICES:
        raise EngineError(
            f"Unknown quantisation {spec.quantize!r}: use one of "
            f"{', '.join(quantize.QUANTIZE_CHOICES)}."
        )
    if requested != "auto":
        return requested
    if spec.compile or device.type == "mps":
        return "none"  # the quantised layers do not compile; Metal has no such kernels
    return quantize.default_method(source_weight_type, device)


def _load_tokenizer(folder: Path, spec: ModelSpec) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
    except Exception as error:
        raise ModelFilesError(
            f"Cannot load the tokenizer in {folder}: {sentence(str(error))} "
            "A model folder needs its "
            "tokenizer files (tokenizer.json, tokenizer_config.json) next to config.json."
        ) from None


def _load_weights(
    folder: Path,
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    *,
    several_gpus: bool,
) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": dtype,
        # Left unset, transformers asks on stdin whether to run the model's code.
        "trust_remote_code": spec.trust_remote_code,
    }
    if not spec.allow_pickle:
        kwargs["use_safetensors"] = True
    if several_gpus:
        kwargs["device_map"] = "auto"
    elif device.type == "cuda":
        kwargs["device_map"] = str(device)  # straight onto the GPU, no CPU copy
    try:
        return AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except torch.OutOfMemoryError:
        raise EngineError(
            f"Not enough memory on {device} to load {folder} as {dtype}. Try --dtype float16, "
            "a smaller model, or --device cpu."
        ) from None
    except Exception as error:
        raise ModelFilesError(
            f"Cannot load the weights in {folder}: {type(error).__name__}: "
            f"{sentence(str(error))} The files "
            "may be damaged or incomplete: download or copy them again."
        ) from None


def _check_weights(folder: Path, spec: ModelSpec) -> None:
    safetensors = sorted(folder.glob("*.safetensors"))
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        safetensors = _shards_of_index(index_path)
    if safetensors:
        for shard in safetensors:
            try:
                check_safetensors_file(shard)
            except SafetensorsDamaged as error:
                raise ModelFilesError(
                    f"{sentence(str(error))} Download or copy the model again."
                ) from None
            except OSError as error:
                raise ModelFilesError(f"Cannot read {shard}: {error.strerror or error}") from None
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
    if pickles and not spec.allow_pickle:
        raise _pickle_refused(str(folder), pickles)
    if not pickles:
        raise ModelFilesError(
            f"{folder} has no model weights (no *.safetensors file). A model folder needs "
            "config.json, the weights and the tokenizer files."
        )


def _shards_of_index(index_path: Path) -> list[Path]:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        shard_names = sorted(set(index["weight_map"].values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ModelFilesError(
            f"{index_path} is damaged: it does not list the weight shards"
        ) from None
    shards = [index_path.parent / str(name) for name in shard_names]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        raise ModelFilesError(
            f"{index_path.parent} is incomplete: missing weight shard(s) {', '.join(missing)}. "
            "Download or copy the model again."
        )
    return shards


def _pickle_refused(where: str, names: list[str] | None = None) -> ModelFilesError:
    listed = f" ({', '.join(names)})" if names else ""
    return ModelFilesError(
        f"{where} only has pickle weights{listed}, which can run arbitrary code when loaded. "
        "Use a model with .safetensors weights, or pass --allow-pickle if you trust its source."
    )


def _check_architecture(config: dict[str, Any], config_path: Path, spec: ModelSpec) -> None:
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type")
    has_custom_code = "AutoModelForCausalLM" in (config.get("auto_map") or {})
    if spec.trust_remote_code and has_custom_code:
        return  # the model brings its own code; the user said to run it
    if not isinstance(model_type, str) or not model_type:
        raise ModelFilesError(f"{config_path} names no architecture (no 'model_type' key)")
    if model_type not in CONFIG_MAPPING:
        import transformers

        custom = (
            " The model ships its own code: pass --trust-remote-code if you trust its source."
            if has_custom_code
            else " Upgrading transformers may add it (pip install --upgrade transformers)."
        )
        raise ModelFilesError(
            f"Unknown architecture {model_type!r} in {config_path}: transformers "
            f"{transformers.__version__} does not support it.{custom}"
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFilesError(
            f"{config_path} describes a {model_type!r} model, which cannot generate text "
            "(it is not a causal language model). Choose a chat or instruct model."
        )


# --- progress ---------------------------------------------------------------------------------

_Report = Callable[[str, str, float | None], None]


def progress_reporter(progress: ProgressCallback | None) -> _Report:
    """``report(stage, message, fraction)`` for an optional progress callback."""

    def report(stage: str, message: str, fraction: float | None) -> None:
        if progress is not None:
            progress(LoadProgress(stage=stage, message=message, fraction=fraction))

    return report
