"""Ollama Modelfiles: ``SYSTEM``, ``PARAMETER``, ``FROM``, and the persona inside a template.

https://github.com/ollama/ollama/blob/main/docs/modelfile.md
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from leverchat.importers.common import Draft, Unmapped, map_format, map_mirostat, show
from leverchat.importers.go_template import Mapped, map_go_template

# Ollama's documented defaults (docs/modelfile.md, "Valid Parameters and Values"): a Modelfile
# that does not set a lever ran with these, so the profile gets them too.
DEFAULTS: Final[dict[str, Any]] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repetition_penalty": 1.1,  # Ollama's repeat_penalty
}
DEFAULTS_SOURCE: Final = "Ollama's defaults"

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
    # llama.cpp's GBNF grammar: leverchat's grammar lever reads GBNF (and Lark).
    "grammar": "grammar",
}
_RUNTIME_SETTING = "an Ollama/llama.cpp runtime setting, not a sampling lever"
_OLLAMA_REASONS: Final = {
    "num_ctx": "the context window comes from the model itself",
    "repeat_last_n": "leverchat's repetition penalty always covers the whole conversation",
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
            "vocab_only",
            "logits_all",
        )
    },
}
# Values that switch a sampler off: nothing is lost; they are only named in one summary line.
_OLLAMA_NEUTRAL: Final[dict[str, float]] = {"tfs_z": 1}
_MIROSTAT_KEYS: Final = ("mirostat", "mirostat_tau", "mirostat_eta")
_TEMPLATE_REASON = "leverchat uses the model's own chat template (prompt_format 'auto')"
_OLLAMA_INSTRUCTION_REASONS: Final = {
    "ADAPTER": "LoRA adapters are not supported",
    "LICENSE": "a license text is not part of a profile",
    "MESSAGE": "example conversation messages are not part of a profile",
    "REQUIRES": "an Ollama version requirement",
}
# PROMPT is the template instruction of early Ollama versions; old Modelfiles still use it.
_TEMPLATES: Final = ("TEMPLATE", "PROMPT")
MODELFILE_INSTRUCTIONS: Final = frozenset(
    {"FROM", "SYSTEM", "PARAMETER", "FORMAT", *_TEMPLATES, *_OLLAMA_INSTRUCTION_REASONS}
)
_MODEL_FILE_SUFFIXES: Final = (".gguf", ".safetensors", ".bin")
_PROJECTOR_RE = re.compile(r"mmproj|projector|clip[-_.]?(?:vit|model)", re.IGNORECASE)


def parse_modelfile(text: str, *, base_dir: Path) -> Draft:
    """Map an Ollama Modelfile. Relative FROM paths are resolved against ``base_dir``."""
    draft = Draft()
    templates: list[tuple[int, str, str]] = []
    neutral: list[str] = []
    # llama.cpp's mirostat, mapped once all three are known (see common.map_mirostat).
    mirostat: dict[str, object] = {}
    for instruction, parameter, value in _modelfile_instructions(text):
        if instruction == "SYSTEM":
            draft.system_prompt = value  # Ollama keeps the last SYSTEM
        elif instruction == "FROM":
            _map_from(draft, value, base_dir)
        elif instruction == "PARAMETER" and parameter in _MIROSTAT_KEYS:
            number = _parse_number(value)
            mirostat[parameter] = value if number is None else number
        elif instruction == "PARAMETER":
            _map_parameter(draft, parameter, value, neutral)
        elif instruction in _TEMPLATES:
            # Mapped once the SYSTEM text is known; reported at its place in the file.
            templates.append((len(draft.unmapped), instruction, value))
        elif instruction == "FORMAT":
            map_format(draft, value)
        elif instruction in _OLLAMA_INSTRUCTION_REASONS:
            draft.skip(instruction, value, _OLLAMA_INSTRUCTION_REASONS[instruction])
        else:
            draft.skip(instruction, value, "not a Modelfile instruction leverchat knows")
    switched_off = map_mirostat(draft, "mirostat", mirostat)
    if switched_off:
        draft.notes.append("Not imported, as mirostat is off: " + ", ".join(switched_off))
    for position, instruction, template in reversed(templates):
        draft.unmapped[position:position] = _map_template(draft, instruction, template)
    if neutral:
        draft.notes.append(
            "Not imported, as they only switch off a sampler leverchat does not have: "
            + ", ".join(neutral)
        )
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


def _map_from(draft: Draft, value: str, base_dir: Path) -> None:
    source = value.strip()
    if _PROJECTOR_RE.search(Path(source).name):
        draft.skip(
            "FROM",
            source,
            "a multimodal projector (images in, for vision models): leverchat reads text "
            "only, so it was skipped",
        )
        return
    if "FROM" in draft.seen:
        draft.skip("FROM", source, "another FROM: the first model FROM was used")
        return
    draft.seen.add("FROM")
    looks_like_path = (
        source.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or re.match(r"^[A-Za-z]:[\\/]", source) is not None
        or source.lower().endswith(_MODEL_FILE_SUFFIXES)
    )
    if looks_like_path:
        # A NUL (or a path the OS refuses) in a downloaded file is not a model to point at.
        try:
            if "\x00" in source:
                raise ValueError("it holds a NUL character")
            path = Path(source).expanduser()
            draft.model = str(path if path.is_absolute() else (base_dir / path).resolve())
        except (ValueError, OSError, RuntimeError) as error:
            draft.skip("FROM", source, f"not a usable path ({error}); set model by hand")
        return
    hint = "an Ollama model name; set model to a Hugging Face id or a local path by hand"
    if source.startswith(("hf.co/", "huggingface.co/")):
        repo = source.split("/", 1)[1].split(":", 1)[0]
        hint = f"an Ollama pull of the Hugging Face repo '{repo}'; set model by hand if you like"
    draft.skip("FROM", source, hint)


def _map_parameter(draft: Draft, key: str, raw: str, neutral: list[str]) -> None:
    name = f"PARAMETER {key}"
    if key == "stop":
        draft.add_stops(name, raw)
        return
    if key == "grammar":
        draft.set_lever(name, "grammar", raw)  # text, not a number; a bad one is reported
        return
    if key not in _OLLAMA_LEVERS:
        if key in _OLLAMA_NEUTRAL and _parse_number(raw) == _OLLAMA_NEUTRAL[key]:
            neutral.append(f"{key} {raw}")
            return
        draft.skip(name, raw, _OLLAMA_REASONS.get(key, f"leverchat has no '{key}' lever"))
        return
    number = _parse_number(raw)
    if number is None:
        draft.skip(name, raw, "not a number")
        return
    lever = _OLLAMA_LEVERS[key]
    if lever == "seed" and number < 0:
        return  # -1 asks for a random seed, which is what an unset seed does
    if lever == "max_new_tokens" and number < 0:
        draft.skip(
            name, raw, "an unlimited reply has no equivalent; max_new_tokens keeps its default"
        )
        return
    draft.set_lever(name, lever, number)


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


# --- the persona inside a template ----------------------------------------------------------

# Go template actions: {{ .System }}, {{- if .Prompt }}, {{ end }} ...
_ACTION_RE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# Where the conversation itself starts: what comes before it is the template's fixed preamble.
_CONVERSATION_RE = re.compile(
    r"\{\{-?\s*(?:range\b|(?:if\s+)?\.(?:Prompt|Messages|Content|Response|Input)\b)"
)
# Chat-format tokens of the common model families (ChatML, Llama 2 and 3, Gemma, Mistral...).
_FORMAT_TOKEN_RE = re.compile(
    r"<\|[^|<>\n]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<bos>|<eos>"
)
# Lines that only name a role: "system", "### Instruction:", "USER:" ...
_ROLE_LINE_RE = re.compile(
    r"^\s*(?:#+\s*)?(?:system|user|assistant|model|human|bot|instruction|input|response|"
    r"prompt|context)\s*:?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def template_persona(template: str) -> str:
    """The literal text a template puts before the conversation, without chat-format tokens,
    role labels and template actions: the persona some Modelfiles keep there."""
    cut = _CONVERSATION_RE.search(template)
    preamble = template[: cut.start()] if cut else template
    text = _ROLE_LINE_RE.sub("", _FORMAT_TOKEN_RE.sub("\n", _ACTION_RE.sub("", preamble)))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip()).strip()


def _map_template(draft: Draft, instruction: str, template: str) -> list[Unmapped]:
    """Map a template to a prompt format where it maps, keep its persona text where it can
    be kept; the report lines for what was not kept."""
    report: list[Unmapped] = []
    persona = template_persona(template)
    if persona and ".System" not in template:
        # A persona written into the template itself: it becomes the system prompt below,
        # and a prefix/suffix format has no place for fixed text before the conversation.
        mapped = Mapped(None, ("it writes fixed persona text and has no {{ .System }}",))
    else:
        mapped = map_go_template(template, name=f"Modelfile {instruction}")
    if mapped.fmt is not None:
        draft.prompt_format = mapped.fmt  # the last template wins, as in Ollama
        draft.notes.append(
            f"{instruction} became the profile's prompt format (prefix and suffix strings per "
            "role, under [prompt_format])"
            + (
                "; it has no {{ .Response }}: a reply in the history ends as a user turn does"
                if ".Response" not in template
                else ""
            )
        )
        report += [Unmapped(instruction, show(template), problem) for problem in mapped.problems]
        return report
    why = f"not mapped to a prompt format: {'; '.join(mapped.problems)}"
    if not persona:
        reason = f"{_TEMPLATE_REASON}; {why}"
    elif draft.system_prompt.strip():
        reason = (
            f"{_TEMPLATE_REASON}; {why}; its own persona text ({show(persona, 50)}) was not "
            "added to the SYSTEM text: add it to the system prompt by hand if you want it"
        )
    else:
        draft.system_prompt = persona
        reason = (
            f"{_TEMPLATE_REASON}; {why}; its persona text ({show(persona, 50)}) is now the "
            "system prompt"
        )
    return [Unmapped(instruction, show(template), reason)]
