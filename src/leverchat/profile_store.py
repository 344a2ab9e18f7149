"""ProfileStore: the profile files on disk, the user's folder and the built-ins.

Listing (broken files included, with their error), loading, and every change to a file:
save, save as, rename, duplicate, delete (kept as ``.toml.deleted``) and restore. A save
checks the file's fingerprint, so a change another program made since it was loaded is
reported as a conflict instead of being overwritten; writes are atomic and made under an
advisory lock shared by every leverchat process.

What a profile is, and its validation, are in :mod:`leverchat.profiles`, which also exports
the names of this module (import them from there).
"""

from __future__ import annotations

import builtins
import contextlib
import enum
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, TypeAlias

from leverchat import paths
from leverchat.levers import suggest_key
from leverchat.profiles import (
    _FILE_HEADER,
    _LOCK_FILE_NAME,
    BUILTIN_DIR,
    BUILTIN_ORDER,
    DELETED_SUFFIX,
    MAX_NAME_LENGTH,
    MAX_PROFILE_BYTES,
    PROFILE_SUFFIX,
    Profile,
    ProfileConflictError,
    ProfileError,
    ProfileExistsError,
    ProfileNameClashError,
    ProfileNotFoundError,
    _stem_of,
    file_stem_for,
    fingerprint_of,
    name_key,
    profile_from_toml_bytes,
    profile_to_mapping,
    validate_name,
)
from leverchat.tomlio import TomlError, parse_toml_bytes, remove_stale_temp_files, write_toml_atomic
from leverchat.userfile import UserFileError, read_user_file

try:  # Advisory locking between leverchat processes; not available on Windows.
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]


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
