"""Which profile a chat uses, and whether what the panel shows differs from its saved form.

No Textual here: the chat screen asks this object, and shows the answers.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from leverchat.engine.custom_format import CustomFormat
from leverchat.engine.types import FormatChoice, PromptFormat
from leverchat.levers import Levers
from leverchat.profiles import PROMPT_FORMATS, LoadedProfile, Profile, ProfileError, ProfileStore

FALLBACK_PROFILE = "default"


class ProfileSession:
    """The profile a chat started from (as saved), plus what is needed to save over it."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self.profile = Profile(FALLBACK_PROFILE)
        self.fingerprint: str | None = None
        self.on_disk = False  # False until loaded from a file or saved
        self.problems: list[str] = []
        self.saved_format: FormatChoice = self.profile.prompt_format
        self.custom_format: CustomFormat | None = None

    def names(self) -> list[str]:
        """Every loadable profile; broken files are remembered in ``problems``."""
        names: list[str] = []
        self.problems = []
        try:
            entries = self.store.list()
        except (ProfileError, OSError) as error:  # an unreadable folder must not stop the app
            self.problems.append(
                f"cannot read the profiles in {self.store.directory}: {_reason(error)}; only "
                "the default profile is available until it can be read (check its "
                "permissions), then restart"
            )
            entries = []
        for entry in entries:
            if entry.error is not None:
                self.problems.append(str(entry.error))
            else:
                names.append(entry.name)
        if not self.on_disk and self.profile.name not in names:
            names.insert(0, self.profile.name)
        return names

    def start(self, name: str | None) -> str | None:
        """Load the starting profile (``name``, else "default" if it exists). Returns a problem
        to show when ``name`` could not be loaded (the fallback is used then)."""
        wanted = name if name is not None else FALLBACK_PROFILE
        try:
            self.switch(wanted)
        except (ProfileError, OSError) as error:
            if name is None:
                return None  # no "default" profile on disk: the built-in fallback is fine
            problem = f"could not load profile '{name}': {error}"
        else:
            return None
        # Fall back to the user's own "default" profile (its system prompt and levers), not a
        # blank one under its name whose save would then conflict with the real file.
        if name == FALLBACK_PROFILE:
            return problem
        try:
            if not self.store.exists(FALLBACK_PROFILE):
                return problem
            self.switch(FALLBACK_PROFILE)
        except (ProfileError, OSError) as error:
            return f"{problem}; the '{FALLBACK_PROFILE}' profile did not load either: {error}"
        return f"{problem}; using the '{FALLBACK_PROFILE}' profile"

    def switch(self, name: str) -> Profile:
        """Make ``name`` the chat's profile. Raises ProfileError (not found, broken file) or
        OSError (unreadable folder)."""
        if name == self.profile.name and not self.on_disk and not self.store.exists(name):
            return self.profile
        self._take(self.store.load(name))
        return self.profile

    def reload(self) -> Profile:
        """Read the current profile again from disk (after a save conflict)."""
        self._take(self.store.load(self.profile.name))
        return self.profile

    def is_modified(self, system_prompt: str, levers: Levers) -> bool:
        return (
            system_prompt != self.profile.system_prompt
            or levers != self.profile.levers
            or self.profile.prompt_format != self.saved_format
        )

    def format_choices(self) -> list[str]:
        """The prompt formats the panel offers: the built-ins, and the profile's own."""
        return [*PROMPT_FORMATS, *(["custom"] if self.custom_format is not None else [])]

    def chosen_format(self) -> str:
        fmt = self.profile.prompt_format
        return "custom" if isinstance(fmt, CustomFormat) else fmt

    def choose_format(self, choice: str) -> None:
        """Use prompt format ``choice`` (a built-in's name or "custom") from the next reply;
        saved with the profile."""
        fmt: FormatChoice
        if choice == "custom" and self.custom_format is not None:
            fmt = self.custom_format
        elif choice in PROMPT_FORMATS:
            fmt = cast(PromptFormat, choice)
        else:
            return
        # The profile's own format is kept beside a built-in choice: saving never loses it.
        spare = None if isinstance(fmt, CustomFormat) else self.custom_format
        self.profile = replace(self.profile, prompt_format=fmt, custom_format=spare)

    def edited(self, system_prompt: str, levers: Levers) -> Profile:
        return replace(self.profile, system_prompt=system_prompt, levers=levers)

    def save(self, system_prompt: str, levers: Levers) -> Profile:
        """Save over the current profile. Raises ProfileConflictError when its file changed on
        disk since it was loaded, ProfileError when it cannot be written."""
        saved = self.store.save(
            self.edited(system_prompt, levers), expected_fingerprint=self.fingerprint
        )
        self._take(saved)
        return self.profile

    def save_as(self, name: str, system_prompt: str, levers: Levers) -> Profile:
        """Save as a new profile and make it current. Raises ProfileError (bad or taken name)."""
        profile = replace(self.edited(system_prompt, levers), name=name)
        self._take(self.store.save_as(profile))
        return self.profile

    def suggest_new_name(self) -> str:
        try:
            return self.store.unique_name(self.profile.name)
        except ProfileError:
            return self.profile.name

    def _take(self, loaded: LoadedProfile) -> None:
        self.profile = loaded.profile
        # The format as saved, and the profile's own one (kept while a built-in is chosen).
        self.saved_format = loaded.profile.prompt_format
        own = loaded.profile.prompt_format
        self.custom_format = own if isinstance(own, CustomFormat) else loaded.profile.custom_format
        self.fingerprint = loaded.fingerprint
        self.on_disk = True


def _reason(error: ProfileError | OSError) -> str:
    if isinstance(error, ProfileError):
        return error.message
    return str(error.strerror or error)
