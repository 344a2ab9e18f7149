"""Ollama's Go chat templates as leverchat prefix/suffix prompt formats, where they map.

The common single-turn shape maps exactly::

    {{ if .System }}SP{{ .System }}SS{{ end }}
    {{ if .Prompt }}UP{{ .Prompt }}US{{ end }}AP{{ .Response }}AS

(on one line) becomes system_prefix SP, system_suffix SS, user_prefix UP, user_suffix US,
assistant_prefix and generation_prefix AP, assistant_suffix AS. Anything else
(``range .Messages``, ``.Tools``, ``else``, a system part inside the user part) is not
guessed at: :func:`map_go_template` says which actions it could not map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from leverchat.engine.custom_format import CustomFormat, FormatError

_ACTION_RE = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
_KINDS = {
    ".System": "system",
    ".Prompt": "prompt",
    ".Response": "response",
    "if .System": "if_system",
    "if .Prompt": "if_prompt",
    "end": "end",
}


@dataclass(frozen=True)
class Mapped:
    """A format (None: not mapped) and what could not be mapped exactly."""

    fmt: CustomFormat | None
    problems: tuple[str, ...] = ()


def _pieces(template: str) -> list[tuple[str, str]]:
    """("text", literal) and (kind, action) in order, with Go's ``{{-``/``-}}`` trimming."""
    pieces: list[tuple[str, str]] = []
    position = 0
    trim_next = False
    for match in _ACTION_RE.finditer(template):
        literal = template[position : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match[1]:
            literal = literal.rstrip()
        pieces.append(("text", literal))
        action = " ".join(match[2].split())
        pieces.append((_KINDS.get(action, "other"), action))
        trim_next = bool(match[3])
        position = match.end()
    tail = template[position:]
    pieces.append(("text", tail.lstrip() if trim_next else tail))
    return pieces


def map_go_template(template: str, name: str) -> Mapped:
    unknown = [action for kind, action in _pieces(template) if kind == "other"]
    if unknown:
        shown = ", ".join("{{ " + action + " }}" for action in dict.fromkeys(unknown))
        return Mapped(None, (f"Go template actions leverchat cannot map: {shown}",))
    parts = {key: "" for key in ("lead", "sp", "ss", "between", "up", "us", "ap", "as")}
    state = "lead"  # where the next literal goes
    seen: list[str] = []
    for kind, text in _pieces(template):
        if kind == "text":
            parts[state] += text
            continue
        seen.append(kind)
        expected = _NEXT.get((state, kind))
        if expected is None:
            return Mapped(None, (_order_problem(seen),))
        if kind == "system" and state == "lead":
            parts["sp"], parts["lead"] = parts["lead"], ""  # a bare {{ .System }}
        if kind == "prompt" and state in ("lead", "between"):
            parts["up"], parts[state] = parts[state], ""  # a bare {{ .Prompt }}
        if kind == "prompt" and state == "ss":
            # Bare system then bare prompt: the line breaks end the system part.
            head, _, tail = parts["ss"].rpartition("\n")
            parts["ss"], parts["up"] = (head + "\n" if _ else ""), tail
        state = expected
    if "prompt" not in seen:
        return Mapped(None, ("the template has no {{ .Prompt }}: where the user's text goes",))
    if "system" not in seen and parts["lead"].strip():
        return Mapped(
            None,
            (
                "it writes fixed text before the conversation and has no {{ .System }} to "
                "put a system prompt in",
            ),
        )
    problems: list[str] = []
    if "response" not in seen:
        if state == "us":
            # "USER: {{ .Prompt }}\nASSISTANT:": the last line starts the reply.
            head, newline, tail = parts["us"].rpartition("\n")
            if newline:
                parts["us"], parts["ap"] = head + newline, tail
        # Most templates without {{ .Response }} rely on the model's end-of-turn token after
        # the reply (ChatML's <|im_end|>): a reply in the history ends as a user turn does.
        parts["as"] = parts["us"]
    if "system" in seen and "if_system" not in seen and (parts["sp"] + parts["ss"]).strip():
        problems.append(
            f"the text around {{{{ .System }}}} ({parts['sp'].strip()!r} ... "
            f"{parts['ss'].strip()!r}) is written only when there is a system prompt (Ollama "
            "writes it always): keep a system prompt in the profile"
        )
    if parts["lead"].strip():
        problems.append(
            f"text before the system part ({parts['lead'].strip()!r}) is written only when "
            "there is a system prompt"
        )
    if parts["between"].strip() and "system" in seen:
        problems.append(
            f"text between the system and user parts ({parts['between'].strip()!r}) is "
            "written only when there is a system prompt"
        )
    try:
        fmt = CustomFormat(
            name=name,
            system_prefix=parts["lead"] + parts["sp"],
            system_suffix=parts["ss"] + parts["between"],
            user_prefix=parts["up"],
            user_suffix=parts["us"],
            assistant_prefix=parts["ap"],
            assistant_suffix=parts["as"],
            generation_prefix=parts["ap"],
        )
    except FormatError as error:
        return Mapped(None, (error.message,))
    return Mapped(fmt, tuple(problems))


# (where literals go now, action) -> where they go next. Anything missing is an order this
# mapping does not understand.
_NEXT: dict[tuple[str, str], str] = {
    ("lead", "if_system"): "sp",
    ("lead", "system"): "ss",
    ("sp", "system"): "ss",
    ("ss", "end"): "between",
    ("ss", "if_prompt"): "up",  # bare {{ .System }} followed by the user part
    ("ss", "prompt"): "us",
    ("lead", "if_prompt"): "up",
    ("lead", "prompt"): "us",
    ("between", "if_prompt"): "up",
    ("between", "prompt"): "us",
    ("up", "prompt"): "us",
    ("us", "end"): "ap",
    ("us", "response"): "as",
    ("ap", "response"): "as",
}


def _order_problem(seen: list[str]) -> str:
    names = {v: k for k, v in _KINDS.items()}
    shown = " ".join("{{ " + names.get(kind, kind) + " }}" for kind in seen)
    return f"its parts come in an order leverchat cannot map to prefixes and suffixes: {shown}"


def wrap_format(name: str, before: str, after: str) -> CustomFormat:
    """A single-turn prompt (text, the user's input, text) as a chat format: each turn is
    ``before + message + after + reply``, replies separated by a blank line."""
    return CustomFormat(
        name=name,
        system_suffix="\n\n",
        user_prefix=before,
        user_suffix=after,
        assistant_suffix="\n\n",
    )
