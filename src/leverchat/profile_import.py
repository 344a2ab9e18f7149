"""Import personas and sampler settings from the tools people move from.

Three formats are understood (one module each in :mod:`leverchat.importers`):

- an Ollama ``Modelfile`` (``SYSTEM``, ``PARAMETER``; ``FROM`` becomes the model when it is a
  path; a persona kept in ``TEMPLATE``/``PROMPT`` text becomes the system prompt),
- a text-generation-webui preset (YAML of sampler values),
- an ``llm`` template (YAML with ``system`` and ``options``).

Everything is mapped onto a validated :class:`~leverchat.profiles.Profile`. Levers the file
does not set get the source tool's own defaults, so the persona behaves as it did there.
Whatever has no equivalent (or has an invalid value) is returned as :class:`Unmapped` with
the reason, and what the import changed (defaults filled in, control characters removed) as
``notes``, so the user can see exactly what happened. Nothing here writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from leverchat.importers import llm, ollama, textgen
from leverchat.importers.common import Draft, ProfileImportError, Unmapped, neutralise
from leverchat.importers.yamlfile import load_yaml
from leverchat.levers import LeverError, Levers
from leverchat.profiles import MAX_NAME_LENGTH, Profile, ProfileError, validate_name
from leverchat.userfile import UserFileError, read_user_file

__all__ = [
    "FORMAT_LABELS",
    "MAX_IMPORT_BYTES",
    "ImportFormat",
    "ImportResult",
    "ProfileImportError",
    "Unmapped",
    "detect_format",
    "import_profile",
]

ImportFormat = Literal["ollama", "textgen-webui", "llm"]
FORMAT_LABELS: Final[dict[ImportFormat, str]] = {
    "ollama": "Ollama Modelfile",
    "textgen-webui": "text-generation-webui preset",
    "llm": "llm template",
}
MAX_IMPORT_BYTES: Final = 1_000_000
_TOOL_DEFAULTS: Final[dict[ImportFormat, tuple[dict[str, Any], str]]] = {
    "ollama": (ollama.DEFAULTS, ollama.DEFAULTS_SOURCE),
    "textgen-webui": (textgen.DEFAULTS, textgen.DEFAULTS_SOURCE),
    "llm": (llm.DEFAULTS, ""),
}


@dataclass(frozen=True)
class ImportResult:
    profile: Profile
    unmapped: tuple[Unmapped, ...]
    source_format: ImportFormat
    source: Path
    notes: tuple[str, ...] = ()

    @property
    def format_label(self) -> str:
        return FORMAT_LABELS[self.source_format]


def import_profile(path: Path, *, name: str | None = None) -> ImportResult:
    """Read ``path`` in whichever supported format it is and map it onto a Profile.

    ``name`` defaults to one the file sets (llm's ``name``), else one derived from the file
    name. Raises ProfileImportError for a file that cannot be read or recognised, ProfileError
    for an invalid ``name``.
    """
    text = _read_text(path)
    requested = validate_name(name) if name is not None else None
    fmt = detect_format(path, text)
    if fmt == "ollama":
        draft = ollama.parse_modelfile(text, base_dir=path.parent)
    elif fmt == "llm":
        draft = llm.parse_llm_template(load_yaml(text, path))
    else:
        draft = textgen.parse_textgen_preset(load_yaml(text, path))
    levers = _levers(draft, fmt, path)
    system_prompt = _clean_system_prompt(draft)
    profile_name = requested or draft.profile_name or _name_from_path(path)
    description, _ = neutralise(f"Imported from {path.name} ({FORMAT_LABELS[fmt]})")
    profile = Profile(
        name=profile_name,
        description=" ".join(description.split()),
        system_prompt=system_prompt,
        levers=levers,
        model=draft.model,
        prompt_format=draft.prompt_format or "auto",
    )
    return ImportResult(profile, tuple(draft.unmapped), fmt, path, tuple(draft.notes))


def detect_format(path: Path, text: str) -> ImportFormat:
    lowered = path.name.lower()
    if lowered == "modelfile" or lowered.startswith("modelfile.") or lowered.endswith(".modelfile"):
        return "ollama"
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.split()[0].upper() in ollama.MODELFILE_INSTRUCTIONS:
            return "ollama"
        break
    keys = {str(key) for key in load_yaml(text, path)}
    if keys & llm.TEMPLATE_KEYS:
        return "llm"
    if keys & textgen.DETECTION_KEYS:
        return "textgen-webui"
    raise ProfileImportError(
        "not a recognised file: expected an Ollama Modelfile, a text-generation-webui preset "
        "or an llm template",
        path=path,
    )


def _levers(draft: Draft, fmt: ImportFormat, path: Path) -> Levers:
    """The file's levers on top of its tool's defaults; the defaults used are noted."""
    values = draft.finish_levers()
    defaults, source = _TOOL_DEFAULTS[fmt]
    mine = Levers()
    filled = {
        key: value
        for key, value in defaults.items()
        if key not in values and value != getattr(mine, key)
    }
    if filled:
        shown = ", ".join(f"{key} {value}" for key, value in filled.items())
        draft.notes.append(f"Not set in the file, so {source} were used: {shown}.")
    try:
        return Levers.from_mapping(values, base=Levers.from_mapping(defaults))
    except LeverError as error:  # each value was checked alone; this is a last safety net
        raise ProfileImportError(f"{error.key}: {error.message}", path=path) from None


def _clean_system_prompt(draft: Draft) -> str:
    """The system prompt without terminal control characters, with a note when any were
    removed: shown raw later, an ESC sequence could retitle the window or write the clipboard.
    """
    cleaned, removed = neutralise(draft.system_prompt.strip("\n"))
    if removed:
        draft.notes.append(
            f"Removed {removed} terminal control character(s) (escape sequences, C1 controls, "
            "bidi overrides or zero-width spaces) from the system prompt: they could take "
            "over a terminal and are never part of a persona."
        )
    return cleaned


# ---------------------------------------------------------------------------------------------
# Reading


def _read_text(path: Path) -> str:
    try:
        raw = read_user_file(path, max_bytes=MAX_IMPORT_BYTES, kind="persona or preset")
    except UserFileError as error:
        raise ProfileImportError(error.reason, path=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProfileImportError(
            f"not a text file: byte 0x{raw[error.start]:02x} at offset {error.start} is not "
            "valid UTF-8",
            path=path,
        ) from None


def _name_from_path(path: Path) -> str:
    stem = path.stem
    if path.name.lower().startswith("modelfile."):
        stem = path.name.split(".", 1)[1]
    elif path.name.lower() == "modelfile":
        stem = path.resolve().parent.name
    stem = " ".join(neutralise(stem)[0].split()) or "imported"
    try:
        return validate_name(stem[:MAX_NAME_LENGTH])
    except ProfileError:
        return "imported"
