"""What every importer shares: the draft it fills in and the report of what it left behind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from leverchat.bounded import short_repr
from leverchat.engine.custom_format import CustomFormat
from leverchat.levers import MAX_STOP_STRINGS, LeverError, validate_lever
from leverchat.profiles import ProfileError
from leverchat.safetext import strip_control


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


@dataclass
class Draft:
    """What an importer collects before the Profile is built.

    ``notes`` say what the import changed or filled in (defaults of the source tool, text that
    was moved or cleaned); ``unmapped`` what it left behind.
    """

    system_prompt: str = ""
    model: str | None = None
    levers: dict[str, Any] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Stop strings in file order, without duplicates: a dict keeps adding one O(1), where
    # rebuilding a tuple per line made 40,000 lines take half a minute.
    stops: dict[str, None] = field(default_factory=dict)
    stops_dropped: int = 0
    stop_key: str = "stop"
    profile_name: str | None = None
    # A prompt format mapped from the file's own template (None: the model's own, "auto").
    prompt_format: CustomFormat | None = None
    seen: set[str] = field(default_factory=set)  # what an importer has met once already

    def skip(self, key: str, value: object, reason: str) -> None:
        # Keys come from the file too: bounded and made terminal-safe like values.
        self.unmapped.append(Unmapped(show(key, 80), show(value), reason))

    def set_lever(self, source_key: str, lever: str, value: object) -> None:
        """Validate now, so a bad value is reported against the key the user wrote."""
        if lever == "stop":
            self.add_stops(source_key, value)
            return
        try:
            canonical = validate_lever(lever, value)
        except LeverError as error:
            self.skip(source_key, value, error.message)
            return
        self.levers[lever] = canonical

    def add_stops(self, source_key: str, value: object) -> None:
        """Add stop strings, up to leverchat's limit; the rest are counted and reported once."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
            self.skip(source_key, value, "stop must be text or a list of texts")
            return
        self.stop_key = source_key
        for item in items:
            if item == "":
                self.skip(source_key, '""', "an empty stop string would end every reply at once")
            elif item in self.stops:
                continue
            elif len(self.stops) < MAX_STOP_STRINGS:
                self.stops[item] = None
            else:
                self.stops_dropped += 1

    def finish_levers(self) -> dict[str, Any]:
        """The lever values to build the profile from, stop strings included."""
        if self.stops_dropped:
            self.skip(
                self.stop_key,
                f"{self.stops_dropped} more",
                f"leverchat keeps at most {MAX_STOP_STRINGS} stop strings: the first "
                f"{MAX_STOP_STRINGS} were kept",
            )
        levers = dict(self.levers)
        if self.stops:
            levers["stop"] = tuple(self.stops)
        return levers


MIROSTAT_V1 = "mirostat v1 is not supported: leverchat has mirostat v2 (mode 2)"


def map_mirostat(draft: Draft, mode_key: str, data: dict[str, object]) -> list[str]:
    """llama.cpp's mirostat mode/tau/eta triple: mode 2 sets ``mirostat_tau`` (which switches
    v2 on; llama.cpp's default tau is 5) and ``mirostat_eta``. ``data`` holds the parsed values
    present, by their names in the file. Returns the keys that were switched off."""
    mode = data.get(mode_key)
    present = [key for key in (mode_key, "mirostat_tau", "mirostat_eta") if key in data]
    if mode is None or mode == 0:
        return present
    if mode != 2:
        draft.skip(mode_key, mode, MIROSTAT_V1 if mode == 1 else "must be 0 or 2")
        return []
    draft.set_lever(mode_key, "mirostat_tau", data.get("mirostat_tau", 5.0))
    if "mirostat_eta" in data:
        draft.set_lever("mirostat_eta", "mirostat_eta", data["mirostat_eta"])
    return []


def show(value: object, limit: int = 60) -> str:
    """A short, single-line, terminal-safe rendering of a value for the report.

    The cost is bounded whatever the value (a YAML value may be huge or deeply nested).
    """
    if isinstance(value, str):
        text = value[: limit * 4]
        cut = len(value) > len(text)
    else:
        text, cut = short_repr(value, limit), False
    text = neutralise(text)[0].replace("\n", "\\n").replace("\t", " ")
    if cut or len(text) > limit:
        return text[: limit - 3] + "..."
    return text


# Bidi embeddings, overrides and isolates reorder what a terminal shows (a name or a prompt
# can be made to read differently from what it is); zero-width spaces and BOMs hide text.
_INVISIBLE: Final = re.compile("[\u200b\u202a-\u202e\u2066-\u2069\ufeff]")


def neutralise(text: str) -> tuple[str, int]:
    """``text`` without terminal control sequences, C1 controls, bidi overrides and zero-width
    spaces; with the number of characters removed. Newlines and tabs are kept."""
    # Line breaks are normalised first, as a Profile does: a Windows file is not "cleaned".
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _INVISIBLE.sub("", strip_control(text))
    return cleaned, len(text) - len(cleaned)


def map_format(draft: Draft, value: str) -> None:
    """Ollama's ``format`` (``json``, or a JSON Schema): JSON mode or the json_schema lever."""
    text = value.strip()
    if text.lower() == "json":
        draft.set_lever("FORMAT", "json_mode", 1)
    elif text.startswith("{"):
        draft.set_lever("FORMAT", "json_schema", text)  # a bad schema is reported, named
    elif text:
        draft.skip("FORMAT", value, "FORMAT must be json or a JSON Schema object")
