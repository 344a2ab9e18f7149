"""Persona profiles: a system prompt plus the levers (and optionally a model) that shape a reply.

One TOML file per profile in :func:`leverchat.paths.profiles_dir`; built-in starter profiles
ship in ``builtin_profiles/`` and are listed beside the user's. A user profile with the name of
a built-in overrides it; a built-in is copied into the user's folder only when a change to it is
saved. Every file goes through the same validation, so nothing invalid reaches the engine.

The API the TUI and the CLI use::

    store = ProfileStore()
    for entry in store.list():          # every profile, broken ones too (entry.error)
        ...
    loaded = store.load("pirate")       # LoadedProfile: .profile, .fingerprint, .path
    edited = dataclasses.replace(loaded.profile, system_prompt="Arr!")
    store.save(edited, expected_fingerprint=loaded.fingerprint)   # ProfileConflictError if
                                                                   # another program changed it
    store.save_as(...), store.rename(...), store.duplicate(...), store.delete(...),
    store.restore(...)

Identity is the profile's ``name`` (compared without regard to case or Unicode form); file
names are derived from it safely and are otherwise an implementation detail.

This module is the profile itself and its validation; the files (ProfileStore) are in
:mod:`leverchat.profile_store`, whose names are importable from here too.
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, get_args

from leverchat.bounded import short_repr
from leverchat.engine.custom_format import CustomFormat, FormatError, format_from_mapping
from leverchat.engine.types import FormatChoice, PromptFormat
from leverchat.levers import LEVER_NAMES, LeverError, Levers, suggest_key
from leverchat.tomlio import TomlError, dumps_toml, format_location, parse_toml_bytes

if TYPE_CHECKING:  # at run time these come from __getattr__ below
    from leverchat.profile_store import OVERWRITE as OVERWRITE
    from leverchat.profile_store import ExpectedFingerprint as ExpectedFingerprint
    from leverchat.profile_store import LoadedProfile as LoadedProfile
    from leverchat.profile_store import Overwrite as Overwrite
    from leverchat.profile_store import ProfileEntry as ProfileEntry
    from leverchat.profile_store import ProfileStore as ProfileStore

SCHEMA_VERSION: Final = 1
MAX_NAME_LENGTH: Final = 64
MAX_PROFILE_BYTES: Final = 1_000_000
PROFILE_SUFFIX: Final = ".toml"
DELETED_SUFFIX: Final = ".toml.deleted"
PROMPT_FORMATS: Final[tuple[str, ...]] = get_args(PromptFormat)
# prompt_format is one of PROMPT_FORMATS, or a [prompt_format] table: the profile's own format.
TOP_LEVEL_KEYS: Final = (
    "schema_version",
    "name",
    "description",
    "model",
    "prompt_format",
    "system_prompt",
    "levers",
    "custom_format",
)
# Listed first, in this order; user profiles follow alphabetically.
BUILTIN_ORDER: Final = ("default", "precise", "creative", "pirate")
BUILTIN_DIR: Final = Path(__file__).parent / "builtin_profiles"

_FILE_HEADER = (
    "A leverchat persona profile. Edit freely: levers not listed under [levers] use their\n"
    "defaults. `leverchat profiles show NAME` prints every value."
)
_LOCK_FILE_NAME = ".leverchat-profiles.lock"
_SLUG_MAX_LENGTH = 48
# Names Windows refuses as file names, whatever the extension (and so on shared drives too).
_RESERVED_STEMS = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)


# ---------------------------------------------------------------------------------------------
# Errors


class ProfileError(Exception):
    """A profile could not be read, validated or stored.

    ``message`` is the bare explanation for the user; ``path``, ``line``, ``column`` and ``key``
    say where, when known. ``str()`` gives ``path:line:column: message``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        return f"{format_location(self.path, self.line, self.column)}: {self.message}"

    def located(
        self, path: Path, line: int | None = None, column: int | None = None
    ) -> ProfileError:
        """A copy of this error that says which file (and where in it) it comes from."""
        located = copy.copy(self)
        located.path = path
        located.line = line if line is not None else self.line
        located.column = column if column is not None else self.column
        located.args = (str(located),)
        return located


class ProfileNotFoundError(ProfileError):
    """No profile of that name exists (the message suggests the closest one)."""


class ProfileExistsError(ProfileError):
    """The name is already taken by another profile."""


class ProfileNameClashError(ProfileError):
    """Two user files carry the same profile name; the second one is listed as broken."""


class ProfileConflictError(ProfileError):
    """The file changed on disk since it was loaded: saving would overwrite someone's work.

    The TUI offers to reload the file or to save under a new name.
    """


# ---------------------------------------------------------------------------------------------
# The profile


@dataclass(frozen=True)
class Profile:
    """A persona. Validated on construction: an invalid Profile cannot exist.

    Text is normalised: the name to NFC without surrounding spaces, line endings to ``\\n``.
    """

    name: str
    description: str = ""
    system_prompt: str = ""
    levers: Levers = field(default_factory=Levers)
    model: str | None = None
    prompt_format: FormatChoice = "auto"
    # The profile's own format, kept while a built-in one is chosen (saved as [custom_format],
    # so choosing "instruction" in the panel and saving never loses it).
    custom_format: CustomFormat | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", validate_name(self.name))
        for key in ("description", "system_prompt"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise ProfileError(f"{key} must be a string, not {_describe(value)}", key=key)
            object.__setattr__(self, key, _normalise_newlines(value))
        if not isinstance(self.levers, Levers):
            raise ProfileError(f"levers must be Levers, not {_describe(self.levers)}", key="levers")
        if self.model is not None:
            if not isinstance(self.model, str):
                raise ProfileError(
                    f"model must be a string (a model folder, file or Hugging Face id), "
                    f"not {_describe(self.model)}",
                    key="model",
                )
            # An empty string is how people blank a value by hand: it means "no model".
            object.__setattr__(self, "model", self.model.strip() or None)
        if (
            not isinstance(self.prompt_format, CustomFormat)
            and self.prompt_format not in PROMPT_FORMATS
        ):
            raise ProfileError(
                f"prompt_format must be one of {', '.join(repr(f) for f in PROMPT_FORMATS)}, "
                "or a [prompt_format] table with a Jinja template or prefix/suffix strings, "
                f"not {_describe(self.prompt_format)}",
                key="prompt_format",
            )
        if self.custom_format is not None and not isinstance(self.custom_format, CustomFormat):
            raise ProfileError(
                f"custom_format must be a table, not {_describe(self.custom_format)}",
                key="custom_format",
            )


def validate_name(name: object) -> str:
    """The canonical form of a profile name, or ProfileError saying what is wrong with it."""
    if not isinstance(name, str):
        raise ProfileError(f"name must be a string, not {_describe(name)}", key="name")
    canonical = unicodedata.normalize("NFC", name).strip()
    if not canonical:
        raise ProfileError("name cannot be empty", key="name")
    if len(canonical) > MAX_NAME_LENGTH:
        raise ProfileError(
            f"name is {len(canonical)} characters long; the limit is {MAX_NAME_LENGTH}",
            key="name",
        )
    for char in canonical:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            raise ProfileError(
                f"name cannot contain control characters or line breaks ({char!a})",
                key="name",
            )
    return canonical


def name_key(name: str) -> str:
    """What two names must share to be the same profile: case and Unicode form do not count."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def file_stem_for(name: str) -> str:
    """A safe file name (without ``.toml``) for a profile name.

    Letters and digits of any script are kept, everything else becomes ``-``: no path
    separators, no leading dot (no hidden files, no ``..``), no Windows reserved names, and
    lower case so names differing only in case never collide on a case-insensitive disk.
    Different names can still share a stem (``a b`` and ``a-b``); the store adds ``-2``.
    """
    folded = name_key(name)
    chars = [
        char if char in "-_" or unicodedata.category(char)[0] in "LNM" else "-" for char in folded
    ]
    stem = re.sub(r"-{2,}", "-", "".join(chars)).strip("-_")
    stem = stem[:_SLUG_MAX_LENGTH].strip("-_")
    # A combining mark cannot start a file name sensibly (it would attach to nothing).
    while stem and unicodedata.category(stem[0])[0] == "M":
        stem = stem[1:].lstrip("-_")
    if not stem:
        return "profile"
    if stem in _RESERVED_STEMS:
        return stem + "_"
    return stem


def _normalise_newlines(text: str) -> str:
    # TOML multi-line strings cannot keep a bare "\r\n" distinct from "\n"; store one form.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _describe(value: object) -> str:
    # short_repr: a full repr of a huge or deeply nested value is slow or recurses too deep.
    return f"{short_repr(value, 40)} ({type(value).__name__})"


# ---------------------------------------------------------------------------------------------
# Serialisation


def profile_from_mapping(data: Mapping[str, Any], *, default_name: str | None = None) -> Profile:
    """A Profile from a parsed TOML document. ``default_name`` is used when ``name`` is missing.

    Raises ProfileError with ``key`` set (no path: the caller adds it).
    """
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ProfileError(_unknown_top_level_key_message(key), key=key)
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProfileError(
            f"schema_version must be a whole number, not {_describe(version)}",
            key="schema_version",
        )
    if version > SCHEMA_VERSION:
        raise ProfileError(
            f"schema_version {version} was written by a newer leverchat (this one reads up to "
            f"{SCHEMA_VERSION}): upgrade leverchat to use this profile",
            key="schema_version",
        )
    if version < 1:
        raise ProfileError(f"schema_version must be 1 or more, not {version}", key="schema_version")
    if "name" in data:
        name = data["name"]
    elif default_name is not None:
        name = default_name
    else:
        raise ProfileError('name is missing: add a line like  name = "my profile"', key="name")
    levers_table = data.get("levers", {})
    if not isinstance(levers_table, Mapping):
        raise ProfileError(
            f"levers must be a table ([levers] followed by lines like temperature = 0.7), "
            f"not {_describe(levers_table)}",
            key="levers",
        )
    try:
        levers = Levers.from_mapping(levers_table)
    except LeverError as error:
        raise ProfileError(error.message, key=f"levers.{error.key}") from None
    return Profile(
        name=name,
        description=data.get("description", ""),
        system_prompt=data.get("system_prompt", ""),
        levers=levers,
        model=data.get("model"),
        prompt_format=_prompt_format_from(data.get("prompt_format", "auto")),
        custom_format=_prompt_format_from(data.get("custom_format"), key="custom_format"),
    )


def _prompt_format_from(value: Any, key: str = "prompt_format") -> Any:
    """A built-in format's name as is, a [prompt_format] table as the profile's own format."""
    if not isinstance(value, Mapping):
        return value  # Profile checks the name
    try:
        return format_from_mapping(value)
    except FormatError as error:
        where = f"{key}.{error.key}" if error.key else key
        raise ProfileError(error.message, key=where) from None


def _unknown_top_level_key_message(key: str) -> str:
    if key in LEVER_NAMES:
        return f"unknown key '{key}': levers go in the [levers] table: move it under [levers]"
    if suggestion := suggest_key(key, TOP_LEVEL_KEYS):
        return f"unknown key '{key}': did you mean '{suggestion}'?"
    if lever := suggest_key(key):
        return f"unknown key '{key}': did you mean the lever '{lever}' (under [levers])?"
    return f"unknown key '{key}': known keys are " + ", ".join(TOP_LEVEL_KEYS)


def profile_to_mapping(profile: Profile, *, all_levers: bool = False) -> dict[str, Any]:
    """The TOML document for a profile.

    Levers equal to their default are left out unless ``all_levers`` (so a saved persona
    lists only what it changes, and follows improved defaults for the rest).
    """
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": profile.name,
        "description": profile.description,
    }
    if profile.model is not None:
        data["model"] = profile.model
    fmt = profile.prompt_format
    data["prompt_format"] = fmt.to_mapping() if isinstance(fmt, CustomFormat) else fmt
    data["system_prompt"] = profile.system_prompt
    data["levers"] = profile.levers.to_mapping(only_changed_from=None if all_levers else Levers())
    if profile.custom_format is not None and profile.custom_format != fmt:
        data["custom_format"] = profile.custom_format.to_mapping()
    return data


def profile_to_toml(profile: Profile, *, all_levers: bool = False) -> str:
    """TOML text for a profile, as saved (or, with ``all_levers``, with every default shown)."""
    header = _FILE_HEADER
    if all_levers:
        notes = []
        if profile.model is None:
            notes.append("model is not set: the model leverchat was started with is used.")
        if profile.levers.seed is None:
            notes.append("seed is not set: every reply picks a new random seed.")
        header = "\n".join([f"Profile '{profile.name}' with every lever resolved.", *notes])
    return dumps_toml(profile_to_mapping(profile, all_levers=all_levers), header=header)


def profile_from_toml_bytes(raw: bytes, path: Path) -> Profile:
    """Parse and validate one profile file's bytes; errors name ``path``, line and column."""
    try:
        data = parse_toml_bytes(raw, path)
    except TomlError as error:
        raise ProfileError(error.reason, path=path, line=error.line, column=error.column) from None
    try:
        return profile_from_mapping(data, default_name=_stem_of(path))
    except ProfileError as error:
        text = raw.decode("utf-8")
        position = _locate_key(text, error.key) if error.key else None
        line, column = position if position else (None, None)
        raise error.located(path, line, column) from None


def fingerprint_of(raw: bytes) -> str:
    """What :meth:`ProfileStore.save` compares to notice that a file changed on disk."""
    return hashlib.sha256(raw).hexdigest()


_TABLE_HEADER_RE = re.compile(r"^\s*\[\s*(?P<name>[^\[\]]+?)\s*\]")
_KEY_RE = re.compile(
    r"""^(?P<indent>\s*)(?P<key>(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
    r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _locate_key(text: str, dotted_key: str) -> tuple[int, int] | None:
    """Best-effort line and column of ``dotted_key`` (``levers.top_p``) in TOML text.

    tomllib reports no positions for valid documents; this scan is only for error messages,
    so a miss (a key inside an inline table, say) just means no line number is shown.
    """
    wanted = dotted_key.split(".")
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _TABLE_HEADER_RE.match(line):
            table = _split_dotted(header["name"])
            if table == wanted:  # an error about a whole table ([prompt_format])
                return number, 1
            continue
        match = _KEY_RE.match(line)
        if match and table + _split_dotted(match["key"]) == wanted:
            return number, len(match["indent"]) + 1
    return None


def _split_dotted(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def _stem_of(path: Path) -> str:
    name = path.name
    for suffix in (DELETED_SUFFIX, PROFILE_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# The store (profile_store.py) is built on this module, so it cannot be imported eagerly here
# (the import would be circular); its names are still importable from leverchat.profiles.
_STORE_NAMES: Final = frozenset(
    {
        "OVERWRITE",
        "ExpectedFingerprint",
        "LoadedProfile",
        "Overwrite",
        "ProfileEntry",
        "ProfileStore",
    }
)


def __getattr__(name: str) -> object:
    # ``object``, not Any: a misspelt name imported from here still fails type checking.
    if name in _STORE_NAMES:
        from leverchat import profile_store

        return getattr(profile_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
