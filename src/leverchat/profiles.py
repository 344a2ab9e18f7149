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
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import enum
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias, get_args

from leverchat import paths
from leverchat.bounded import short_repr
from leverchat.engine.custom_format import CustomFormat, FormatError, format_from_mapping
from leverchat.engine.types import FormatChoice, PromptFormat
from leverchat.levers import LEVER_NAMES, LeverError, Levers, suggest_key
from leverchat.tomlio import (
    TomlError,
    dumps_toml,
    format_location,
    parse_toml_bytes,
    remove_stale_temp_files,
    write_toml_atomic,
)
from leverchat.userfile import UserFileError, read_user_file

try:  # Advisory locking between leverchat processes; not available on Windows.
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

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


# ---------------------------------------------------------------------------------------------
# The store


class Overwrite(enum.Enum):
    """Pass ``expected_fingerprint=OVERWRITE`` to save without checking for changes on disk."""

    OVERWRITE = "overwrite"


OVERWRITE: Final = Overwrite.OVERWRITE
ExpectedFingerprint: TypeAlias = str | Literal[Overwrite.OVERWRITE] | None


@dataclass(frozen=True)
class ProfileEntry:
    """One line of :meth:`ProfileStore.list`: a profile, or a broken file with its error."""

    name: str
    path: Path
    builtin: bool
    profile: Profile | None
    error: ProfileError | None
    overrides_builtin: bool = False
    fingerprint: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def source(self) -> str:
        """``built-in``, ``user`` or ``user (overrides built-in)``, as the CLI shows it."""
        if self.builtin:
            return "built-in"
        return "user (overrides built-in)" if self.overrides_builtin else "user"


@dataclass(frozen=True)
class LoadedProfile:
    """A profile as loaded, with what :meth:`ProfileStore.save` needs to detect conflicts.

    ``fingerprint`` identifies the user file's content as loaded; None when there is no user
    file (a built-in that was never saved). ``path`` is the file it came from.
    """

    profile: Profile
    fingerprint: str | None
    path: Path
    builtin: bool

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass(frozen=True)
class _FileRecord:
    path: Path
    name: str
    profile: Profile | None
    error: ProfileError | None
    fingerprint: str | None


class ProfileStore:
    """The user's profiles folder plus the built-ins. Thread-compatible, process-safe."""

    def __init__(self, directory: Path | None = None, *, builtin_dir: Path | None = None) -> None:
        self._directory = directory
        self._builtin_dir = builtin_dir if builtin_dir is not None else BUILTIN_DIR

    @property
    def directory(self) -> Path:
        """The user profiles folder (read at call time, so the environment override applies)."""
        return self._directory if self._directory is not None else paths.profiles_dir()

    # -- reading ------------------------------------------------------------------------------

    def list(self) -> list[ProfileEntry]:
        """Every profile: built-ins (unless overridden), then the user's; broken ones included."""
        builtin_by_key = {name_key(record.name): record for record in self._builtin_records()}
        entries: list[ProfileEntry] = []
        claimed: dict[str, _FileRecord] = {}
        for record in self._user_records():
            key = name_key(record.name)
            error = record.error
            if key in claimed and error is None:
                other = claimed[key].path.name
                error = ProfileNameClashError(
                    f"the name '{record.name}' is already used by {other}: "
                    "rename one of them (change its name = line)",
                    path=record.path,
                    key="name",
                )
            primary = key not in claimed
            if primary:
                claimed[key] = record
            entries.append(
                ProfileEntry(
                    name=record.name,
                    path=record.path,
                    builtin=False,
                    profile=record.profile if error is None else None,
                    error=error,
                    overrides_builtin=primary and key in builtin_by_key,
                    fingerprint=record.fingerprint,
                )
            )
        for key, record in builtin_by_key.items():
            if key not in claimed:
                entries.append(
                    ProfileEntry(
                        name=record.name,
                        path=record.path,
                        builtin=True,
                        profile=record.profile,
                        error=record.error,
                    )
                )
        return sorted(entries, key=_listing_order)

    def names(self) -> builtins.list[str]:
        """The names of every loadable profile, in listing order."""
        return [entry.name for entry in self.list() if not entry.broken]

    def load(self, name: str) -> LoadedProfile:
        """The profile called ``name`` (any case). Raises ProfileNotFoundError, ProfileError."""
        entry = self._entry(name)
        if entry.error is not None:
            raise entry.error
        assert entry.profile is not None
        return LoadedProfile(
            profile=entry.profile,
            fingerprint=None if entry.builtin else entry.fingerprint,
            path=entry.path,
            builtin=entry.builtin,
        )

    def exists(self, name: str) -> bool:
        key = name_key(name)
        return any(name_key(entry.name) == key for entry in self.list())

    def unique_name(self, base: str) -> str:
        """``base``, or ``base 2``, ``base 3``... whichever is free first."""
        taken = {name_key(entry.name) for entry in self.list()}
        base = validate_name(base)[: MAX_NAME_LENGTH - 4].rstrip()
        candidate, number = base, 1
        while name_key(candidate) in taken:
            number += 1
            candidate = f"{base} {number}"
        return candidate

    def list_deleted(self) -> builtins.list[ProfileEntry]:
        """The deleted copies that :meth:`restore` can bring back."""
        records = self._records(self.directory, DELETED_SUFFIX)
        return [
            ProfileEntry(
                name=record.name,
                path=record.path,
                builtin=False,
                profile=record.profile,
                error=record.error,
                fingerprint=record.fingerprint,
            )
            for record in records
        ]

    # -- writing ------------------------------------------------------------------------------

    def save(
        self,
        profile: Profile,
        *,
        expected_fingerprint: ExpectedFingerprint,
        original_name: str | None = None,
    ) -> LoadedProfile:
        """Save ``profile`` over the one it was loaded as, refusing if that changed on disk.

        ``expected_fingerprint`` is ``LoadedProfile.fingerprint`` from the load (None for a
        built-in never saved, or a new profile); OVERWRITE skips the check. ``original_name``
        is the name it was loaded under, when the edit renamed it. Raises ProfileConflictError,
        ProfileExistsError (renamed onto a taken name) or ProfileError (cannot write).
        """
        source_name = original_name if original_name is not None else profile.name
        renaming = name_key(source_name) != name_key(profile.name)
        with self._locked():
            source = self._primary_user_record(source_name)
            if expected_fingerprint is not OVERWRITE:
                current = source.fingerprint if source is not None else None
                if current != expected_fingerprint:
                    raise self._conflict(source_name, source, expected_fingerprint)
            if renaming:
                self._require_free(profile.name, path_hint=source.path if source else None)
            if source is None:
                return self._write(profile, self._free_path(profile.name))
            if not renaming:
                return self._write(profile, source.path)
            target = self._free_path(profile.name)
            if source.path.is_symlink():
                # Move the link itself (it keeps pointing at the user's file), then write
                # through it. A failed write leaves the old content under the new file name.
                self._move(source.path, target)
                return self._write(profile, target)
            # Write the new file first: if that fails, nothing has changed.
            saved = self._write(profile, target)
            try:
                source.path.unlink(missing_ok=True)
            except OSError as error:
                raise ProfileError(
                    f"saved as {target.name}, but the old file could not be removed: "
                    f"{error.strerror or error}; delete it by hand",
                    path=source.path,
                ) from None
            return saved

    def save_as(self, profile: Profile) -> LoadedProfile:
        """Save ``profile`` as a new user profile. Raises ProfileExistsError if the name is taken
        (by a user profile or a built-in)."""
        with self._locked():
            self._require_free(profile.name)
            return self._write(profile, self._free_path(profile.name))

    def rename(
        self,
        old_name: str,
        new_name: str,
        *,
        expected_fingerprint: ExpectedFingerprint = OVERWRITE,
    ) -> LoadedProfile:
        """Give a user profile a new name (its file is renamed too). Built-ins cannot be
        renamed: duplicate them instead."""
        loaded = self.load(old_name)
        if loaded.builtin:
            raise ProfileError(
                f"'{loaded.name}' is a built-in profile and cannot be renamed: duplicate it "
                "and rename the copy",
                key="name",
            )
        renamed = replace(loaded.profile, name=new_name)
        expected = loaded.fingerprint if expected_fingerprint is OVERWRITE else expected_fingerprint
        return self.save(renamed, expected_fingerprint=expected, original_name=loaded.name)

    def duplicate(self, name: str, new_name: str | None = None) -> LoadedProfile:
        """A copy of profile ``name`` (built-in or user) as a new user profile."""
        loaded = self.load(name)
        target_name = new_name if new_name is not None else self.unique_name(f"{loaded.name} copy")
        return self.save_as(replace(loaded.profile, name=target_name))

    def delete(self, name: str, *, expected_fingerprint: ExpectedFingerprint = OVERWRITE) -> Path:
        """Delete the user profile ``name`` (broken ones too) and return where its copy is kept.

        The file is kept as ``<file>.toml.deleted`` until the next delete of the same name;
        :meth:`restore` brings it back. Deleting a user profile that overrides a built-in
        brings the built-in back. Built-ins themselves cannot be deleted.
        """
        with self._locked():
            record = self._primary_user_record(name)
            if record is None:
                entry = self._entry(name)  # raises ProfileNotFoundError
                raise ProfileError(
                    f"'{entry.name}' is a built-in profile and cannot be deleted",
                    key="name",
                )
            if expected_fingerprint is not OVERWRITE and record.fingerprint != expected_fingerprint:
                raise self._conflict(name, record, expected_fingerprint)
            key = name_key(record.name)
            for old in self._records(self.directory, DELETED_SUFFIX):
                if name_key(old.name) == key:
                    with contextlib.suppress(FileNotFoundError):
                        old.path.unlink()
            kept = record.path.with_name(record.path.name[: -len(PROFILE_SUFFIX)] + DELETED_SUFFIX)
            self._move(record.path, kept)
            return kept

    def restore(self, name: str) -> ProfileEntry:
        """Bring back the last deleted copy of ``name``. Raises ProfileNotFoundError when there
        is none, ProfileExistsError when a user profile of that name exists again."""
        key = name_key(name)
        with self._locked():
            deleted = [
                r for r in self._records(self.directory, DELETED_SUFFIX) if name_key(r.name) == key
            ]
            if not deleted:
                known = [entry.name for entry in self.list_deleted()]
                raise ProfileNotFoundError(
                    f"no deleted copy of '{name}' to restore"
                    + (f" (deleted copies: {', '.join(known)})" if known else ""),
                    key="name",
                )
            record = deleted[0]
            if self._primary_user_record(record.name) is not None:
                raise ProfileExistsError(
                    f"a profile called '{record.name}' exists again: rename or delete it "
                    "before restoring the deleted copy",
                    key="name",
                )
            destination = record.path.with_name(_stem_of(record.path) + PROFILE_SUFFIX)
            if _occupied(destination):
                destination = self._free_path(record.name)
            self._move(record.path, destination)
        for entry in self.list():
            if entry.path == destination:
                return entry
        raise ProfileError(f"'{name}' was restored but could not be listed", path=destination)

    # -- internals ----------------------------------------------------------------------------

    def _entry(self, name: str) -> ProfileEntry:
        entries = self.list()
        key = name_key(name)
        for entry in entries:
            if name_key(entry.name) == key and not _is_shadowed_duplicate(entry):
                return entry
        names = [entry.name for entry in entries]
        suggestion = suggest_key(name, names)
        hint = f"did you mean '{suggestion}'?" if suggestion else "known: " + ", ".join(names)
        raise ProfileNotFoundError(f"no profile called '{name}': {hint}", key="name")

    def _write(self, profile: Profile, target: Path) -> LoadedProfile:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            payload = write_toml_atomic(target, profile_to_mapping(profile), header=_FILE_HEADER)
        except TomlError as error:
            raise ProfileError(error.reason, path=target) from None
        remove_stale_temp_files(target.parent)
        return LoadedProfile(
            profile=profile, fingerprint=fingerprint_of(payload), path=target, builtin=False
        )

    def _move(self, source: Path, destination: Path) -> None:
        try:
            source.replace(destination)
        except OSError as error:
            raise ProfileError(
                f"cannot move the file to {destination.name}: {error.strerror or error}",
                path=source,
            ) from None

    def _conflict(
        self, name: str, record: _FileRecord | None, expected: str | None
    ) -> ProfileConflictError:
        if record is None:
            message = (
                f"'{name}' was deleted on disk since it was loaded: save it under a new name, "
                "or save again to recreate it"
            )
            return ProfileConflictError(message, key="name")
        if expected is None:
            message = (
                f"'{name}' was saved by another program since it was loaded: reload it to see "
                "those changes, or save yours under a new name"
            )
        else:
            message = (
                f"'{name}' was changed on disk since it was loaded (another leverchat or an "
                "editor): reload it to see those changes, or save yours under a new name"
            )
        return ProfileConflictError(message, path=record.path)

    def _require_free(self, name: str, *, path_hint: Path | None = None) -> None:
        key = name_key(name)
        for entry in self.list():
            if name_key(entry.name) == key and entry.path != path_hint:
                kind = "a built-in profile" if entry.builtin else "a profile"
                raise ProfileExistsError(
                    f"there is already {kind} called '{entry.name}': choose another name",
                    path=None if entry.builtin else entry.path,
                    key="name",
                )

    def _free_path(self, name: str) -> Path:
        """A file in the profiles folder for a new profile called ``name``.

        Taken stems are compared case-insensitively, so two files never differ only in case,
        and a stem whose deleted copy belongs to another name is skipped (deleting this one
        later must not destroy that copy).
        """
        directory = self.directory
        stem = file_stem_for(name)
        taken = _folded_names(directory)
        deleted_keys = {
            record.path.name.casefold(): name_key(record.name)
            for record in self._records(directory, DELETED_SUFFIX)
        }
        number = 1
        while True:
            candidate = stem if number == 1 else f"{stem}-{number}"
            toml_name = (candidate + PROFILE_SUFFIX).casefold()
            deleted_name = (candidate + DELETED_SUFFIX).casefold()
            deleted_owner = deleted_keys.get(deleted_name)
            if toml_name not in taken and deleted_owner in (None, name_key(name)):
                return directory / (candidate + PROFILE_SUFFIX)
            number += 1

    def _primary_user_record(self, name: str) -> _FileRecord | None:
        key = name_key(name)
        for record in self._user_records():
            if name_key(record.name) == key:
                return record
        return None

    def _user_records(self) -> builtins.list[_FileRecord]:
        records = self._records(self.directory, PROFILE_SUFFIX)
        # The file named after its profile wins a duplicate name; then file-name order.
        return sorted(
            records,
            key=lambda r: (_stem_of(r.path) != file_stem_for(r.name), r.path.name),
        )

    def _builtin_records(self) -> builtins.list[_FileRecord]:
        return self._records(self._builtin_dir, PROFILE_SUFFIX)

    def _records(self, directory: Path, suffix: str) -> builtins.list[_FileRecord]:
        try:
            candidates = sorted(directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as error:
            raise ProfileError(
                f"cannot read the profiles folder: {error.strerror or error}", path=directory
            ) from None
        records = []
        for path in candidates:
            if path.name.startswith(".") or not path.name.endswith(suffix):
                continue
            if suffix == PROFILE_SUFFIX and path.name.endswith(DELETED_SUFFIX):
                continue
            records.append(_read_record(path))
        return records

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise check-then-write between leverchat processes sharing the folder."""
        directory = self.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProfileError(
                f"cannot create the profiles folder: {error.strerror or error}", path=directory
            ) from None
        if fcntl is None:
            yield
            return
        try:
            fd = os.open(directory / _LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            # A read-only or odd file system: the fingerprint check still catches most races.
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _read_record(path: Path) -> _FileRecord:
    """Read one profile file; never raises (a broken file becomes a record with its error).

    A FIFO would block the read forever and a huge file is certainly not a profile: the shared
    guard in :mod:`leverchat.userfile` refuses both before reading.
    """
    try:
        raw = read_user_file(path, max_bytes=MAX_PROFILE_BYTES, kind="profile")
    except UserFileError as error:
        return _FileRecord(path, _stem_of(path), None, ProfileError(error.reason, path=path), None)
    fingerprint = fingerprint_of(raw)
    try:
        profile = profile_from_toml_bytes(raw, path)
    except ProfileError as error:
        return _FileRecord(path, _best_name(raw, path), None, error, fingerprint)
    return _FileRecord(path, profile.name, profile, None, fingerprint)


def _best_name(raw: bytes, path: Path) -> str:
    """The name a broken file would have had: its ``name`` if readable, else its file stem."""
    try:
        data = parse_toml_bytes(raw, path)
        return validate_name(data.get("name"))
    except (TomlError, ProfileError):
        return _stem_of(path)


def _folded_names(directory: Path) -> set[str]:
    try:
        return {entry.name.casefold() for entry in directory.iterdir()}
    except OSError:
        return set()


def _occupied(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def _is_shadowed_duplicate(entry: ProfileEntry) -> bool:
    return isinstance(entry.error, ProfileNameClashError)


def _listing_order(entry: ProfileEntry) -> tuple[int, str, bool, str]:
    key = name_key(entry.name)
    rank = BUILTIN_ORDER.index(key) if key in BUILTIN_ORDER else len(BUILTIN_ORDER)
    return rank, key, _is_shadowed_duplicate(entry), entry.path.name
