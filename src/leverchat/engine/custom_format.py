"""User-defined prompt formats: a Jinja chat template, or prefix and suffix strings per role.

Pure data plus rendering; importable without torch (profiles validate through it). Jinja runs
in an immutable sandbox, as transformers renders chat templates: a profile is a file someone
may have downloaded, and its template must not reach Python objects.

A format brings its own stop strings (see :meth:`CustomFormat.own_stops`): the explicit
``stop`` list, plus the text that starts a new user turn, so a reply ends where the model
starts inventing the next turn, as the built-in instruction format does.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

# Keys of a [prompt_format] table, in the order `profiles show` writes them.
PREFIX_KEYS: tuple[str, ...] = (
    "system_prefix",
    "system_suffix",
    "user_prefix",
    "user_suffix",
    "assistant_prefix",
    "assistant_suffix",
    "generation_prefix",
)
FORMAT_KEYS: tuple[str, ...] = ("name", "template", *PREFIX_KEYS, "stop")
MAX_FORMAT_STOPS = 16
MAX_TEMPLATE_CHARS = 100_000


class FormatError(ValueError):
    """A custom format was refused. ``key`` is the key inside the [prompt_format] table ("":
    the table as a whole)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class CustomFormat:
    """A prompt format defined in a profile. Either ``template`` (Jinja, with ``messages``,
    ``add_generation_prompt``, ``bos_token`` and ``eos_token`` as a chat template has them)
    or the prefix/suffix strings; validated on construction."""

    name: str = "custom"
    template: str = ""
    system_prefix: str = ""
    system_suffix: str = ""
    user_prefix: str = ""
    user_suffix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    generation_prefix: str = ""
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.name == "stop":
                continue
            value = getattr(self, item.name)
            if not isinstance(value, str):
                raise FormatError(
                    item.name, f"{item.name} must be a string, not {type(value).__name__}"
                )
            # As a Profile does: TOML's multi-line strings keep one line ending, "\n".
            object.__setattr__(self, item.name, value.replace("\r\n", "\n").replace("\r", "\n"))
        if not self.name.strip():
            raise FormatError("name", "name cannot be empty")
        object.__setattr__(self, "stop", _validate_stops(self.stop))
        if self.template:
            if len(self.template) > MAX_TEMPLATE_CHARS:
                raise FormatError(
                    "template", f"template is longer than {MAX_TEMPLATE_CHARS} characters"
                )
            used = [key for key in PREFIX_KEYS if getattr(self, key)]
            if used:
                raise FormatError(
                    used[0],
                    f"{used[0]} cannot be used with template: a format is either a Jinja "
                    "template or prefix and suffix strings; remove one of them",
                )
            _compile(self.template)  # a broken template is refused when the profile loads
        elif not any(getattr(self, key) for key in PREFIX_KEYS):
            raise FormatError(
                "",
                "the format is empty: give template = '...' (a Jinja chat template) or "
                "prefix/suffix strings such as user_prefix and assistant_prefix",
            )

    @property
    def kind(self) -> str:
        return "jinja" if self.template else "prefix/suffix"

    def describe(self) -> str:
        """One line for F3 and the panel: the format's name and kind."""
        return f"custom '{self.name}' ({self.kind})"

    def render(
        self, roles: Sequence[str], contents: Sequence[str], bos_text: str, eos_text: str
    ) -> str:
        """The prompt text for these messages, ending where the reply starts."""
        if self.template:
            messages = [
                {"role": role, "content": text} for role, text in zip(roles, contents, strict=True)
            ]
            return _render_template(self.template, messages, bos_text, eos_text)
        parts: list[str] = []
        for role, text in zip(roles, contents, strict=True):
            parts.append(getattr(self, f"{role}_prefix") + text + getattr(self, f"{role}_suffix"))
        parts.append(self.generation_prefix)
        return "".join(parts)

    def own_stops(self, bos_text: str = "", eos_text: str = "") -> tuple[str, ...]:
        """The stop strings this format brings: ``stop`` plus the start of a new user turn
        (what the format writes between a reply and the next user message, stripped)."""
        stops = list(self.stop)
        if self.template:
            between = _turn_separator(self.template, bos_text, eos_text)
        else:
            between = self.assistant_suffix + self.user_prefix
        for special in (bos_text, eos_text):
            # A special token is the end-of-turn token's job, and never reaches the text.
            if special:
                between = between.replace(special, "")
        marker = between.strip()
        if marker and marker not in stops:
            stops.append(marker)
        return tuple(stops)

    def to_mapping(self) -> dict[str, Any]:
        """The [prompt_format] table: only what is set."""
        out: dict[str, Any] = {"name": self.name}
        for key in ("template", *PREFIX_KEYS):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.stop:
            out["stop"] = list(self.stop)
        return out


def format_from_mapping(table: Mapping[str, Any]) -> CustomFormat:
    """A CustomFormat from a [prompt_format] table; FormatError names the key."""
    for key in table:
        if key not in FORMAT_KEYS:
            matches = difflib.get_close_matches(str(key), FORMAT_KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean '{matches[0]}'?"
                if matches
                else "known keys are " + ", ".join(FORMAT_KEYS)
            )
            raise FormatError(str(key), f"unknown key '{key}': {hint}")
    values = dict(table)
    stop = values.pop("stop", ())
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, list | tuple):
        raise FormatError("stop", f"stop must be a list of strings, not {type(stop).__name__}")
    return CustomFormat(**values, stop=tuple(stop))


def _validate_stops(stops: Any) -> tuple[str, ...]:
    if not all(isinstance(item, str) and item for item in stops):
        raise FormatError("stop", "stop must be a list of non-empty strings")
    unique = tuple(dict.fromkeys(stops))
    if len(unique) > MAX_FORMAT_STOPS:
        raise FormatError(
            "stop", f"stop has {len(unique)} strings; the limit is {MAX_FORMAT_STOPS}"
        )
    return unique


def _raise_exception(message: str) -> None:
    # Templates call raise_exception() to refuse a role order, as in transformers.
    from jinja2.exceptions import TemplateError

    raise TemplateError(message)


@lru_cache(maxsize=32)
def _compile(template: str) -> Any:
    from jinja2.exceptions import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise_exception
    try:
        return environment.from_string(template)
    except TemplateSyntaxError as error:
        raise FormatError(
            "template", f"template line {error.lineno}: {error.message or error}"
        ) from None


def _render_template(
    template: str, messages: list[dict[str, str]], bos_text: str, eos_text: str
) -> str:
    from jinja2.exceptions import TemplateError

    compiled = _compile(template)
    try:
        return str(
            compiled.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=bos_text,
                eos_token=eos_text,
            )
        )
    except TemplateError as error:
        raise FormatError("template", f"template {_where(error)}{error}") from None
    except Exception as error:  # an undefined call, a type error inside the template
        raise FormatError("template", f"template {_where(error)}{error}") from None


def _where(error: BaseException) -> str:
    # Jinja compiles to Python whose traceback lines map back to the template's lines.
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f"line {line}: " if line is not None else "failed: "


def _turn_separator(template: str, bos_text: str, eos_text: str) -> str:
    """What the template writes between a reply and the next user message."""
    reply, question = "\x00reply\x00", "\x00question\x00"
    try:
        text = _render_template(
            template,
            [
                {"role": "user", "content": "\x00first\x00"},
                {"role": "assistant", "content": reply},
                {"role": "user", "content": question},
            ],
            bos_text,
            eos_text,
        )
    except FormatError:
        return ""
    start, end = text.find(reply), text.find(question)
    if start < 0 or end < 0 or end < start:
        return ""
    return text[start + len(reply) : end]
