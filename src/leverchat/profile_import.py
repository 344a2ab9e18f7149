"""Import personas and sampler settings from the tools people move from.

Three formats are understood:

- an Ollama ``Modelfile`` (``SYSTEM``, ``PARAMETER``; ``FROM`` becomes the model when it is a
  path),
- a text-generation-webui preset (YAML of sampler values),
- an ``llm`` template (YAML with ``system`` and ``options``).

Everything is mapped onto a validated :class:`~leverchat.profiles.Profile`; whatever has no
equivalent (or has an invalid value) is returned as :class:`Unmapped` with the reason, so the
user can see exactly what was left behind. Nothing here writes files.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from leverchat.levers import LeverError, Levers, validate_lever
from leverchat.profiles import MAX_NAME_LENGTH, Profile, ProfileError, validate_name

ImportFormat = Literal["ollama", "textgen-webui", "llm"]
FORMAT_LABELS: Final[dict[ImportFormat, str]] = {
    "ollama": "Ollama Modelfile",
    "textgen-webui": "text-generation-webui preset",
    "llm": "llm template",
}
MAX_IMPORT_BYTES: Final = 1_000_000


class ProfileImportError(ProfileError):
    """The file could not be read as any of the supported formats."""


@dataclass(frozen=True)
class Unmapped:
    """A setting from the imported file that the profile does not carry, and why."""

    key: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    profile: Profile
    unmapped: tuple[Unmapped, ...]
    source_format: ImportFormat
    source: Path

    @property
    def format_label(self) -> str:
        return FORMAT_LABELS[self.source_format]


@dataclass
class _Draft:
    """What an importer collects before the Profile is built."""

    system_prompt: str = ""
    model: str | None = None
    levers: dict[str, Any] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)

    def skip(self, key: str, value: object, reason: str) -> None:
        self.unmapped.append(Unmapped(key, _show(value), reason))

    def set_lever(self, source_key: str, lever: str, value: object) -> None:
        """Validate now, so a bad value is reported against the key the user wrote."""
        try:
            canonical = validate_lever(lever, value)
        except LeverError as error:
            self.skip(source_key, value, error.message)
            return
        if lever == "stop":
            canonical = tuple(dict.fromkeys((*self.levers.get("stop", ()), *canonical)))
        self.levers[lever] = canonical


def import_profile(path: Path, *, name: str | None = None) -> ImportResult:
    """Read ``path`` in whichever supported format it is and map it onto a Profile.

    ``name`` defaults to one derived from the file name. Raises ProfileImportError for a file
    that cannot be read or recognised, ProfileError for an invalid ``name``.
    """
    text = _read_text(path)
    profile_name = validate_name(name) if name is not None else _name_from_path(path)
    fmt = detect_format(path, text)
    if fmt == "ollama":
        draft = parse_modelfile(text, base_dir=path.parent)
    else:
        data = _load_yaml(text, path)
        draft = parse_llm_template(data) if fmt == "llm" else parse_textgen_preset(data)
    description = f"Imported from {path.name} ({FORMAT_LABELS[fmt]})"
    levers = Levers.from_mapping(draft.levers)
    profile = Profile(
        name=profile_name,
        description=description,
        system_prompt=draft.system_prompt.strip("\n"),
        levers=levers,
        model=draft.model,
    )
    return ImportResult(profile, tuple(draft.unmapped), fmt, path)


def detect_format(path: Path, text: str) -> ImportFormat:
    lowered = path.name.lower()
    if lowered == "modelfile" or lowered.startswith("modelfile.") or lowered.endswith(".modelfile"):
        return "ollama"
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.split()[0].upper() in _MODELFILE_INSTRUCTIONS:
            return "ollama"
        break
    data = _load_yaml(text, path)
    keys = set(data)
    if keys & _LLM_TEMPLATE_KEYS:
        return "llm"
    if keys & (set(_TEXTGEN_LEVERS) | set(_TEXTGEN_UNMAPPED) | {"do_sample"}):
        return "textgen-webui"
    raise ProfileImportError(
        "not a recognised file: expected an Ollama Modelfile, a text-generation-webui preset "
        "or an llm template",
        path=path,
    )


# ---------------------------------------------------------------------------------------------
# Ollama Modelfile

_INSTRUCTION_RE = re.compile(r"^(?P<instruction>[A-Za-z]+)(?:\s+(?P<rest>.*))?$")
_OLLAMA_LEVERS: Final = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "num_predict": "max_new_tokens",
    "seed": "seed",
    "stop": "stop",
}
_RUNTIME_SETTING = "an Ollama/llama.cpp runtime setting, not a sampling lever"
_OLLAMA_REASONS: Final = {
    "num_ctx": "the context window comes from the model itself",
    "repeat_last_n": "leverchat's repetition penalty always covers the whole conversation",
    "mirostat": "leverchat has no Mirostat sampler",
    "mirostat_eta": "leverchat has no Mirostat sampler",
    "mirostat_tau": "leverchat has no Mirostat sampler",
    "tfs_z": "leverchat has no tail-free sampling",
    "penalize_newline": "leverchat has no newline-specific penalty",
    **{
        key: _RUNTIME_SETTING
        for key in (
            "num_gpu",
            "num_thread",
            "num_batch",
            "num_keep",
            "main_gpu",
            "use_mmap",
            "use_mlock",
            "numa",
            "low_vram",
            "f16_kv",
        )
    },
}
# Values that switch a sampler off: nothing is lost, so nothing is reported.
_OLLAMA_NEUTRAL: Final[dict[str, float]] = {"mirostat": 0, "tfs_z": 1}
_OLLAMA_INSTRUCTION_REASONS: Final = {
    "TEMPLATE": "leverchat uses the model's own chat template (prompt_format 'auto')",
    "ADAPTER": "LoRA adapters are not supported",
    "LICENSE": "a license text is not part of a profile",
    "MESSAGE": "example conversation messages are not part of a profile",
    "REQUIRES": "an Ollama version requirement",
}
_MODELFILE_INSTRUCTIONS: Final = frozenset(
    {"FROM", "SYSTEM", "PARAMETER", *_OLLAMA_INSTRUCTION_REASONS}
)
_MODEL_FILE_SUFFIXES: Final = (".gguf", ".safetensors", ".bin")


def parse_modelfile(text: str, *, base_dir: Path) -> _Draft:
    """Map an Ollama Modelfile. Relative FROM paths are resolved against ``base_dir``."""
    draft = _Draft()
    for instruction, parameter, value in _modelfile_instructions(text):
        if instruction == "SYSTEM":
            draft.system_prompt = value  # Ollama keeps the last SYSTEM
        elif instruction == "FROM":
            _map_from(draft, value, base_dir)
        elif instruction == "PARAMETER":
            _map_parameter(draft, parameter, value)
        elif instruction in _OLLAMA_INSTRUCTION_REASONS:
            draft.skip(instruction, value, _OLLAMA_INSTRUCTION_REASONS[instruction])
        else:
            draft.skip(instruction, value, "not a Modelfile instruction leverchat knows")
    return draft


def _modelfile_instructions(text: str) -> Iterator[tuple[str, str, str]]:
    """(INSTRUCTION, parameter name or "", argument); ``\"\"\"`` arguments may span lines."""
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _INSTRUCTION_RE.match(stripped)
        if match is None:
            yield stripped.split()[0], "", stripped
            continue
        instruction = match["instruction"].upper()
        rest = match["rest"] or ""
        if instruction == "PARAMETER":
            key, _, raw_value = rest.partition(" ")
            yield instruction, key.lower(), _read_argument(raw_value.strip(), lines)
        else:
            yield instruction, "", _read_argument(rest, lines)


def _read_argument(first: str, lines: Iterator[str]) -> str:
    if first.startswith('"""'):
        body = first[3:]
        if '"""' in body:
            return body[: body.index('"""')]
        collected = [body]
        for line in lines:
            if '"""' in line:
                collected.append(line[: line.index('"""')])
                break
            collected.append(line)
        return "\n".join(collected)
    if len(first) >= 2 and first[0] == first[-1] == '"':
        return first[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return first


def _map_from(draft: _Draft, value: str, base_dir: Path) -> None:
    source = value.strip()
    looks_like_path = (
        source.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or re.match(r"^[A-Za-z]:[\\/]", source) is not None
        or source.lower().endswith(_MODEL_FILE_SUFFIXES)
    )
    if looks_like_path:
        path = Path(source).expanduser()
        draft.model = str(path if path.is_absolute() else (base_dir / path).resolve())
        return
    hint = "an Ollama model name; set model to a Hugging Face id or a local path by hand"
    if source.startswith(("hf.co/", "huggingface.co/")):
        repo = source.split("/", 1)[1].split(":", 1)[0]
        hint = f"an Ollama pull of the Hugging Face repo '{repo}'; set model by hand if you like"
    draft.skip("FROM", source, hint)


def _map_parameter(draft: _Draft, key: str, raw: str) -> None:
    if key == "stop":
        draft.set_lever("stop", "stop", [raw])
        return
    if key not in _OLLAMA_LEVERS:
        if _parse_number(raw) != _OLLAMA_NEUTRAL.get(key):
            reason = _OLLAMA_REASONS.get(key, f"leverchat has no '{key}' lever")
            draft.skip(f"PARAMETER {key}", raw, reason)
        return
    number = _parse_number(raw)
    if number is None:
        draft.skip(f"PARAMETER {key}", raw, "not a number")
        return
    lever = _OLLAMA_LEVERS[key]
    if lever == "seed" and number < 0:
        return  # -1 asks for a random seed, which is what an unset seed does
    if lever == "max_new_tokens" and number < 0:
        draft.skip(
            f"PARAMETER {key}",
            raw,
            "an unlimited reply has no equivalent; max_new_tokens keeps its default",
        )
        return
    draft.set_lever(f"PARAMETER {key}", lever, number)


def _parse_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# ---------------------------------------------------------------------------------------------
# text-generation-webui preset

_TEXTGEN_LEVERS: Final = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repetition_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
    "max_new_tokens": "max_new_tokens",
    "seed": "seed",
}
_NO_DRY = "leverchat has no DRY sampler"
_NO_XTC = "leverchat has no XTC sampler"
_NO_MIROSTAT = "leverchat has no Mirostat sampler"
_NO_DYNATEMP = "leverchat has no dynamic temperature"
# key: (neutral value that changes nothing, so is not worth reporting; reason)
_TEXTGEN_UNMAPPED: Final[dict[str, tuple[object, str]]] = {
    "tfs": (1, "leverchat has no tail-free sampling"),
    "top_a": (0, "leverchat has no top-a sampling"),
    "top_n_sigma": (0, "leverchat has no top-n-sigma sampling"),
    "epsilon_cutoff": (0, "leverchat has no epsilon sampling"),
    "eta_cutoff": (0, "leverchat has no eta sampling"),
    "repetition_penalty_range": (
        0,
        "leverchat's repetition penalty always covers the whole conversation",
    ),
    "encoder_repetition_penalty": (1, "leverchat has no encoder repetition penalty"),
    "penalty_alpha": (0, "leverchat has no contrastive search"),
    "guidance_scale": (1, "leverchat has no classifier-free guidance"),
    "smoothing_factor": (0, "leverchat has no quadratic smoothing"),
    "smoothing_curve": (1, "leverchat has no quadratic smoothing"),
    "mirostat_mode": (0, _NO_MIROSTAT),
    "mirostat_tau": (None, _NO_MIROSTAT),
    "mirostat_eta": (None, _NO_MIROSTAT),
    "dry_multiplier": (0, _NO_DRY),
    "dry_base": (None, _NO_DRY),
    "dry_allowed_length": (None, _NO_DRY),
    "dry_sequence_breakers": (None, _NO_DRY),
    "xtc_probability": (0, _NO_XTC),
    "xtc_threshold": (None, _NO_XTC),
    "dynamic_temperature": (False, _NO_DYNATEMP),
    "dynatemp_low": (None, _NO_DYNATEMP),
    "dynatemp_high": (None, _NO_DYNATEMP),
    "dynatemp_exponent": (None, _NO_DYNATEMP),
    "temperature_last": (False, "leverchat always applies temperature first"),
    "sampler_priority": (None, "leverchat applies its samplers in a fixed order"),
    "num_beams": (1, "leverchat has no beam search"),
    "length_penalty": (1, "leverchat has no beam search"),
    "early_stopping": (False, "leverchat has no beam search"),
}
# Settings that only matter when another one switches their sampler on.
_TEXTGEN_ENABLED_BY: Final = {
    "mirostat_tau": "mirostat_mode",
    "mirostat_eta": "mirostat_mode",
    "dry_base": "dry_multiplier",
    "dry_allowed_length": "dry_multiplier",
    "dry_sequence_breakers": "dry_multiplier",
    "xtc_threshold": "xtc_probability",
    "dynatemp_low": "dynamic_temperature",
    "dynatemp_high": "dynamic_temperature",
    "dynatemp_exponent": "dynamic_temperature",
}


def parse_textgen_preset(data: Mapping[str, Any]) -> _Draft:
    """Map a text-generation-webui preset (``user_data/presets/*.yaml``)."""
    draft = _Draft()
    for key, value in data.items():
        key = str(key)
        if key in _TEXTGEN_LEVERS:
            lever = _TEXTGEN_LEVERS[key]
            if lever == "seed" and isinstance(value, int) and value < 0:
                continue  # -1 is "random", the same as an unset seed
            draft.set_lever(key, lever, value)
        elif key == "do_sample":
            if value is False:
                draft.set_lever(key, "temperature", 0)  # greedy decoding
            elif value is not True:
                draft.skip(key, value, "must be true or false")
        elif key in _TEXTGEN_UNMAPPED:
            neutral, reason = _TEXTGEN_UNMAPPED[key]
            enabler = _TEXTGEN_ENABLED_BY.get(key)
            if enabler is not None and _is_neutral(enabler, data.get(enabler)):
                continue
            if neutral is None or value != neutral:
                draft.skip(key, value, reason)
        else:
            draft.skip(key, value, f"leverchat has no '{key}' setting")
    return draft


def _is_neutral(key: str, value: object) -> bool:
    return value is None or value == _TEXTGEN_UNMAPPED[key][0]


# ---------------------------------------------------------------------------------------------
# llm template

_LLM_TEMPLATE_KEYS: Final = frozenset(
    {
        "system",
        "prompt",
        "model",
        "defaults",
        "options",
        "extract",
        "extract_last",
        "schema_object",
        "fragments",
        "system_fragments",
        "tools",
        "functions",
    }
)
_LLM_OPTION_LEVERS: Final = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "max_tokens": "max_new_tokens",
    "max_new_tokens": "max_new_tokens",
    "num_predict": "max_new_tokens",
    "seed": "seed",
    "stop": "stop",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "repeat_penalty": "repetition_penalty",
    "repetition_penalty": "repetition_penalty",
}
_LLM_KEY_REASONS: Final = {
    "prompt": "leverchat sends what you type as is; it has no prompt template",
    "extract": "extracting code blocks is not a profile setting",
    "extract_last": "extracting code blocks is not a profile setting",
    "schema_object": "structured output schemas are not supported",
    "fragments": "fragments are not supported: paste their text into the system prompt",
    "system_fragments": "fragments are not supported: paste their text into the system prompt",
    "tools": "tools are not supported",
    "functions": "tools are not supported",
}


def parse_llm_template(data: Mapping[str, Any]) -> _Draft:
    """Map an ``llm`` template (``llm templates path``/*.yaml)."""
    draft = _Draft()
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        draft.skip("defaults", defaults, "must be a mapping of parameter names to values")
        defaults = {}
    for key, value in data.items():
        key = str(key)
        if key == "system":
            if isinstance(value, str):
                draft.system_prompt = _fill_template(value, defaults, draft)
            else:
                draft.skip(key, value, "must be text")
        elif key == "options":
            _map_llm_options(draft, value)
        elif key == "model":
            draft.skip(
                key,
                value,
                "an llm model id; set model to a Hugging Face id or a local path by hand",
            )
        elif key == "defaults":
            continue  # used to fill in the system prompt's $parameters
        elif key in _LLM_KEY_REASONS:
            draft.skip(key, value, _LLM_KEY_REASONS[key])
        else:
            draft.skip(key, value, "not an llm template key leverchat knows")
    return draft


def _fill_template(text: str, defaults: Mapping[str, Any], draft: _Draft) -> str:
    template = string.Template(text)
    filled = template.safe_substitute({str(k): str(v) for k, v in defaults.items()})
    missing = [name for name in template.get_identifiers() if name not in defaults]
    if missing:
        draft.skip(
            "system",
            ", ".join(f"${name}" for name in missing),
            "template parameters without a default are left as written: edit the system prompt",
        )
    return filled


def _map_llm_options(draft: _Draft, options: object) -> None:
    if not isinstance(options, Mapping):
        draft.skip("options", options, "must be a mapping of option names to values")
        return
    for key, value in options.items():
        key = str(key)
        lever = _LLM_OPTION_LEVERS.get(key)
        if lever is None:
            draft.skip(f"options.{key}", value, f"leverchat has no '{key}' option")
        else:
            draft.set_lever(f"options.{key}", lever, value)


# ---------------------------------------------------------------------------------------------
# Reading


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise ProfileImportError(
                f"is {size} bytes; a persona or preset file is far smaller: is it the right file?",
                path=path,
            )
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ProfileImportError("is a folder, not a file", path=path) from None
    except FileNotFoundError:
        raise ProfileImportError("file not found", path=path) from None
    except OSError as error:
        message = f"cannot read the file: {error.strerror or error}"
        raise ProfileImportError(message, path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProfileImportError(
            f"not a text file: byte 0x{raw[error.start]:02x} at offset {error.start} is not "
            "valid UTF-8",
            path=path,
        ) from None


def _load_yaml(text: str, path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise ProfileImportError(
            f"not valid YAML: {error.problem or error}",
            path=path,
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as error:
        raise ProfileImportError(f"not valid YAML: {error}", path=path) from None
    if not isinstance(data, Mapping):
        raise ProfileImportError(
            "not a recognised file: expected an Ollama Modelfile, or YAML with settings "
            f"(found {type(data).__name__})",
            path=path,
        )
    return data


def _name_from_path(path: Path) -> str:
    stem = path.stem
    if path.name.lower().startswith("modelfile."):
        stem = path.name.split(".", 1)[1]
    elif path.name.lower() == "modelfile":
        stem = path.resolve().parent.name
    stem = stem.strip() or "imported"
    try:
        return validate_name(stem[:MAX_NAME_LENGTH])
    except ProfileError:
        return "imported"


def _show(value: object) -> str:
    """A short, single-line rendering of a value for the report."""
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."
